"""The engine behind every entry point (the scan and the erasure): the CLI, the MLflow project, the
promotion gate and registry scans. Each loads nothing itself: it gets a model under test
and clean data, runs the core, and returns typed results the caller reports or logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from baerase_mlops.config import (
    DetectionConfig,
    MarginConfig,
    RecoveryConfig,
    ScanConfig,
    UnlearningConfig,
    ValidationConfig,
    VerificationConfig,
    WarpConfig,
)
from baerase_mlops.contract import InputContract
from baerase_mlops.core.classifier import fast_layout
from baerase_mlops.core.metrics import accuracy
from baerase_mlops.core.runtime import Progress, no_progress, resolve_device
from baerase_mlops.core.scan import Scanner, ScanResult, Verdict, recovered_trigger_asr
from baerase_mlops.core.unlearning import UNLEARNING_METHODS, UnlearningResult
from baerase_mlops.core.verification import ErasureVerifier, VerificationResult
from baerase_mlops.data import ImageSet, clean_subset
from baerase_mlops.data.imageset import check_values
from baerase_mlops.data.sources import read_images
from baerase_mlops.data.split import stratified_split
from baerase_mlops.data.validate import ValidationResult, validate_clean_set
from baerase_mlops.errors import UsageError
from baerase_mlops.lab.models import Normalize
from baerase_mlops.lab.spec import ModelSpec, load_lab_model, spec_path_for
from baerase_mlops.lab.train import lab_splits, real_asr, true_attack

# Without a lab split, a lab model's clean set is 5% of its training data, as in the paper.
LAB_CLEAN_FRACTION = 0.05


@dataclass
class ModelUnderTest:
    """A model to examine, with its input contract and where it came from."""

    model: nn.Module
    contract: InputContract
    source: str  # a path or URI
    format: str  # "state_dict+spec", "pt2" or "pickle"
    lab_spec: ModelSpec | None = None  # a lab model's spec: its data split and true trigger

    def unwrapped(self, model: nn.Module) -> nn.Module:
        """``model`` without the normalisation wrapper this tool added (for saving)."""
        wrapped = (self.contract.normalization or {}).get("applied_by") == "baerase"
        return model[1] if wrapped and isinstance(model, nn.Sequential) else model


@dataclass
class CleanData:
    """The defender's clean set, and where the lab's test split is known, an evaluation set
    for reporting real accuracy and ASR. It decides nothing about triggers; its accuracy is the one
    the registration rule's accuracy bound reads (:func:`erasure_refusal`).

    ``validation`` is the Great Expectations validation of the data (None: skipped). Its
    JSON, :meth:`validation_record`, goes into every report (``verdict.json``,
    ``clean_images.validation``) and is what to log as an MLflow artifact.
    """

    clean: ImageSet
    evaluation: ImageSet | None
    description: str
    validation: ValidationResult | None = None

    def validation_record(self) -> dict[str, Any]:
        """The validation as JSON (``status`` "passed"), or ``{"status": "skipped"}``."""
        return self.validation.to_json() if self.validation is not None else {"status": "skipped"}


@dataclass
class EraseOutcome:
    model: nn.Module  # the cleaned model, or the original when nothing was flagged
    changed: bool
    unlearning: UnlearningResult | None
    metrics: dict[str, Any] = field(default_factory=dict)
    verification: VerificationResult | None = None  # the independent re-scan of the candidate

    @property
    def verified(self) -> bool:
        """The candidate passed verification: only then may it be called cleaned."""
        return self.verification is not None and self.verification.passed


def cleaned_refusal(outcome: EraseOutcome, *, target_asr: float, max_accuracy_drop: float) -> tuple[str, str] | None:
    """Why an erasure that changed the model may not be called cleaned: ``(code, reason)``, the
    code being the ``baerase.erasure`` tag's value; None when it may (:func:`erasure_refusal`)."""
    m = outcome.metrics
    return erasure_refusal(
        verified=outcome.verified,
        reasons=outcome.verification.reasons if outcome.verification is not None else ["it was not verified"],
        reached_target=bool(m.get("reached_target")),
        accuracy_drop=m["accuracy_before"] - m["accuracy_after"],
        accuracy_on=m["accuracy_on"],
        target_asr=target_asr,
        max_accuracy_drop=max_accuracy_drop,
    )


