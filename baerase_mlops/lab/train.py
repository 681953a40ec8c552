"""Poison a training set and train a classifier on it: real backdoors for the defence to face."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from baerase_mlops.config import LabConfig
from baerase_mlops.core.metrics import accuracy, attack_success_rate
from baerase_mlops.core.runtime import Progress, no_progress, resolve_device, seed_everything
from baerase_mlops.data.imageset import ImageSet
from baerase_mlops.data.split import stratified_split
from baerase_mlops.lab.attacks import Attack, NoAttack, attack_from_params
from baerase_mlops.lab.models import ImageClassifier
from baerase_mlops.lab.spec import ModelSpec


@dataclass(frozen=True)
class LabResult:
    """A trained lab model with its spec and its test metrics."""

    model: ImageClassifier
    spec: ModelSpec
    accuracy: float  # clean accuracy on the held-out test split
    asr: float  # attack success rate with the true trigger; chance level for a clean model


def lab_splits(data: ImageSet, spec: ModelSpec) -> tuple[ImageSet, ImageSet]:
    """The (train, test) split a lab model was trained with, rebuilt from its spec."""
    if spec.test_fraction is None or spec.seed is None:
        raise ValueError("the spec does not record the lab's train/test split")
    return stratified_split(data, spec.test_fraction, spec.seed)


def true_attack(spec: ModelSpec) -> tuple[Attack, int] | None:
    """The attacker's trigger and target from a lab spec (None for a clean model).

    For reporting real ASR in tests and benchmarks only; the defence never sees it.
    """
    if not spec.attack or spec.attack.get("name") == "none":
        return None
    params = {k: v for k, v in spec.attack.items() if k not in ("target", "poison_rate")}
    return attack_from_params(params), int(spec.attack["target"])


def real_asr(model: nn.Module, test: ImageSet, attack: Attack, target: int, device: torch.device, seed: int = 0) -> float:
    """ASR with the attacker's own trigger; random positions drawn with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return attack_success_rate(model, test.x, test.y, target, lambda x: attack.stamp(x, gen), device)


def train_lab_model(
    data: ImageSet,
    attack: Attack,
    target: int,
    config: LabConfig = LabConfig(),
    device: str = "auto",
    progress: Progress = no_progress,
) -> LabResult:
    """Split ``data``, poison ``config.poison_rate`` of the training part with ``attack``
    toward ``target`` (all-to-one), train, and measure accuracy and ASR on the test part."""
    if not 0 <= target < data.num_classes:
        raise ValueError(f"target class {target} is not in [0, {data.num_classes})")
    dev = resolve_device(device)
    gen = seed_everything(config.seed)
    train, test = stratified_split(data, config.test_fraction, config.seed)
    mean = train.x.mean(dim=(0, 2, 3)).tolist()
    std = train.x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    spec = ModelSpec(
        architecture=config.architecture,
        input_shape=data.input_shape,
        classes=data.classes,
        mean=tuple(mean),
        std=tuple(std),
        width=config.width,
        dataset=data.source,
        test_fraction=config.test_fraction,
        seed=config.seed,
        attack={**attack.params(), "target": target, "poison_rate": 0.0 if isinstance(attack, NoAttack) else config.poison_rate},
        training={"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr},
    )
    model = spec.build().to(dev)
    poisoned = _choose_poisoned(train.y, target, 0.0 if isinstance(attack, NoAttack) else config.poison_rate, gen)
    _fit(model, train, poisoned, attack, target, config, dev, gen, progress)
    model.eval()
    acc = accuracy(model, test.x, test.y, dev)
    asr = real_asr(model, test, attack, target, dev, seed=config.seed)
    spec = ModelSpec(**{**spec.__dict__, "metrics": {"accuracy": acc, "asr": asr}})
    return LabResult(model.cpu(), spec, acc, asr)


def _choose_poisoned(y: torch.Tensor, target: int, rate: float, gen: torch.Generator) -> torch.Tensor:
    """A boolean mask over the training set: the images to stamp and relabel.

    Drawn from the non-target classes so that every poisoned image teaches the shortcut.
    """
    flags = torch.zeros(len(y), dtype=torch.bool)
    candidates = torch.nonzero(y != target).flatten()
    count = int(round(rate * len(y)))
    flags[candidates[torch.randperm(len(candidates), generator=gen)[:count]]] = True
    return flags


def _fit(
    model: nn.Module,
    train: ImageSet,
    poisoned: torch.Tensor,
    attack: Attack,
    target: int,
    config: LabConfig,
    device: torch.device,
    gen: torch.Generator,
    progress: Progress,
) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = (len(train) + config.batch_size - 1) // config.batch_size
    total = config.epochs * steps_per_epoch
    step = 0
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(train), generator=gen)
        for start in range(0, len(train), config.batch_size):
            idx = order[start : start + config.batch_size]
            x, y, flags = train.x[idx].clone(), train.y[idx].clone(), poisoned[idx]
            if flags.any():
                # Stamped afresh every time, so a random-position trigger is learnt anywhere.
                x[flags] = attack.stamp(x[flags], gen)
                y[flags] = target
            loss = nn.functional.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            progress("training", step, total)
