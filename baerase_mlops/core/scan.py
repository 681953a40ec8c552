"""A scan: recover every class's smallest trigger, then test the sizes for an outlier.

The clean set is split (stratified, seeded) into an optimisation part, on which the
triggers are recovered, and a held-out part, on which each class's recovered triggers
are measured (recovered-trigger ASR). Nothing here knows the attack.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch
from torch import nn

from baerase_mlops import __version__
from baerase_mlops.config import ScanConfig
from baerase_mlops.contract import InputContract
from baerase_mlops.core.classifier import check_classifier, fast_layout, frozen
from baerase_mlops.core.detection import AnomalyDetector
from baerase_mlops.core.margins import MarginResult, MaxMarginDetector
from baerase_mlops.core.metrics import predict
from baerase_mlops.core.recovery import RECOVERY_METHODS, RecoveryResult
from baerase_mlops.core.runtime import Progress, no_progress, resolve_device
from baerase_mlops.core.triggers import stamp
from baerase_mlops.core.warps import WarpDetector, WarpResult
from baerase_mlops.data.imageset import ImageSet
from baerase_mlops.data.split import stratified_split
from baerase_mlops.errors import DataError
from baerase_mlops.jsonable import json_safe

STATUS_BACKDOOR = "backdoor"
STATUS_NONE_FOUND = "no_backdoor_found"


@dataclass(frozen=True)
class ClassFinding:
    label: int
    name: str
    norm: float  # mean mask L1 of the smallest successful recovered trigger
    reached: bool  # a trigger reached the success threshold
    anomaly_index: float
    holdout_asr: float  # share of held-out clean images its recovered triggers send to it
    flagged: bool
    train_asr: float = float("nan")  # on the optimisation images, at the kept round
    margin: float = float("nan")  # largest logit margin an input reached for the class (core.margins)
    margin_index: float = float("nan")  # its anomaly index, positive above the median
    flagged_by: str = ""  # which evidence flagged it: "size", "margin", "warp" or several joined by "+"
    steps: int = 0  # recovery steps the class got (the class schedule stops some early; 0: not recorded)
    weight: float = 1.0  # how many classes its size stands for in the size test (the screen's panel)
    warp: float = float("nan")  # smallest smooth warp (mean displacement, pixels) that sent images to it (core.warps)
    warp_index: float = float("nan")  # its anomaly index, positive below the median


@dataclass
class Verdict:
    """What a scan concluded, with everything needed to audit the conclusion."""

    status: str  # "backdoor" or "no_backdoor_found" (a miss is possible: not "clean")
    anomaly_index: float  # of the class with the smallest trigger
    flagged_classes: list[int]
    threshold: float
    median_norm: float
    mad: float  # in the detector's units (log sizes by default: config["detection"]["scale"])
    classes: list[ClassFinding]
    method: str
    device: str
    seed: int
    timings: dict[str, float]
    contract: InputContract
    clean_images: dict[str, Any]
    config: dict[str, Any]
    flag_below: float = float("nan")  # a class whose norm is under this is flagged (the threshold, as a norm)
    margin_index: float = float("nan")  # the largest class's maximum-margin index (NaN: the test was off)
    margin_flag_above: float = float("nan")  # a class whose maximum margin is over this is flagged
    warp_index: float = float("nan")  # the smallest warp's index (NaN: the test was off)
    warp_flag_below: float = float("nan")  # a class whose smallest warp is under this is flagged
    # Seconds of each phase of the job that ran the scan (downloading, loading, validating,
    # scanning, erasing: the run's phase_*_s metrics up to the report); empty outside a job.
    job_phases: dict[str, float] = field(default_factory=dict)
    tool_version: str = __version__
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def backdoor(self) -> bool:
        return self.status == STATUS_BACKDOOR

    def summary(self) -> str:
        margin = "" if math.isnan(self.margin_index) else f", margin index {self.margin_index:.2f}"
        if not math.isnan(self.warp_index):
            margin += f", warp index {self.warp_index:.2f}"
        if self.backdoor:
            names = ", ".join(
                f"{k} ({self.classes[k].name}, by {self.classes[k].flagged_by or 'size'})" for k in self.flagged_classes
            )
            return (
                f"backdoor found: class {names}; anomaly index {self.anomaly_index:.2f}{margin} "
                f"(threshold {self.threshold:g})"
            )
        return (
            f"no backdoor found: largest anomaly index {self.anomaly_index:.2f}{margin} "
            f"<= {self.threshold:g} "
            "(a miss is possible; this is not a proof that the model is clean)"
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["contract"] = self.contract.to_json()
        data["backdoor"] = self.backdoor
        data["summary"] = self.summary()
        return json_safe(data)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        # JSON holds NaN (a test that was off or inconclusive) as null
        fields |= {
            k: float("nan") for k, v in fields.items() if v is None and cls.__dataclass_fields__[k].type == "float"
        }
        fields["classes"] = [
            ClassFinding(**{k: (float("nan") if v is None else v) for k, v in c.items()}) for c in data["classes"]
        ]
        fields["contract"] = InputContract.from_json(data["contract"])
        return cls(**fields)


@dataclass
class ScanResult:
    verdict: Verdict
    recovery: RecoveryResult
    optimisation: ImageSet  # the part of the clean set the triggers were recovered on
    holdout: ImageSet  # the part kept out, for recovered-trigger ASR (and unlearning's stopping rule)
    # The smallest warp of each class the warp test flagged (control points, core.warps): what the
    # unlearning resamples images through. Empty when the test was off or flagged nothing.
    warp_flows: dict[int, torch.Tensor] = field(default_factory=dict)


def split_clean_set(clean: ImageSet, holdout_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """(optimisation, held-out) parts of the defender's clean set, stratified."""
    if len(clean) < 2 * clean.num_classes:
        raise DataError(
            f"{clean.source}: {len(clean)} clean images for {clean.num_classes} classes; "
            f"a scan needs at least two per class ({2 * clean.num_classes})"
        )
    present = sum(1 for n in clean.class_counts() if n > 0)
    if present < 2:
        raise DataError(f"{clean.source}: the clean set holds a single class; it needs images of several")
    return stratified_split(clean, holdout_fraction, seed)


