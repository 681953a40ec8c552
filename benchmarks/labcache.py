"""Lab models for the suite: trained once, then reused from a persistent cache outside the repo.

Where: ``--cache-dir``, else ``$BAERASE_ZOO_CACHE``, else ``~/.cache/baerase-mlops/zoo``
(``$XDG_CACHE_HOME`` is honoured). A model is keyed by a hash of everything that decides its
weights: the dataset (name, file size and modification time, subset), the full lab
configuration (architecture, width, epochs, optimizer, augmentation, poisoning rate,
seed, ...), the attack's parameters and target, and the cache format (bumped when the lab's
training code changes what a configuration produces). A second run with the same
definitions trains nothing. Files are written to a temporary name and renamed, so that two
shards running at once never read a half-written model. Training time is kept beside each
model, so a re-run still reports what training cost.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from baerase_mlops.config import LabConfig
from baerase_mlops.data import ImageSet, load_images, stratified_split
from baerase_mlops.engine import CleanData, ModelUnderTest, load_local_model, prepare_clean_data
from baerase_mlops.lab.spec import save_lab_model
from baerase_mlops.lab.train import train_lab_model, true_attack
from benchmarks.cases import Case
from benchmarks.memory import PeakMemory, Stopwatch
from benchmarks.profiles import DatasetPlan

# 2: the zoo (architectures, augmentation, optimizers, sticker/WaNet/SIG, clean-label poisoning).
CACHE_FORMAT = 2
CACHE_ENV = "BAERASE_ZOO_CACHE"


def default_cache_dir() -> Path:
    """``$BAERASE_ZOO_CACHE``, else ``$XDG_CACHE_HOME/baerase-mlops/zoo``, else ``~/.cache/baerase-mlops/zoo``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "baerase-mlops" / "zoo"


@dataclass
class LabModel:
    mut: ModelUnderTest  # the model as the defence sees it, its lab spec pointing at ``uri``
    accuracy: float  # on the lab test split, when trained
    asr: float  # with the true trigger, when trained
    train_s: float  # wall time of training (now, or when it was cached)
    train_cpu_s: float  # CPU time of training
    train_rss_peak_mib: float | None  # peak resident set while training
    cached: bool
    path: Path
    key: str


def dataset_uri(plan: DatasetPlan, datasets_dir: Path, cache_dir: Path) -> str:
    """The URI the lab trains on: the dataset's training split, or a small subset of it for dry runs."""
    uri = plan.uri(datasets_dir)
    if plan.subset is None:
        return uri
    return write_subset(load_images(uri), plan.subset, cache_dir / "data" / f"{plan.name}-{plan.subset}-per-class.npz")