def erasure_refusal(
    *,
    verified: bool,
    reasons: list[str],
    reached_target: bool,
    accuracy_drop: float,
    accuracy_on: str,
    target_asr: float,
    max_accuracy_drop: float,
) -> tuple[str, str] | None:
    """The rule every path applies before it calls a changed model cleaned (the registry job,
    ``baerase erase``, the benchmark's count): it passed the independent verification, its
    unlearning brought the recovered triggers to ``target_asr``, and it lost at most
    ``max_accuracy_drop`` of the accuracy the run records (``accuracy_on``: a lab model's
    held-out test split where its spec names one, else the verification images, which neither
    the unlearning nor its stopping rule saw)."""
    if not verified:
        return "failed_verification", "the erasure failed verification: " + "; ".join(reasons)
    if not reached_target:
        return "not_reached", f"the unlearning did not bring its recovered-trigger ASR to {target_asr:.2%}"
    if accuracy_drop > max_accuracy_drop + 1e-9:
        return (
            "not_reached",
            f"the erasure lost {accuracy_drop:.2%} accuracy ({accuracy_on}), more than {max_accuracy_drop:.2%}",
        )
    return None


def with_normalization(model: nn.Module, mean: list[float] | None, std: list[float] | None) -> nn.Module:
    """Wrap a model that expects normalised input so that it takes [0, 1] pixels."""
    if mean is None and std is None:
        return model
    if mean is None or std is None or len(mean) != len(std):
        raise UsageError("give --mean and --std together, one value per channel each")
    if any(s <= 0 for s in std):
        raise UsageError(f"--std values must be positive, got {std}")
    return nn.Sequential(Normalize(mean, std), model)


def apply_user_normalization(mut: ModelUnderTest, mean: list[float] | None, std: list[float] | None) -> ModelUnderTest:
    """The model wrapped with the user's mean/std, and the contract saying so (unchanged without them)."""
    if mean is None and std is None:
        return mut
    normalization = {"mean": list(mean or []), "std": list(std or []), "applied_by": "baerase"}
    return replace(
        mut, model=with_normalization(mut.model, mean, std), contract=replace(mut.contract, normalization=normalization)
    )


def lab_contract(spec: ModelSpec, source: str) -> InputContract:
    """A lab model's contract: its normalisation lives inside the model."""
    return InputContract(
        spec.input_shape,
        spec.classes,
        {"mean": list(spec.mean), "std": list(spec.std), "applied_by": "model"},
        source=source,
    )


def load_local_model(
    model_path: str | Path, spec_path: str | Path | None = None, mean=None, std=None
) -> ModelUnderTest:
    """A lab-format model: a state_dict (``model.pt``) and its JSON spec (``model.json``)."""
    model, spec = load_lab_model(model_path, spec_path)
    contract = lab_contract(spec, f"lab spec {spec_path or spec_path_for(model_path)}")
    return apply_user_normalization(
        ModelUnderTest(model, contract, str(model_path), "state_dict+spec", spec), mean, std
    )


def prepare_clean_data(
    data_uri: str | None,
    mut: ModelUnderTest,
    clean_fraction: float | None = None,
    seed: int = 0,
    *,
    validation: ValidationConfig = ValidationConfig(),
    skip_validation: bool = False,
) -> CleanData:
    """Load the clean set and validate it against the model's input contract (unless
    ``skip_validation``). A lab model scanned on its own dataset gets its clean set from
    its training split (``clean_fraction``, default 5%) and is evaluated on its test split;
    any other data URI is the clean set itself (``clean_fraction`` of it, default all).

    Every loaded image is validated one by one (its index in the source is what the user
    can fix), the clean set as a set; a failure raises ``DataValidationError`` (exit 2)."""
    spec = mut.lab_spec
    uri = data_uri or (spec.dataset if spec is not None else None)
    if not uri:
        raise UsageError("no clean data given (--data / data_uri) and the model records no dataset")
    if clean_fraction is not None and not 0.0 < clean_fraction <= 1.0:
        raise UsageError(f"clean fraction must lie in (0, 1], got {clean_fraction}")
    loaded = read_images(uri)  # pixel values and labels as stored: validation reports them by name
    clean, evaluation, description = select_clean_set(loaded, spec, uri, clean_fraction, seed)
    result = None if skip_validation else validate_clean_set(loaded, mut.contract, validation, clean)
    check_values(loaded)  # the data contract's own checks: all that guards the data when validation is skipped
    description += f"; validation: {result.summary()}" if result is not None else "; validation skipped"
    return CleanData(clean, evaluation, description, result)