@torch.no_grad()
def recovered_trigger_asr(
    model: nn.Module,
    recovery: RecoveryResult,
    data: ImageSet,
    label: int,
    draws: int,
    generator: torch.Generator,
    device: torch.device,
) -> float:
    """Share of ``data``'s images outside ``label`` sent to ``label`` by fresh triggers of its family."""
    x = data.x[data.y != label]
    if len(x) == 0:
        return float("nan")
    x = x.repeat(draws, 1, 1, 1)
    mask, pattern = recovery.sample(label, len(x), generator)
    stamped = stamp(x, mask, pattern)
    return float((predict(model, stamped, device) == label).float().mean())


class Scanner:
    """Scan a classifier for backdoors from a small clean set."""

    def __init__(
        self, config: ScanConfig = ScanConfig(), device: str | torch.device = "auto", progress: Progress = no_progress
    ) -> None:
        if config.method not in RECOVERY_METHODS:
            raise ValueError(f"unknown recovery method {config.method!r}; choose one of {sorted(RECOVERY_METHODS)}")
        if config.eval_draws < 1 or config.unflagged_draws < 1:
            raise ValueError(
                f"eval_draws ({config.eval_draws}) and unflagged_draws ({config.unflagged_draws}) must be at least 1"
            )
        self.config = config
        self.device = resolve_device(device)
        self.progress = progress

    def scan(self, model: nn.Module, clean: ImageSet, contract: InputContract) -> ScanResult:
        c = self.config
        started = time.perf_counter()
        if clean.input_shape != tuple(contract.input_shape):
            raise DataError(
                f"{clean.source}: images are {'x'.join(map(str, clean.input_shape))} (C x H x W) but the model "
                f"takes {'x'.join(map(str, contract.input_shape))}"
            )
        if clean.num_classes != contract.num_classes:
            raise DataError(
                f"{clean.source}: the data have {clean.num_classes} classes but the model {contract.num_classes}"
            )
        optimisation, holdout = split_clean_set(clean, c.holdout_fraction, c.recovery.seed)
        return self.scan_parts(model, optimisation, holdout, contract, source=clean.source, started=started)

    def scan_parts(
        self,
        model: nn.Module,
        optimisation: ImageSet,
        holdout: ImageSet,
        contract: InputContract,
        *,
        source: str | None = None,
        started: float | None = None,
    ) -> ScanResult:
        """A scan on a given split: recovery on ``optimisation``, held-out ASR on ``holdout``
        (a verification re-scan keeps the images the unlearning never saw held out)."""
        c = self.config
        started = time.perf_counter() if started is None else started
        model = model.to(self.device)
        check_classifier(model, contract.input_shape, contract.num_classes, self.device)
        with fast_layout(model, contract.input_shape, self.device):
            recovery = RECOVERY_METHODS[c.method](c.recovery, self.device, self.progress).recover(
                model, optimisation.x, optimisation.y, contract.num_classes
            )
            margins = self._margins(model, contract)
            warps = self._warps(model, optimisation, contract)
            evaluated = time.perf_counter()
            detection = AnomalyDetector(c.detection).detect(recovery.norms, recovery.weights)
            evidence = {
                "size": set(detection.flagged),
                "margin": set(margins.flagged) if margins else set(),
                "warp": set(warps.flagged) if warps else set(),
            }
            flagged = sorted(set().union(*evidence.values()))
            # In the fast layout too: the held-out images of 43 classes are tens of thousands of
            # forward passes (22 s of a GTSRB scan on 2 cores in the model's own layout).
            generator = torch.Generator().manual_seed(c.recovery.seed)
            with frozen(model):
                holdout_asr = [
                    recovered_trigger_asr(
                        model,
                        recovery,
                        holdout,
                        k,
                        c.eval_draws if k in flagged else c.unflagged_draws,
                        generator,
                        self.device,
                    )
                    for k in range(contract.num_classes)
                ]
        findings = [
            ClassFinding(
                k,
                contract.classes[k],
                recovery.norms[k],
                recovery.reached[k],
                detection.indices[k],
                holdout_asr[k],
                k in flagged,
                recovery.train_asr[k],
                margins.margins[k] if margins else float("nan"),
                margins.indices[k] if margins else float("nan"),
                "+".join(name for name, classes in evidence.items() if k in classes),
                recovery.class_steps[k],
                recovery.weights[k],
                warps.sizes[k] if warps else float("nan"),
                warps.indices[k] if warps else float("nan"),
            )
            for k in range(contract.num_classes)
        ]
        finished = time.perf_counter()
        verdict = Verdict(
            status=STATUS_BACKDOOR if flagged else STATUS_NONE_FOUND,
            anomaly_index=detection.anomaly_index,
            flagged_classes=flagged,
            threshold=detection.threshold,
            median_norm=detection.median,
            mad=detection.mad,
            flag_below=detection.flag_below,
            margin_index=max(margins.indices) if margins else float("nan"),
            margin_flag_above=margins.flag_above if margins else float("nan"),
            warp_index=max(warps.indices) if warps and warps.conclusive else float("nan"),
            warp_flag_below=warps.flag_below if warps else float("nan"),
            classes=findings,
            method=c.method,
            device=str(self.device),
            seed=c.recovery.seed,
            timings={
                "recovery_s": recovery.seconds,
                "margins_s": margins.seconds if margins else 0.0,
                "warps_s": warps.seconds if warps else 0.0,
                "evaluation_s": finished - evaluated,
                "total_s": finished - started,
            },
            contract=contract,
            clean_images={
                "source": source or optimisation.source,
                "total": len(optimisation) + len(holdout),
                "optimisation": len(optimisation),
                "holdout": len(holdout),
            },
            config=asdict(c),
        )
        flows = {k: warps.flows[k : k + 1] for k in warps.flagged} if warps else {}
        return ScanResult(verdict, recovery, optimisation, holdout, flows)

    def _margins(self, model: nn.Module, contract: InputContract) -> MarginResult | None:
        """The trigger-agnostic test (core.margins), seeded like the recovery; None when it is off."""
        c = self.config
        if not c.margins.enabled:
            return None
        detector = MaxMarginDetector(
            c.margins, self.device, self.progress, threshold=c.detection.threshold, seed=c.recovery.seed
        )
        return detector.detect(model, tuple(contract.input_shape), contract.num_classes, tuple(contract.value_range))

    def _warps(self, model: nn.Module, optimisation: ImageSet, contract: InputContract) -> WarpResult | None:
        """The warp test (core.warps) on the recovery's images, seeded like the recovery; None when it is off."""
        c = self.config
        if not c.warps.enabled:
            return None
        detector = WarpDetector(
            c.warps, self.device, self.progress, threshold=c.detection.threshold, seed=c.recovery.seed
        )
        return detector.detect(model, optimisation.x, optimisation.y, contract.num_classes)
