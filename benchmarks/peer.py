"""An external reference implementation, run from a checkout the user points to (``--peer-dir``).

The peer is BackdoorBench's Neural Cleanse (``defense/nc.py`` of https://github.com/SCLBD/BackdoorBench),
the implementation that did better than this project on users' models (issue "Benchmark zoo").
BackdoorBench is licensed CC BY-NC 4.0, so it is never vendored, installed or imported by the
product: the benchmark imports it from the user's own clone, off by default.

What runs is the peer's own code with its own settings (``config/defense/nc/config.yaml``):
``train_mask`` reverse-engineers a trigger for every class in turn (its ``RegressionModel``,
``Recorder`` and ``train_step``, Adam at ``mask_lr``, the adaptive cost, early stopping), and
``outlier_detection`` is its MAD test at an anomaly index of 2. The adapter only supplies what
BackdoorBench would build from its own attack records, which a model it did not train lacks:

- the classifier: the model under test, frozen, instead of one of BackdoorBench's architectures
  rebuilt by name (``_get_classifier``);
- no (de)normaliser: the product's input space is [0, 1] pixels with any normalisation inside
  the model (DESIGN.md), which is what the peer's un-normalised datasets (GTSRB) assume too;
- the data: the same clean images the product's scans get, in batches of the peer's
  ``batch_size``, shuffled by a seeded generator, without the peer's training augmentation.

Only detection is run. BackdoorBench's NC unlearning reloads the triggers from PNG files into
its own attack-record datasets (``load_attack_result``), which have no counterpart here; the
product's own NC unlearning is the ``neural_cleanse`` defence.

Needs what ``defense/nc.py`` imports at module level beyond the product's dependencies:
``pip install opencv-python-headless`` (the ``peer`` extra).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from baerase_mlops.data import ImageSet
from baerase_mlops.errors import BaeraseError, UsageError

PEER_SCAN = "backdoorbench_nc"  # the key of its record in a run's "scans"
NC_MODULE = Path("defense") / "nc.py"
NC_CONFIG = Path("config") / "defense" / "nc" / "config.yaml"


class PeerError(UsageError):
    """The peer checkout cannot be used: the message names what is missing."""


@dataclass(frozen=True)
class PeerScan:
    """The peer's detection on one model: its numbers, as its own code computed them."""

    norms: list[float]  # L1 norm of every class's best mask (``use_norm``)
    flagged: list[int]  # outlier_detection's flag list, smallest norm first
    median: float  # as outlier_detection wrote them to its output file
    mad: float
    anomaly_index: float  # of the smallest norm
    threshold: float  # outlier_detection's, fixed in its code
    class_s: list[float]  # wall time of train_mask per class
    settings: dict[str, Any] = field(default_factory=dict)  # the peer's config as run

    @property
    def anomaly_indices(self) -> list[float]:
        """Each class's |norm - median| / MAD, the quantity outlier_detection compares with 2."""
        return [abs(n - self.median) / self.mad if self.mad > 0 else float("inf") for n in self.norms]


def check_peer_dir(peer_dir: Path) -> Path:
    """``peer_dir`` resolved, or a PeerError naming what a BackdoorBench checkout lacks."""
    peer_dir = Path(peer_dir).expanduser().resolve()
    for needed in (NC_MODULE, NC_CONFIG):
        if not (peer_dir / needed).is_file():
            raise PeerError(
                f"--peer-dir {peer_dir} is not a BackdoorBench checkout: {needed} is missing "
                "(git clone https://github.com/SCLBD/BackdoorBench)"
            )
    return peer_dir


def peer_commit(peer_dir: Path) -> str | None:
    """The checkout's commit, for the record (None when it is not a git work tree)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(peer_dir), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@contextlib.contextmanager
def _on_path(peer_dir: Path) -> Iterator[None]:
    """BackdoorBench imports its packages (``defense``, ``utils``) as top-level names."""
    sys.path.insert(0, str(peer_dir))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(peer_dir))


def import_nc(peer_dir: Path) -> ModuleType:
    """The peer's ``defense.nc`` module, imported from ``peer_dir``."""
    peer_dir = check_peer_dir(peer_dir)
    with _on_path(peer_dir):
        try:
            import defense.nc as nc  # noqa: PLC0415  from the user's checkout, only when asked for
        except ImportError as exc:
            raise PeerError(
                f"BackdoorBench's {NC_MODULE} (from {peer_dir}) cannot be imported: {exc}. "
                "It needs opencv: pip install -e '.[peer]' (or pip install opencv-python-headless)"
            ) from None
    loaded = Path(nc.__file__).resolve()
    if peer_dir not in loaded.parents:
        raise PeerError(f"imported defense.nc from {loaded}, not from --peer-dir {peer_dir}")
    return nc