def select_clean_set(
    loaded: ImageSet, spec: ModelSpec | None, uri: str, clean_fraction: float | None, seed: int
) -> tuple[ImageSet, ImageSet | None, str]:
    """(clean set, evaluation set or None, description) as :func:`prepare_clean_data` says."""
    if spec is not None and spec.dataset == loaded.source and spec.test_fraction is not None:
        train, test = lab_splits(loaded, spec)
        fraction = clean_fraction or LAB_CLEAN_FRACTION
        clean = train if fraction >= 1.0 else clean_subset(train, fraction, seed)
        return clean, test, f"{len(clean)} images: {fraction:.0%} of the lab model's training split of {uri}"
    fraction = clean_fraction or 1.0
    clean = loaded if fraction >= 1.0 else clean_subset(loaded, fraction, seed)
    return clean, None, f"{len(clean)} images from {uri}" + ("" if fraction >= 1.0 else f" ({fraction:.0%})")


def run_scan(
    mut: ModelUnderTest,
    data: CleanData,
    config: ScanConfig = ScanConfig(),
    device: str = "auto",
    progress: Progress = no_progress,
) -> ScanResult:
    result = Scanner(config, device, progress).scan(mut.model, data.clean, mut.contract)
    result.verdict.clean_images["validation"] = data.validation_record()
    return result


def split_holdout(scan: ScanResult, verify_fraction: float) -> tuple[ImageSet, ImageSet]:
    """(stopping-rule part, verification part) of a scan's held-out clean images: the
    unlearning stops on the first; only verification ever sees the second."""
    return stratified_split(scan.holdout, verify_fraction, scan.verdict.seed + 1)


def run_erase(
    mut: ModelUnderTest,
    data: CleanData,
    scan: ScanResult,
    config: UnlearningConfig = UnlearningConfig(),
    method: str = "baerase",
    device: str = "auto",
    progress: Progress = no_progress,
    *,
    verification: VerificationConfig | None = VerificationConfig(),
) -> EraseOutcome:
    """Unlearn the flagged classes' triggers, then verify the candidate independently (a
    fresh re-scan and a trigger search at the backdoor's size, on held-out images the
    unlearning never saw; ``verification=None`` skips it, and nothing may then call the
    result cleaned). A model with nothing flagged goes through unchanged."""
    if method not in UNLEARNING_METHODS:
        raise UsageError(f"unknown unlearning method {method!r}; choose one of {sorted(UNLEARNING_METHODS)}")
    dev = resolve_device(device)
    targets = scan.verdict.flagged_classes
    before = measure(mut, data, scan, mut.model, dev)
    if not targets:
        return EraseOutcome(mut.model, False, None, {**_suffixed(before, "before"), **_suffixed(before, "after")})
    stop_set, verify_set = split_holdout(scan, (verification or VerificationConfig()).verify_fraction)
    result = UNLEARNING_METHODS[method](config, dev, progress).unlearn(
        mut.model, scan.optimisation, stop_set, scan.recovery, targets, scan.warp_flows
    )
    after = measure(mut, data, scan, result.model, dev)
    metrics = {
        **_suffixed(before, "before"),
        **_suffixed(after, "after"),
        "unlearning_steps": result.steps,
        "unlearning_s": result.seconds,
        "reached_target": result.reached_target,
    }
    checked = None
    if verification is not None:
        checked = verify_erasure(
            mut,
            scan,
            result.model,
            verify_set,
            config=verification,
            device=dev,
            progress=progress,
            search_seen=result.searched,
        )
        metrics |= verification_metrics(checked)
        if data.evaluation is None:
            # No lab test split: the accuracy a registry records is the one on images that neither
            # the unlearning nor its stopping rule saw (a small set: its interval is in the metrics).
            metrics |= {
                "accuracy_before": checked.accuracy_before,
                "accuracy_after": checked.accuracy_after,
                "accuracy_on": f"{checked.accuracy_images} verification images",
            }
    return EraseOutcome(result.model, True, result, metrics, checked)