def write_subset(data: ImageSet, per_class: int, path: Path) -> str:
    """A stratified subset of ``data`` (about ``per_class`` images per class) as an .npz; its URI."""
    if not path.is_file():
        fraction = min(0.99, per_class * data.num_classes / len(data))
        part = stratified_split(data, fraction, seed=0)[1]
        x = (part.x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()  # back to uint8 NHWC, exactly
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
        np.savez_compressed(tmp, x_train=x, y_train=part.y.numpy(), classes=np.array(part.classes))
        tmp.replace(path)
    return f"{path.resolve()}#train"


def _dataset_fingerprint(plan: DatasetPlan, datasets_dir: Path) -> dict[str, Any]:
    """The data set by content: a copied or re-extracted file with the same bytes keeps its
    models (a modification time in the key retrained the whole zoo after ../shared was refreshed)."""
    if plan.source.startswith("builtin:"):
        return {"source": plan.source}
    return {"source": plan.source, "sha256": _file_sha256(datasets_dir / plan.source), "subset": plan.subset}


@functools.cache
def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_identity(plan: DatasetPlan, datasets_dir: Path, config: LabConfig, case: Case) -> dict[str, Any]:
    """Everything that decides a lab model's weights (what its cache key hashes)."""
    return {
        "format": CACHE_FORMAT,
        "dataset": _dataset_fingerprint(plan, datasets_dir),
        "lab": asdict(config),
        "attack": case.attack.params(),
        "target": case.target,
    }


def cache_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def lab_config(plan: DatasetPlan, arch: str, seed: int) -> LabConfig:
    return replace(LabConfig(), **plan.lab(arch), seed=seed)


def obtain_lab_model(
    plan: DatasetPlan, arch: str, case: Case, uri: str, datasets_dir: Path, cache_dir: Path, *, reuse: bool, device: str
) -> LabModel:
    """The lab model of ``case`` on ``uri``: from ``cache_dir`` when there and ``reuse``, else trained and saved
    there."""
    config = lab_config(plan, arch, case.seed)
    identity = model_identity(plan, datasets_dir, config, case)
    key = cache_key(identity)
    path = cache_dir / plan.name / arch / f"{case.name}-seed{case.seed}-{key}.pt"
    sidecar = path.with_suffix(".bench.json")
    if reuse and path.is_file() and sidecar.is_file():
        info = json.loads(sidecar.read_text())
        return LabModel(
            _as_model_under_test(path, uri),
            info["accuracy"],
            info["asr"],
            info["train_s"],
            info["train_cpu_s"],
            info.get("train_rss_peak_mib"),
            True,
            path,
            key,
        )
    data = load_images(uri)
    with PeakMemory(torch.device(device if device != "auto" else "cpu")) as peak, Stopwatch() as watch:
        result = train_lab_model(data, case.attack, case.target, config, device=device)
    del data
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.pt")
    save_lab_model(result.model, result.spec, tmp)
    rss = peak.result.rss_peak_mib if peak.result else None
    info = {
        "accuracy": result.accuracy,
        "asr": result.asr,
        "train_s": watch.wall_s,
        "train_cpu_s": watch.cpu_s,
        "train_rss_peak_mib": rss,
        "identity": identity,
    }
    tmp_sidecar = tmp.with_suffix(".bench.json")
    tmp_sidecar.write_text(json.dumps(info) + "\n")
    tmp.with_suffix(".json").replace(path.with_suffix(".json"))  # the spec first, then the weights, then the sidecar
    tmp.replace(path)
    tmp_sidecar.replace(sidecar)
    return LabModel(
        _as_model_under_test(path, uri), result.accuracy, result.asr, watch.wall_s, watch.cpu_s, rss, False, path, key
    )


def _as_model_under_test(path: Path, uri: str) -> ModelUnderTest:
    """Load a lab model as the product does; its spec is pointed at ``uri`` so that
    ``prepare_clean_data`` rebuilds the lab's split wherever the datasets live now."""
    mut = load_local_model(path)
    assert mut.lab_spec is not None  # a lab model always has its spec
    mut.lab_spec = replace(mut.lab_spec, dataset=uri)
    return mut


@dataclass
class CachedModel:
    """A model of the zoo cache, ready to scan as the benchmark scans it."""

    mut: ModelUnderTest
    data: CleanData  # 5% of its lab training split, drawn with its seed
    seed: int  # the zoo seed it was made with (the benchmark scans and unlearns with it)
    identity: dict[str, Any]  # model file, architecture, attack and target: the head of a probe's line


def load_cached_model(path: Path) -> CachedModel:
    """``~/.cache/baerase-mlops/zoo/DATASET/ARCH/CASE-seedS-KEY.pt`` with its spec beside it."""
    spec = json.loads(path.with_suffix(".json").read_text())
    mut = load_local_model(path)
    attack = spec.get("attack") or {}
    truth = true_attack(mut.lab_spec) if mut.lab_spec else None  # None for a clean model (attack "none")
    return CachedModel(
        mut=mut,
        data=prepare_clean_data(None, mut, seed=spec["seed"]),
        seed=spec["seed"],
        identity={
            "model": str(path),
            "architecture": spec["architecture"],
            "attack": attack.get("name"),
            "target": truth[1] if truth else None,
        },
    )
