"""Lab models for the suite: trained once, then reused from ``benchmarks/cache/``.

A cached model is keyed by everything that decides its weights: the dataset (name and
file size), the lab configuration, the attack's parameters and target, and the seed.
Training time is kept beside it, so a re-run still reports what training cost.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from baerase_mlops.config import LabConfig
from baerase_mlops.data import ImageSet, load_images, stratified_split
from baerase_mlops.engine import ModelUnderTest, load_local_model
from baerase_mlops.lab.spec import save_lab_model
from baerase_mlops.lab.train import train_lab_model
from benchmarks.cases import Case
from benchmarks.memory import Stopwatch
from benchmarks.profiles import DatasetPlan

CACHE_FORMAT = 1


@dataclass
class LabModel:
    mut: ModelUnderTest  # the model as the defence sees it, its lab spec pointing at ``uri``
    accuracy: float  # on the lab test split, when trained
    asr: float  # with the true trigger, when trained
    train_s: float  # wall time of training (now, or when it was cached)
    train_cpu_s: float  # CPU time of training
    cached: bool
    path: Path


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
        np.savez_compressed(path, x_train=x, y_train=part.y.numpy(), classes=np.array(part.classes))
    return f"{path.resolve()}#train"


def _dataset_fingerprint(plan: DatasetPlan, datasets_dir: Path) -> dict[str, Any]:
    if plan.source.startswith("builtin:"):
        return {"source": plan.source}
    return {"source": plan.source, "bytes": (datasets_dir / plan.source).stat().st_size, "subset": plan.subset}


def cache_key(plan: DatasetPlan, datasets_dir: Path, config: LabConfig, case: Case) -> str:
    identity = {
        "format": CACHE_FORMAT,
        "dataset": _dataset_fingerprint(plan, datasets_dir),
        "lab": asdict(config),
        "attack": case.attack.params(),
        "target": case.target,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def obtain_lab_model(
    plan: DatasetPlan, case: Case, uri: str, datasets_dir: Path, cache_dir: Path, reuse: bool, device: str
) -> LabModel:
    """The lab model of ``case`` on ``uri``: from ``cache_dir`` when there and ``reuse``, else trained and saved there."""
    config = replace(LabConfig(), **plan.lab, seed=case.seed)
    key = cache_key(plan, datasets_dir, config, case)
    path = cache_dir / plan.name / f"{case.name}-seed{case.seed}-{key}.pt"
    sidecar = path.with_suffix(".bench.json")
    if reuse and path.is_file() and sidecar.is_file():
        info = json.loads(sidecar.read_text())
        return LabModel(_as_model_under_test(path, uri), info["accuracy"], info["asr"], info["train_s"], info["train_cpu_s"], True, path)
    data = load_images(uri)
    with Stopwatch() as watch:
        result = train_lab_model(data, case.attack, case.target, config, device=device)
    save_lab_model(result.model, result.spec, path)
    sidecar.write_text(json.dumps({"accuracy": result.accuracy, "asr": result.asr, "train_s": watch.wall_s, "train_cpu_s": watch.cpu_s}) + "\n")
    return LabModel(_as_model_under_test(path, uri), result.accuracy, result.asr, watch.wall_s, watch.cpu_s, False, path)


def _as_model_under_test(path: Path, uri: str) -> ModelUnderTest:
    """Load a lab model as the product does; its spec is pointed at ``uri`` so that
    ``prepare_clean_data`` rebuilds the lab's split wherever the datasets live now."""
    mut = load_local_model(path)
    assert mut.lab_spec is not None  # a lab model always has its spec
    mut.lab_spec = replace(mut.lab_spec, dataset=uri)
    return mut
