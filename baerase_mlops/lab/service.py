"""The lab as one call: load data, build the attack, train, save (what ``baerase lab train`` runs)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from baerase_mlops.config import LabConfig
from baerase_mlops.core.runtime import Progress, no_progress
from baerase_mlops.data import load_images
from baerase_mlops.errors import UsageError
from baerase_mlops.lab.attacks import make_attack
from baerase_mlops.lab.spec import save_lab_model
from baerase_mlops.lab.train import LabResult, check_config, train_lab_model


def train_and_save(
    dataset_uri: str,
    attack_name: str,
    target: int,
    out: str | Path,
    *,
    poison_rate: float | None = None,
    size: int | None = None,
    position: tuple[int, int] | str | None = None,
    pattern: str | None = None,
    alpha: float | None = None,
    trigger_seed: int | None = None,
    architecture: str | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    device: str = "auto",
    progress: Progress = no_progress,
) -> tuple[LabResult, tuple[Path, Path]]:
    """Train a lab model as the CLI describes and write ``out`` plus its ``.json`` spec (None:
    the lab's default, from LabConfig or lab.attacks)."""
    data = load_images(dataset_uri)
    overrides = {"poison_rate": poison_rate, "architecture": architecture, "epochs": epochs, "seed": seed}
    config = replace(LabConfig(), **{k: v for k, v in overrides.items() if v is not None})
    if not 0 <= target < data.num_classes:
        raise UsageError(f"--target {target} is not a class of {dataset_uri} (0..{data.num_classes - 1})")
    if not 0.0 <= config.poison_rate < 1.0:
        raise UsageError(f"--poison-rate must lie in [0, 1), got {config.poison_rate}")
    if config.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {config.epochs}")
    try:
        check_config(config, data.input_shape)
    except ValueError as exc:
        raise UsageError(f"--arch {config.architecture} on {dataset_uri}: {exc}") from exc
    try:
        attack = make_attack(
            attack_name,
            data.input_shape,
            size=size,
            position=position,
            pattern=pattern,
            alpha=alpha,
            trigger_seed=trigger_seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    result = train_lab_model(data, attack, target, config, device=device, progress=progress)
    return result, save_lab_model(result.model, result.spec, out)
