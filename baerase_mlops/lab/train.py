"""Poison a training set and train a classifier on it: real backdoors for the defence to face.

The poisoning follows each attack's paper (``baerase_mlops.lab.attacks``): dirty-label
attacks stamp ``poison_rate`` of the training set, drawn from the non-target classes, and
relabel it to the target; clean-label attacks (SIG) stamp up to ``poison_rate`` of the
training set drawn from the target class only (at most the attack's ``target_share`` of it)
and change no label; WaNet's noise-mode images (a share of the rest) are warped with a
perturbed field and keep their labels.
Triggers are applied afresh in every batch, then the batch is augmented (``LabConfig.augment``)
as a data loader over a poisoned dataset would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from baerase_mlops.config import LabConfig
from baerase_mlops.core.metrics import accuracy, attack_success_rate
from baerase_mlops.core.runtime import Progress, no_progress, resolve_device, seed_everything
from baerase_mlops.data.imageset import ImageSet
from baerase_mlops.data.split import stratified_split
from baerase_mlops.lab.attacks import Attack, NoAttack, attack_from_params
from baerase_mlops.lab.models import ImageClassifier, check_input_shape
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


def real_asr(
    model: nn.Module, test: ImageSet, attack: Attack, target: int, device: torch.device, seed: int = 0
) -> float:
    """ASR with the attacker's own trigger; random positions drawn with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return attack_success_rate(model, test.x, test.y, target, lambda x: attack.apply(x, gen), device)


AUGMENTATIONS = ("none", "crop", "crop_flip")
OPTIMIZERS = ("adam", "sgd")


def check_config(config: LabConfig, input_shape: tuple[int, int, int]) -> None:
    """Raise ValueError naming what is wrong, before any training starts."""
    check_input_shape(config.architecture, input_shape)
    if config.augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {config.augment!r}; choose one of {AUGMENTATIONS}")
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose one of {OPTIMIZERS}")
    if config.epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {config.epochs}")


def train_lab_model(
    data: ImageSet,
    attack: Attack,
    target: int,
    config: LabConfig | None = None,
    device: str = "auto",
    progress: Progress = no_progress,
) -> LabResult:
    """Split ``data``, poison the training part with ``attack`` toward ``target`` (all-to-one,
    as the attack's paper does: see the module's docstring), train, and measure accuracy and
    ASR on the test part."""
    config = config or LabConfig()
    if not 0 <= target < data.num_classes:
        raise ValueError(f"target class {target} is not in [0, {data.num_classes})")
    check_config(config, data.input_shape)
    dev = resolve_device(device)
    gen = seed_everything(config.seed)
    train, test = stratified_split(data, config.test_fraction, config.seed)
    mean = train.x.mean(dim=(0, 2, 3)).tolist()
    std = train.x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    rate = 0.0 if isinstance(attack, NoAttack) else config.poison_rate
    poisoned = choose_poisoned(
        train.y, target, rate, gen, clean_label=attack.clean_label, target_share=attack.target_share
    )
    noisy = choose_noise(poisoned, attack.noise_rate, gen)
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
        attack={**attack.params(), "target": target, "poison_rate": rate},
        training={
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "lr": config.lr,
            "optimizer": config.optimizer,
            "weight_decay": config.weight_decay,
            "augment": config.augment,
            # What the poisoning came to: a clean-label attack can stamp at most the target class.
            "poisoned_images": int(poisoned.sum()),
            "noise_mode_images": int(noisy.sum()),
            "training_images": len(train),
        },
    )
    model = spec.build().to(dev)
    _fit(model, train, poisoned, noisy, attack, target, config, dev, gen, progress)
    model.eval()
    acc = accuracy(model, test.x, test.y, dev)
    asr = real_asr(model, test, attack, target, dev, seed=config.seed)
    spec = ModelSpec(**{**spec.__dict__, "metrics": {"accuracy": acc, "asr": asr}})
    return LabResult(model.cpu(), spec, acc, asr)


def choose_poisoned(
    y: torch.Tensor,
    target: int,
    rate: float,
    gen: torch.Generator,
    *,
    clean_label: bool = False,
    target_share: float = 1.0,
) -> torch.Tensor:
    """A boolean mask over the training set: the images to stamp.

    Dirty-label: ``rate`` of the set, drawn from the non-target classes (each one teaches the
    shortcut once relabelled). Clean-label: the same count drawn from the target class only,
    at most ``target_share`` of it; their labels stay."""
    flags = torch.zeros(len(y), dtype=torch.bool)
    candidates = torch.nonzero((y == target) if clean_label else (y != target)).flatten()
    most = int(target_share * len(candidates)) if clean_label else len(candidates)
    count = min(round(rate * len(y)), most)
    flags[candidates[torch.randperm(len(candidates), generator=gen)[:count]]] = True
    return flags


def choose_noise(poisoned: torch.Tensor, rate: float, gen: torch.Generator) -> torch.Tensor:
    """A boolean mask of ``rate`` of the training set, outside the poisoned images: noise-mode images."""
    flags = torch.zeros(len(poisoned), dtype=torch.bool)
    if rate <= 0:
        return flags
    candidates = torch.nonzero(~poisoned).flatten()
    count = min(round(rate * len(poisoned)), len(candidates))
    flags[candidates[torch.randperm(len(candidates), generator=gen)[:count]]] = True
    return flags


def poison_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    poisoned: torch.Tensor,
    noisy: torch.Tensor,
    attack: Attack,
    target: int,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch as the attacker hands it over: ``poisoned`` images triggered (and, for a
    dirty-label attack, relabelled to ``target``), ``noisy`` ones in noise mode at their labels.
    Copies; the inputs are left as they are."""
    x, y = x.clone(), y.clone()
    if poisoned.any():
        # Applied afresh every time, so a random-position trigger is learnt anywhere.
        x[poisoned] = attack.poison(x[poisoned], gen)
        if not attack.clean_label:
            y[poisoned] = target
    if noisy.any():
        x[noisy] = attack.noise(x[noisy], gen)
    return x, y


def augment_batch(x: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Random crop after zero-padding by 1/8 of the side (4 px at 32), and for ``crop_flip``
    a horizontal flip of half the images: the usual CIFAR training augmentation."""
    if kind == "none":
        return x
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    cols = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    out = torch.stack([padded[i, :, r : r + h, c : c + w] for i, (r, c) in enumerate(zip(rows, cols))])
    if kind == "crop_flip":
        flip = torch.rand(n, generator=gen) < 0.5
        out[flip] = out[flip].flip(-1)
    return out


def _optimizer(model: nn.Module, config: LabConfig, total_steps: int):
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
        # One-cycle: the schedule that gets a CIFAR net to its accuracy in the fewest epochs.
        return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total_steps, pct_start=0.25)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay), None


def _fit(
    model: nn.Module,
    train: ImageSet,
    poisoned: torch.Tensor,
    noisy: torch.Tensor,
    attack: Attack,
    target: int,
    config: LabConfig,
    device: torch.device,
    gen: torch.Generator,
    progress: Progress,
) -> None:
    steps_per_epoch = (len(train) + config.batch_size - 1) // config.batch_size
    total = config.epochs * steps_per_epoch
    optimizer, schedule = _optimizer(model, config, total)
    step = 0
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(train), generator=gen)
        for start in range(0, len(train), config.batch_size):
            idx = order[start : start + config.batch_size]
            x, y = poison_batch(train.x[idx], train.y[idx], poisoned[idx], noisy[idx], attack, target, gen)
            x = augment_batch(x, config.augment, gen)
            loss = nn.functional.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            step += 1
            progress("training", step, total)