def verify_erasure(
    mut: ModelUnderTest,
    scan: ScanResult,
    candidate: nn.Module,
    verify_set: ImageSet,
    *,
    config: VerificationConfig = VerificationConfig(),
    device: str | torch.device = "auto",
    progress: Progress = no_progress,
    search_seen: bool = False,
) -> VerificationResult:
    """The independent verification of ``candidate`` (see core/verification.py), with the
    original scan's recovery and detection settings and a fresh seed; it passes at or under
    ``config.max_asr``, and never when ``search_seen`` (the unlearning trained on its search)."""
    # Each flagged class is searched for what flagged it: a mask trigger at its smallest trigger's size, a
    # warp at its smallest warp's. A class the warp test alone flagged has a mask size of the natural kind
    # (the size test did not find it small), and a fresh mask search at that size finds natural triggers
    # in a cleaned model too (the lab WaNet: 2 of 18 held-out images where the real trigger kept none).
    classes = scan.verdict.classes
    evidence = {t: set(classes[t].flagged_by.split("+")) for t in scan.verdict.flagged_classes}
    flagged = {t: classes[t].norm for t, by in evidence.items() if by != {"warp"}}
    warped = {t: classes[t].warp for t, by in evidence.items() if "warp" in by}
    verifier = ErasureVerifier(scan_config_of(scan.verdict), config, device, progress)
    return verifier.verify(
        original=mut.model,
        candidate=candidate,
        optimisation=scan.optimisation,
        verify=verify_set,
        contract=mut.contract,
        flagged=flagged,
        search_seen=search_seen,
        warped=warped,
    )


def scan_config_of(verdict: Verdict) -> ScanConfig:
    """The ScanConfig a verdict was reached with (recorded in ``verdict.config``)."""
    recorded = verdict.config
    return ScanConfig(
        method=recorded["method"],
        # A verdict from before the class schedule gave every class the whole budget (and one from
        # before its panel kept the smaller half whatever the classes), one from
        # before the log scale was reached on raw sizes, one from before the lower MAD on every
        # class's, one from before the lower median on the mean of the middle two, and one from
        # before the margin test (or the warp test) without it.
        recovery=RecoveryConfig(**{"screen_steps": 0, "screen_panel": 0, **recorded["recovery"]}),
        detection=DetectionConfig(**{"scale": "raw", "spread": "both", "centre": "mid", **recorded["detection"]}),
        margins=MarginConfig(**recorded["margins"]) if "margins" in recorded else MarginConfig(enabled=False),
        warps=WarpConfig(**recorded["warps"]) if "warps" in recorded else WarpConfig(enabled=False),
        holdout_fraction=recorded["holdout_fraction"],
        eval_draws=recorded["eval_draws"],
        unflagged_draws=recorded.get("unflagged_draws", recorded["eval_draws"]),
    )


def verification_metrics(v: VerificationResult) -> dict[str, Any]:
    """The verification's numbers, flat, for the run and the report."""
    low, high = v.accuracy_drop_interval
    return {
        "verification_passed": v.passed,
        "verified_asr": v.asr,
        "verified_asr_images": v.asr_images,
        "verified_asr_upper": v.asr_upper,
        "verification_anomaly_index": v.rescan.anomaly_index,
        "verification_flagged": v.rescan.flagged_classes,
        "verification_reasons": v.reasons,
        "verification_images": v.accuracy_images,
        "verification_accuracy_before": v.accuracy_before,
        "verification_accuracy_after": v.accuracy_after,
        "verification_accuracy_drop_low": low,
        "verification_accuracy_drop_high": high,
        "verification_s": v.seconds,
        **{f"verification_{part}": seconds for part, seconds in v.timings.items()},
        # The larger-trigger check's closest call: the flagged class's ASR and the most it may be.
        **(
            {
                "verification_larger_trigger_asr": max(c.asr for c in v.larger_triggers),
                "verification_larger_trigger_ceiling": min(c.ceiling for c in v.larger_triggers),
            }
            if v.larger_triggers
            else {}
        ),
    }


