"""The MLflow job: scan a model version, erase its backdoor, register the cleaned version.

Nothing is written to the registry until the end: the cleaned version is registered and
READY before any tag is set, and on every version the verdict tag is set last. An error
before that leaves the registry untouched (the MLflow run is marked failed).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from baerase_mlops import __version__
from baerase_mlops.config import ScanConfig, UnlearningConfig
from baerase_mlops.core.runtime import Progress, no_progress, resolve_device
from baerase_mlops.errors import UsageError
from baerase_mlops.engine import ModelUnderTest, measure, prepare_clean_data, run_erase, run_scan
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.loading import download_model, load_model_under_test
from baerase_mlops.registry.resolve import ModelRef, check_tracking_server, resolve_model_uri

MODES = ("main", "scan", "erase")


@dataclass(frozen=True)
class JobSettings:
    """The MLproject parameters (see MLproject for their documentation)."""

    model_uri: str
    data_uri: str | None = None
    threshold: float = 2.0
    clean_fraction: float | None = None
    target_asr: float = 0.01
    max_accuracy_drop: float = 0.02
    method: str = "baerase"
    recovery_steps: int = 400  # fewer for a quick scan (detection was measured at 400)
    unlearning: str = "baerase"
    device: str = "auto"
    seed: int = 0
    register: bool = True
    force: bool = False
    trust_pickle: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    registered_model_name: str | None = None  # where to register a model that is not a registry version
    skip_validation: bool = False  # skip the Great Expectations validation of the clean set (recorded in the report)

    def scan_config(self) -> ScanConfig:
        base = ScanConfig(method=self.method)
        recovery = replace(base.recovery, seed=self.seed, steps=self.recovery_steps)
        return replace(base, recovery=recovery, detection=replace(base.detection, threshold=self.threshold))

    def unlearning_config(self) -> UnlearningConfig:
        return UnlearningConfig(target_asr=self.target_asr, max_accuracy_drop=self.max_accuracy_drop, seed=self.seed)

    def verdict_settings(self) -> dict[str, Any]:
        """Everything that can change a verdict: what the config hash covers."""
        return {
            "data_uri": self.data_uri,
            "clean_fraction": self.clean_fraction,
            "mean": self.mean,
            "std": self.std,
            "unlearning": self.unlearning,
            "scan": asdict(self.scan_config()),
            "erase": asdict(self.unlearning_config()),
        }


@dataclass
class JobOutcome:
    model: str
    verdict: str  # of the scanned version: "clean" or "backdoor"
    summary: str
    reused: bool = False  # an earlier, current verdict was reported instead of scanning again
    new_version: str | None = None
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # on the scanned version
    new_version_tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def backdoor(self) -> bool:
        return self.verdict == "backdoor"


def _done_already(earlier: T.RecordedVerdict, mode: str, settings: JobSettings) -> bool:
    """A current verdict makes the job a no-op, unless erasing is asked for and still owed."""
    if mode == "scan" or earlier.verdict != "backdoor":
        return True
    return T.CLEANED_VERSION in earlier.tags or not settings.register


def run_job(settings: JobSettings, mode: str = "main", progress: Progress = no_progress) -> JobOutcome:
    """Run one MLflow job (``main``: scan, erase if flagged, register; ``scan``: verdict only;
    ``erase``: like main, for symmetry with ``baerase erase``) against the current tracking URI."""
    import mlflow

    if mode not in MODES:
        raise UsageError(f"unknown job mode {mode!r}; choose one of {MODES}")
    resolve_device(settings.device)  # a device that is not there fails before anything runs
    check_tracking_server(mlflow.get_tracking_uri())
    client = mlflow.MlflowClient()
    ref = resolve_model_uri(settings.model_uri, client)
    settings_hash = T.config_hash(settings.verdict_settings())
    if ref.registered and not settings.force:
        earlier = T.read_verdict(client.get_model_version(ref.name, ref.version).tags)
        if earlier.is_current(__version__, settings_hash) and _done_already(earlier, mode, settings):
            return _reused(ref, earlier)
    register_as = ref.name if ref.registered else settings.registered_model_name
    with tempfile.TemporaryDirectory(prefix="baerase-") as tmp:
        work = Path(tmp)
        source_dir = download_model(ref, work / "model")
        mut = load_model_under_test(ref, source_dir, trust_pickle=settings.trust_pickle, mean=settings.mean, std=settings.std)
        with mlflow.start_run(run_name=f"baerase-{mode} {ref.describe()}") as run:
            data = _prepare_and_log_clean_data(settings, mut)
            return _scan_erase_register(settings, mode, ref, mut, data, source_dir, work, register_as, settings_hash, run.info.run_id, client, progress)


def _prepare_and_log_clean_data(settings: JobSettings, mut: ModelUnderTest):
    """The clean set, its validation logged to the run (``validation.json``) whether it
    passed or failed; a failure still stops the job (exit 2) before the registry is touched."""
    import mlflow

    from baerase_mlops.data.validate import DataValidationError

    try:
        data = prepare_clean_data(settings.data_uri, mut, settings.clean_fraction, settings.seed, skip_validation=settings.skip_validation)
    except DataValidationError as exc:
        mlflow.log_dict(exc.result.to_json(), "validation.json")
        raise
    mlflow.log_dict(data.validation_record(), "validation.json")
    return data


def _scan_erase_register(settings, mode, ref: ModelRef, mut: ModelUnderTest, data, source_dir, work, register_as, settings_hash, run_id, client, progress) -> JobOutcome:
    from baerase_mlops.registry import publish, tracking
    from baerase_mlops.report.erase_report import write_erase_report
    from baerase_mlops.report.scan_report import write_scan_report

    tracking.log_params({f"job.{k}": v for k, v in asdict(settings).items()} | {"job.mode": mode, "job.model_format": mut.format, "job.clean_images": len(data.clean), "job.tool_version": __version__, "job.config_hash": settings_hash})
    tracking.log_clean_set(data.clean)
    scan = run_scan(mut, data, settings.scan_config(), settings.device, progress)
    report = work / "report"
    write_scan_report(scan, report)
    tracking.log_verdict(scan.verdict)

    outcome = None
    if mode != "scan" and scan.verdict.backdoor:
        outcome = run_erase(mut, data, scan, settings.unlearning_config(), settings.unlearning, settings.device, progress)
        write_erase_report(scan, outcome, report)
        tracking.log_erasure(outcome.metrics)
        metrics = outcome.metrics
    else:
        before = measure(mut, data, scan, mut.model, resolve_device(settings.device))
        metrics = {f"{k}_before": v for k, v in before.items() if k not in ("accuracy_on", "asr_kind")} | {"asr_kind": before["asr_kind"], "accuracy_on": before["accuracy_on"]}
    tracking.log_report(report)
    failure = _erasure_failure(outcome, settings) if outcome is not None and outcome.changed else None
    erased = outcome is not None and outcome.changed and failure is None
    if outcome is not None and outcome.verification is not None:
        tracking.log_verification(outcome.verification)

    verdict = "backdoor" if scan.verdict.backdoor else "clean"
    common = {
        T.ANOMALY_INDEX: T.fmt(scan.verdict.anomaly_index),
        T.FLAGGED_CLASSES: json.dumps(scan.verdict.flagged_classes),
        T.ASR_BEFORE: T.fmt(metrics.get("asr_before")),
        T.ACCURACY_BEFORE: T.fmt(metrics.get("accuracy_before")),
        T.ASR_KIND: str(metrics.get("asr_kind", "")),
        T.SCANNED_AT: T.now(),
        T.TOOL_VERSION: __version__,
        T.CONFIG_HASH: settings_hash,
        T.DATA_URI: str(settings.data_uri or data.clean.source),
        T.RUN_ID: run_id,
    }
    if failure is not None:
        common |= {T.ERASURE: failure[0], T.ERASURE_REASON: failure[1][:4000]}

    new_mv = None
    new_tags: dict[str, str] = {}
    if erased:
        lineage = {"source": ref.describe(), "run_id": run_id, "tool_version": __version__}
        new_mv = publish.log_cleaned_model(mut, outcome.model, source_dir, data.clean.x[:2], register_as if settings.register else None, lineage)
    if new_mv is not None:
        # asr_after is the verification's number (fresh triggers, images the unlearning never
        # saw), never the unlearning's own; the lab's real ASR is reported beside it.
        new_tags = common | {
            T.ASR_AFTER: T.fmt(metrics["verified_asr"]), T.ASR_KIND: "verified", T.ACCURACY_AFTER: T.fmt(metrics["accuracy_after"]),
            T.SOURCE_VERSION: str(ref.version or ref.uri), T.VERDICT: "cleaned",
        }  # fmt: skip
        if metrics.get("real_asr_after") is not None:
            new_tags[T.REAL_ASR_AFTER] = T.fmt(metrics["real_asr_after"])
        publish.write_tags(client, new_mv.name, new_mv.version, new_tags)
        client.update_model_version(
            new_mv.name, new_mv.version,
            description=(
                f"Cleaned by baerase-mlops {__version__} from {ref.describe()} (run {run_id}): backdoor toward class(es) "
                f"{scan.verdict.flagged_classes} erased and verified by a fresh scan; ASR {metrics['asr_before']:.4f} "
                f"({metrics['asr_kind']}) -> {metrics['verified_asr']:.4f} (verified), accuracy {metrics['accuracy_before']:.4f} -> "
                f"{metrics['accuracy_after']:.4f} ({metrics['accuracy_on']})."
            ),
        )  # fmt: skip
    scanned_tags = common | {T.VERDICT: verdict} | ({T.CLEANED_VERSION: str(new_mv.version)} if new_mv is not None else {})
    if ref.registered:
        publish.write_tags(client, ref.name, ref.version, scanned_tags)
    summary = scan.verdict.summary()
    if failure is not None:
        summary += f"; no cleaned version was registered: {failure[1]}"
    elif new_mv is not None:
        summary += f"; cleaned model registered as models:/{new_mv.name}/{new_mv.version}"
    return JobOutcome(ref.describe(), verdict, summary, False, str(new_mv.version) if new_mv else None, run_id, scanned_tags if ref.registered else {}, new_tags, metrics)


def _erasure_failure(outcome, settings: JobSettings) -> tuple[str, str] | None:
    """Why an erasure that ran may not be registered as cleaned (None: it may)."""
    m = outcome.metrics
    if not outcome.verified:
        reasons = outcome.verification.reasons if outcome.verification is not None else ["it was not verified"]
        return "failed_verification", "the erasure failed verification: " + "; ".join(reasons)
    if not m.get("reached_target"):
        return "not_reached", f"the unlearning did not bring its recovered-trigger ASR to {settings.target_asr:.2%}"
    drop = m["accuracy_before"] - m["accuracy_after"]
    if drop > settings.max_accuracy_drop + 1e-9:
        return "not_reached", f"the erasure lost {drop:.2%} accuracy ({m['accuracy_on']}), more than {settings.max_accuracy_drop:.2%}"
    return None


def _reused(ref: ModelRef, earlier: T.RecordedVerdict) -> JobOutcome:
    cleaned = earlier.tags.get(T.CLEANED_VERSION)
    summary = (
        f"already scanned with these settings ({earlier.tags.get(T.SCANNED_AT)}, run {earlier.tags.get(T.RUN_ID)}): verdict {earlier.verdict}"
        + (f", cleaned version {cleaned}" if cleaned else "")
        + "; pass force=true to scan again"
    )
    return JobOutcome(ref.describe(), earlier.verdict or "", summary, reused=True, new_version=cleaned, run_id=earlier.tags.get(T.RUN_ID), tags=earlier.tags)