class BackdoorBenchNC:
    """BackdoorBench's Neural Cleanse detection on a model it did not train."""

    def __init__(self, peer_dir: Path, *, overrides: dict[str, Any] | None = None) -> None:
        self.peer_dir = check_peer_dir(peer_dir)
        self.overrides = dict(overrides or {})
        self.commit = peer_commit(self.peer_dir)
        self._nc: ModuleType | None = None

    def load(self) -> ModuleType:
        """The peer's module, imported once (a checkout that cannot be imported fails here)."""
        if self._nc is None:
            self._nc = import_nc(self.peer_dir)
        return self._nc

    def settings(self) -> dict[str, Any]:
        """The peer's own config file, with this adapter's overrides on top."""
        import yaml  # noqa: PLC0415  (a dependency of MLflow; only the peer needs it here)

        with open(self.peer_dir / NC_CONFIG) as f:
            settings = yaml.safe_load(f)
        return {**settings, **self.overrides}

    def scan(self, model: nn.Module, clean: ImageSet, *, seed: int, device: torch.device) -> PeerScan:
        """Reverse-engineer every class's trigger with the peer's ``train_mask``, then its outlier test."""
        nc = self.load()
        frozen = copy.deepcopy(model).to(device)  # the peer freezes it; the other defences get the original
        frozen.requires_grad_(False)
        with contextlib.suppress(NotImplementedError):  # a torch.export GraphModule has no eval()
            frozen.eval()
        channels, height, width = clean.x.shape[1:]
        settings = self.settings()
        with tempfile.TemporaryDirectory(prefix="peer-nc-") as work:
            opt = argparse.Namespace(
                **{
                    **settings,
                    "device": str(device),
                    "input_channel": channels,
                    "input_height": height,
                    "input_width": width,
                    "num_classes": clean.num_classes,
                    "log": "log/",  # train_mask saves each class's mask PNGs under cwd/log/<label>/
                    # outlier_detection writes its median, MAD and index here; the record reads them back
                    "output_path": str(Path(work) / "outlier_detection.txt"),
                    "to_file": True,
                }
            )
            torch.manual_seed(seed)
            loader = DataLoader(
                TensorDataset(clean.x, clean.y),
                batch_size=int(opt.batch_size),
                shuffle=True,
                generator=torch.Generator().manual_seed(seed),
            )
            init_mask = np.ones((1, height, width), dtype=np.float32)
            init_pattern = np.ones((channels, height, width), dtype=np.float32)
            masks, class_s = [], []
            with (
                contextlib.chdir(work),
                _regression_model_on(nc, frozen),
                contextlib.redirect_stdout(io.StringIO()),  # the peer prints every cost change
            ):
                for label in range(clean.num_classes):
                    opt.target_label = label
                    started = time.perf_counter()
                    recorder, opt = nc.train_mask(opt, {"model": frozen}, loader, init_mask, init_pattern)
                    class_s.append(time.perf_counter() - started)
                    masks.append(recorder.mask_best)
                norms = torch.stack([torch.norm(m, p=opt.use_norm) for m in masks])
                flag_list = nc.outlier_detection(norms, {k: k for k in range(clean.num_classes)}, opt)
            median, mad, index = _read_outlier_file(Path(opt.output_path))
        return PeerScan(
            norms=[float(n) for n in norms.cpu()],
            flagged=[int(label) for label, _ in flag_list],
            median=median,
            mad=mad,
            anomaly_index=index,
            threshold=2.0,
            class_s=class_s,
            settings={k: v for k, v in settings.items() if k in PEER_SETTINGS},
        )


# The settings that shape the peer's detection, recorded with every run.
PEER_SETTINGS = (
    "batch_size",
    "mask_lr",
    "init_cost",
    "atk_succ_threshold",
    "early_stop",
    "early_stop_threshold",
    "early_stop_patience",
    "patience",
    "cost_multiplier",
    "use_norm",
    "nc_epoch",
)


@contextlib.contextmanager
def _regression_model_on(nc: ModuleType, model: nn.Module) -> Iterator[None]:
    """The peer's RegressionModel around ``model``, with no (de)normaliser. Its methods are
    replaced for the duration, not subclassed: its ``__init__`` calls ``super(RegressionModel, self)``
    by module-level name."""
    cls = nc.RegressionModel
    replaced = {
        "_get_classifier": lambda self, opt: model,
        "_get_normalize": lambda self, opt: None,
        "_get_denormalize": lambda self, opt: None,
    }
    original = {name: cls.__dict__[name] for name in replaced}
    for name, method in replaced.items():
        setattr(cls, name, method)
    try:
        yield
    finally:
        for name, method in original.items():
            setattr(cls, name, method)


def _read_outlier_file(path: Path) -> tuple[float, float, float]:
    """outlier_detection's "median, MAD, anomaly index" line (the first line of three numbers)."""
    for line in path.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            try:
                median, mad, index = (float(p) for p in parts)
            except ValueError:
                continue
            return median, mad, index
    # A run-time failure of the peer's code, not the user's mistake: exit 2, not 4.
    raise BaeraseError(f"the peer's outlier_detection wrote no 'median, MAD, index' line to {path}")