def measure(
    mut: ModelUnderTest, data: CleanData, scan: ScanResult, model: nn.Module, device: torch.device
) -> dict[str, Any]:
    """Accuracy and ASR of ``model``: recovered-trigger ASR on the held-out clean images
    (what a defender sees); with a lab model, real accuracy and ASR on its test split."""
    targets = scan.verdict.flagged_classes
    model = model.to(device)
    generator = torch.Generator().manual_seed(scan.verdict.seed + 1)
    evaluation = data.evaluation if data.evaluation is not None else scan.holdout
    known = true_attack(mut.lab_spec) if mut.lab_spec is not None else None
    with fast_layout(model, mut.contract.input_shape, device):
        recovered = max(
            (recovered_trigger_asr(model, scan.recovery, scan.holdout, t, 4, generator, device) for t in targets),
            default=None,
        )
        out: dict[str, Any] = {
            "accuracy": accuracy(model, evaluation.x, evaluation.y, device),
            "accuracy_on": "lab test split" if data.evaluation is not None else "held-out clean images",
            "recovered_asr": recovered,
        }
        if known is not None and data.evaluation is not None:
            attack, target = known
            out["real_asr"] = real_asr(model, data.evaluation, attack, target, device)
    out["asr"] = out.get("real_asr", recovered)
    out["asr_kind"] = "real" if "real_asr" in out else "recovered"
    return out


def _suffixed(values: dict[str, Any], suffix: str) -> dict[str, Any]:
    return {f"{k}_{suffix}" if k not in ("accuracy_on", "asr_kind") else k: v for k, v in values.items()}


def scan_from_report(report_dir: str | Path, data: CleanData) -> ScanResult:
    """An earlier scan's result, with the clean set split as that scan split it."""
    from baerase_mlops.core.scan import split_clean_set
    from baerase_mlops.report.scan_report import read_scan_report, read_warp_flows

    verdict, recovery = read_scan_report(report_dir)
    recorded = verdict.clean_images
    if recorded.get("source") != data.clean.source or recorded.get("total") != len(data.clean):
        raise UsageError(
            f"{report_dir}: that scan used {recorded.get('total')} images of {recorded.get('source')}, "
            f"not these {len(data.clean)} of {data.clean.source}; give the same data, or scan again"
        )
    optimisation, holdout = split_clean_set(data.clean, verdict.config["holdout_fraction"], verdict.seed)
    verdict.clean_images["validation"] = data.validation_record()  # of the data given now
    return ScanResult(verdict, recovery, optimisation, holdout, read_warp_flows(report_dir))


def erase_job(
    mut: ModelUnderTest,
    data: CleanData,
    scan_config: ScanConfig,
    out_path: str | Path,
    report_dir: str | Path | None = None,
    *,
    unlearning: str = "baerase",
    target_asr: float | None = None,
    max_accuracy_drop: float | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: Progress = no_progress,
) -> tuple[EraseOutcome, ScanResult, dict[str, Path]]:
    """``baerase erase``: scan (or reuse ``report_dir``), unlearn, and write the cleaned
    state_dict, its spec and the report (``<out stem>_report/``)."""
    from dataclasses import replace

    from baerase_mlops.lab.spec import save_lab_model
    from baerase_mlops.report.erase_report import write_erase_report

    if mut.lab_spec is None:
        raise UsageError(
            "erase writes lab-format models (state_dict + spec); registry models go through the MLflow project"
        )
    overrides = {"seed": seed, "target_asr": target_asr, "max_accuracy_drop": max_accuracy_drop}
    config = replace(UnlearningConfig(), **{k: v for k, v in overrides.items() if v is not None})
    scan = (
        scan_from_report(report_dir, data)
        if report_dir is not None
        else run_scan(mut, data, scan_config, device, progress)
    )
    outcome = run_erase(mut, data, scan, config, unlearning, device, progress)
    spec = replace(
        mut.lab_spec,
        metrics={k: v for k, v in outcome.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
    )
    model_file, spec_file = save_lab_model(mut.unwrapped(outcome.model), spec, out_path)
    report = Path(out_path).with_name(Path(out_path).stem + "_report")
    write_erase_report(scan, outcome, report)
    return outcome, scan, {"model": model_file, "spec": spec_file, "report": report}
