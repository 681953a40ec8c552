"""The MLflow job: scan a model version, erase its backdoor, register the cleaned version.

Nothing is written to the registry until the end: the cleaned version is registered and
READY before any tag is set, and on every version the verdict tag is set last. An error
before that leaves the registry untouched; the MLflow run is ended FAILED with the job's
exit code and error as tags (``baerase.exit_code``, ``baerase.error``) when the tracking
server still answers. A tracking server that stops answering mid-job is retried for a
bounded time (``tracking.bounded_http_retries``), then the job stops with one line, exit 2.

Verdict precedence: a scan weaker than the one that recorded a ``backdoor`` verdict (fewer
recovery steps, a higher threshold) never overwrites it; a scan below the documented
minimum (``config.MIN_RECOVERY_STEPS``, ``config.MAX_THRESHOLD``) runs as advisory.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baerase_mlops import __version__
from baerase_mlops.config import (
    JOB_FIELDS,
    MAX_THRESHOLD,
    MIN_RECOVERY_STEPS,
    SETTINGS,
    ScanConfig,
    UnlearningConfig,
    check_normalisation,
)
from baerase_mlops.errors import BaeraseError, UsageError
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.resolve import ModelRef, check_tracking_server, resolve_model_uri

if TYPE_CHECKING:
    from baerase_mlops.core.runtime import Progress
    from baerase_mlops.engine import ModelUnderTest

MODES = ("main", "scan", "erase")


def _default(name: str) -> Any:
    return SETTINGS[name].default


@dataclass(frozen=True)
class JobSettings:
    """The settings of one job: the MLproject parameters, the registry commands' options and the
    webhook job payload. Names, defaults, help and valid ranges are config.SETTINGS'; whatever
    builds these settings (a command line, an MLproject, a JSON payload, Python), the values are
    converted and checked alike, and a bad one raises UsageError naming the option."""

    model_uri: str
    data_uri: str | None = _default("data_uri")
    threshold: float = _default("threshold")
    clean_fraction: float | None = _default("clean_fraction")
    target_asr: float = _default("target_asr")
    max_accuracy_drop: float = _default("max_accuracy_drop")
    method: str = _default("method")
    recovery_steps: int = _default("recovery_steps")  # fewer for a quick scan (detection was measured at 400)
    unlearning: str = _default("unlearning")
    device: str = _default("device")
    seed: int = _default("seed")
    register: bool = _default("register")
    force: bool = _default("force")
    trust_pickle: bool = _default("trust_pickle")
    mean: tuple[float, ...] | None = _default("mean")
    std: tuple[float, ...] | None = _default("std")
    registered_model_name: str | None = _default("registered_model_name")
    skip_validation: bool = _default("skip_validation")

    def __post_init__(self) -> None:
        for name in JOB_FIELDS[1:]:  # the model URI is checked when it is resolved
            object.__setattr__(self, name, SETTINGS[name].convert(getattr(self, name)))
        check_normalisation(self.mean, self.std)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **fields: Any) -> JobSettings:
        """Settings from a command's options (only the job's fields are read; missing ones keep their default)."""
        given = {name: options[name] for name in JOB_FIELDS if name in options} | fields
        return cls(**{"model_uri": "", **given})

    def to_payload(self) -> dict[str, Any]:
        """The webhook job payload (JSON): every field, by its schema name."""
        return {name: (list(v) if isinstance(v := getattr(self, name), tuple) else v) for name in JOB_FIELDS}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> JobSettings:
        unknown = sorted(set(payload) - set(JOB_FIELDS))
        if unknown:
            raise UsageError(f"job payload has fields this tool version does not know: {', '.join(unknown)}")
        return cls(**payload)

    def scan_config(self) -> ScanConfig:
        base = ScanConfig(method=self.method)
        recovery = replace(base.recovery, seed=self.seed, steps=self.recovery_steps)
        return replace(base, recovery=recovery, detection=replace(base.detection, threshold=self.threshold))

    def unlearning_config(self) -> UnlearningConfig:
        return UnlearningConfig(target_asr=self.target_asr, max_accuracy_drop=self.max_accuracy_drop, seed=self.seed)

    @property
    def advisory(self) -> str | None:
        """Why a scan with these settings is only advisory (below the documented minimum), or None."""
        reasons = []
        if self.recovery_steps < MIN_RECOVERY_STEPS:
            reasons.append(f"{self.recovery_steps} recovery steps, fewer than the minimum {MIN_RECOVERY_STEPS}")
        if self.threshold > MAX_THRESHOLD:
            reasons.append(f"threshold {self.threshold:g}, above the maximum {MAX_THRESHOLD:g}")
        return "advisory scan: " + " and ".join(reasons) if reasons else None

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


def run_job(settings: JobSettings, mode: str = "main", progress: Progress | None = None) -> JobOutcome:
    """Run one MLflow job (``main``: scan, erase if flagged, register; ``scan``: verdict only;
    ``erase``: like main, for symmetry with ``baerase erase``) against the current tracking URI.

    The model URI is resolved before torch and the engine are imported (seconds of a job's
    start): a job refused for a wrong URI, a missing version or an unreachable server says so
    at once."""
    import mlflow

    from baerase_mlops.registry import tracking

    if mode not in MODES:
        raise UsageError(f"unknown job mode {mode!r}; choose one of {MODES}")
    tracking.bounded_http_retries()
    uri = mlflow.get_tracking_uri()
    check_tracking_server(uri)
    with tracking.registry_errors(uri, "looking up the model"):
        client = mlflow.MlflowClient()
        ref = resolve_model_uri(settings.model_uri, client)
        # (The device was checked when the settings were made: the schema's device check.)
        settings_hash = T.config_hash(settings.verdict_settings())
        if ref.registered and not settings.force:
            earlier = T.read_verdict(client.get_model_version(ref.name, ref.version).tags)
            if earlier.is_current(__version__, settings_hash) and _done_already(earlier, mode, settings):
                return _reused(ref, earlier)
        run = mlflow.start_run(run_name=f"baerase-{mode} {ref.describe()}")
    from baerase_mlops.core.runtime import no_progress
    from baerase_mlops.registry.loading import download_model, load_model_under_test

    progress = progress or no_progress
    register_as = ref.name if ref.registered else settings.registered_model_name
    stage = tracking.Stage("downloading the model")
    try:
        with tracking.registry_errors(uri, stage), tempfile.TemporaryDirectory(prefix="baerase-") as tmp:
            work = Path(tmp)
            source_dir = download_model(ref, work / "model")
            stage.now = "loading the model"
            evidence: dict[str, Any] = {}
            try:
                mut = load_model_under_test(
                    ref,
                    source_dir,
                    trust_pickle=settings.trust_pickle,
                    mean=settings.mean,
                    std=settings.std,
                    evidence=evidence,
                )
            finally:
                if "modelscan" in evidence:
                    mlflow.log_dict(evidence["modelscan"], "modelscan.json")
            stage.now = "validating the clean data"
            data = _prepare_and_log_clean_data(settings, mut)
            job = _JobContext(
                settings, mode, ref, client, settings_hash, register_as, run.info.run_id, work, stage, progress
            )
            outcome = _scan_erase_register(job, mut=mut, data=data, source_dir=source_dir)
            # Where the job's time went (issue: scan cost), on the run beside the scan's own timings.
            mlflow.log_metrics(stage.timings())
    except BaeraseError as exc:
        tracking.end_job_run(uri, exc.exit_code, str(exc))
        raise
    except BaseException as exc:  # a bug or an interrupt: the run still ends FAILED, the traceback stays
        tracking.end_job_run(uri, 2, f"{type(exc).__name__}: {exc}")
        raise
    tracking.end_job_run(uri, None, None)
    return outcome


def _prepare_and_log_clean_data(settings: JobSettings, mut: ModelUnderTest):
    """The clean set, its validation logged to the run (``validation.json``) whether it
    passed or failed; a failure still stops the job (exit 2) before the registry is touched."""
    import mlflow

    from baerase_mlops.data.validate import DataValidationError
    from baerase_mlops.engine import prepare_clean_data

    try:
        data = prepare_clean_data(
            settings.data_uri, mut, settings.clean_fraction, settings.seed, skip_validation=settings.skip_validation
        )
    except DataValidationError as exc:
        mlflow.log_dict(exc.result.to_json(), "validation.json")
        raise
    mlflow.log_dict(data.validation_record(), "validation.json")
    return data


@dataclass(frozen=True)
class _JobContext:
    """What one run of the job works with, besides the model and its clean data."""

    settings: JobSettings
    mode: str
    ref: ModelRef
    client: Any  # an MlflowClient
    settings_hash: str  # the config hash of settings.verdict_settings()
    register_as: str | None  # the registered model a cleaned version goes to
    run_id: str  # the job's MLflow run
    work: Path  # a temporary folder
    stage: Any  # a tracking.Stage: what the job is doing, for the line a registry failure prints
    progress: Progress


def _scan_erase_register(job: _JobContext, *, mut: ModelUnderTest, data, source_dir: Path) -> JobOutcome:
    settings, mode, ref, client, progress = job.settings, job.mode, job.ref, job.client, job.progress
    settings_hash, register_as, run_id, work, stage = (
        job.settings_hash,
        job.register_as,
        job.run_id,
        job.work,
        job.stage,
    )
    from baerase_mlops.core.runtime import resolve_device
    from baerase_mlops.engine import cleaned_refusal, measure, run_erase, run_scan
    from baerase_mlops.registry import publish, tracking
    from baerase_mlops.report.erase_report import write_erase_report
    from baerase_mlops.report.scan_report import write_scan_report

    tracking.log_params(
        {f"job.{k}": v for k, v in asdict(settings).items()}
        | {
            "job.mode": mode,
            "job.model_format": mut.format,
            "job.clean_images": len(data.clean),
            "job.tool_version": __version__,
            "job.config_hash": settings_hash,
        }
    )
    tracking.log_clean_set(data.clean)
    if settings.advisory:
        from baerase_mlops.report.console import stderr

        tracking.mark_advisory(settings.advisory)
        stderr.print(
            f"[bold yellow]warning: {settings.advisory}: its verdict is advisory (it never overwrites a stronger "
            "scan's backdoor verdict)[/bold yellow]"
        )
    stage.now = "scanning"
    scan = run_scan(mut, data, settings.scan_config(), settings.device, progress)
    tracking.log_verdict(scan.verdict)

    outcome = None
    if mode != "scan" and scan.verdict.backdoor:
        stage.now = "erasing and verifying"
        outcome = run_erase(
            mut, data, scan, settings.unlearning_config(), settings.unlearning, settings.device, progress
        )
        tracking.log_erasure(outcome.metrics)
        metrics = outcome.metrics
    else:
        before = measure(mut, data, scan, mut.model, resolve_device(settings.device))
        metrics = {f"{k}_before": v for k, v in before.items() if k not in ("accuracy_on", "asr_kind")} | {
            "asr_kind": before["asr_kind"],
            "accuracy_on": before["accuracy_on"],
        }
    # The report comes last, so that verdict.json holds the job's phases up to it; the run's
    # phase_* metrics add the report's and the registry writes' own.
    scan.verdict.job_phases = stage.timings()
    stage.now = "reporting"
    report = work / "report"
    write_scan_report(scan, report)
    if outcome is not None:
        write_erase_report(scan, outcome, report)
    tracking.log_report(report)
    stage.now = "writing the results to the registry"
    failure = (
        cleaned_refusal(outcome, target_asr=settings.target_asr, max_accuracy_drop=settings.max_accuracy_drop)
        if outcome is not None and outcome.changed
        else None
    )
    erased = outcome is not None and outcome.changed and failure is None
    if outcome is not None and outcome.verification is not None:
        tracking.log_verification(outcome.verification)

    verdict = "backdoor" if scan.verdict.backdoor else "clean"
    data_uri = str(settings.data_uri or data.clean.source)
    common = {
        T.ANOMALY_INDEX: T.fmt(scan.verdict.anomaly_index),
        T.FLAGGED_CLASSES: json.dumps(scan.verdict.flagged_classes),
        T.MARGIN_INDEX: T.fmt(scan.verdict.margin_index),
        T.WARP_INDEX: T.fmt(scan.verdict.warp_index),
        T.FLAGGED_BY: json.dumps({str(k): scan.verdict.classes[k].flagged_by for k in scan.verdict.flagged_classes}),
        T.ASR_BEFORE: T.fmt(metrics.get("asr_before")),
        T.ACCURACY_BEFORE: T.fmt(metrics.get("accuracy_before")),
        T.ASR_KIND: str(metrics.get("asr_kind", "")),
        **T.provenance(settings_hash=settings_hash, data_uri=data_uri, run_id=run_id),
        T.RECOVERY_STEPS: str(settings.recovery_steps),
        T.THRESHOLD: T.fmt(settings.threshold),
    } | ({T.ADVISORY: settings.advisory} if settings.advisory else {})
    if failure is not None:
        common |= {T.ERASURE: failure[0], T.ERASURE_REASON: failure[1][:4000]}

    recorded = dict(client.get_model_version(ref.name, ref.version).tags) if ref.registered else {}
    if verdict != "backdoor" and _recorded_backdoor_stands(settings, recorded):
        return _kept_backdoor(ref, settings, recorded, scan, run_id, metrics)
    new_mv = None
    new_tags: dict[str, str] = {}
    if erased:
        lineage = {"source": ref.describe(), "run_id": run_id, "tool_version": __version__}
        new_mv = publish.log_cleaned_model(
            mut, outcome.model, source_dir, data.clean.x[:2], register_as if settings.register else None, lineage
        )
    if new_mv is not None:
        # asr_after is the verification's number (fresh triggers, images the unlearning never
        # saw), never the unlearning's own; the lab's real ASR is reported beside it.
        new_tags = common | {
            T.ASR_AFTER: T.fmt(metrics["verified_asr"]),
            T.ASR_KIND: "verified",
            T.ASR_AFTER_IMAGES: str(metrics["verified_asr_images"]),
            T.ASR_AFTER_UPPER: T.fmt(metrics["verified_asr_upper"]),
            T.ACCURACY_AFTER: T.fmt(metrics["accuracy_after"]),
            T.SOURCE_VERSION: str(ref.version or ref.uri),
            T.VERDICT: "cleaned",
        }
        if metrics.get("real_asr_after") is not None:
            new_tags[T.REAL_ASR_AFTER] = T.fmt(metrics["real_asr_after"])
        publish.write_tags(client, new_mv.name, new_mv.version, new_tags)
        client.update_model_version(
            new_mv.name,
            new_mv.version,
            description=(
                f"Cleaned by baerase-mlops {__version__} from {ref.describe()} (run {run_id}): backdoor toward "
                f"class(es) {scan.verdict.flagged_classes} erased and verified by a fresh scan; ASR "
                f"{metrics['asr_before']:.4f} ({metrics['asr_kind']}) -> {metrics['verified_asr']:.4f} (verified on "
                f"{metrics['verified_asr_images']} held-out images, 95% upper bound "
                f"{metrics['verified_asr_upper']:.4f}), "
                f"accuracy {metrics['accuracy_before']:.4f} -> {metrics['accuracy_after']:.4f} "
                f"({metrics['accuracy_on']})."
            ),
        )
    scanned_tags = common | {T.VERDICT: verdict} | _lineage(verdict, new_mv, recorded)
    if ref.registered:
        T.replace_tags(client, ref.name, ref.version, scanned_tags, recorded)
    summary = (f"[{settings.advisory}] " if settings.advisory else "") + scan.verdict.summary()
    if failure is not None:
        summary += f"; no cleaned version was registered: {failure[1]}"
    elif new_mv is not None:
        summary += f"; cleaned model registered as models:/{new_mv.name}/{new_mv.version}"
    return JobOutcome(
        ref.describe(),
        verdict,
        summary,
        False,
        str(new_mv.version) if new_mv else None,
        run_id,
        scanned_tags if ref.registered else {},
        new_tags,
        metrics,
    )


def _lineage(verdict: str, new_mv, recorded: dict[str, str]) -> dict[str, str]:
    """The scanned version's cleaned version: the one just registered, else, when it is found
    backdoored again, the one an earlier run registered (the weights it came from are unchanged)."""
    if new_mv is not None:
        return {T.CLEANED_VERSION: str(new_mv.version)}
    if verdict == "backdoor" and recorded.get(T.VERDICT) == "backdoor" and recorded.get(T.CLEANED_VERSION):
        return {T.CLEANED_VERSION: recorded[T.CLEANED_VERSION]}
    return {}


def _recorded_backdoor_stands(settings: JobSettings, recorded: dict[str, str]) -> bool:
    """A ``backdoor`` verdict is kept against a scan weaker than the one that wrote it."""
    return recorded.get(T.VERDICT) == "backdoor" and T.weaker_than_recorded(
        settings.recovery_steps, settings.threshold, recorded
    )


def _kept_backdoor(
    ref: ModelRef, settings: JobSettings, recorded: dict[str, str], scan, run_id: str, metrics
) -> JobOutcome:
    """The weaker scan's result stays in its run; the version keeps its recorded verdict and tags."""
    from baerase_mlops.registry import tracking

    steps, threshold = T.scan_strength(recorded)
    summary = (
        f"the recorded verdict backdoor stands (run {recorded.get(T.RUN_ID, '?')}: {steps} recovery steps, threshold "
        f"{threshold:g}): this scan ({settings.recovery_steps} steps, threshold {settings.threshold:g}) is weaker and "
        f"found {scan.verdict.summary()!r}, which does not overwrite it; nothing was written to the registry"
    )
    tracking.mark_precedence(summary)
    return JobOutcome(
        ref.describe(),
        "backdoor",
        summary,
        False,
        recorded.get(T.CLEANED_VERSION),
        run_id,
        T.read_verdict(recorded).tags,
        {},
        metrics,
    )


def _reused(ref: ModelRef, earlier: T.RecordedVerdict) -> JobOutcome:
    cleaned = earlier.tags.get(T.CLEANED_VERSION)
    summary = (
        f"already scanned with these settings ({earlier.tags.get(T.SCANNED_AT)}, run {earlier.tags.get(T.RUN_ID)}): "
        f"verdict {earlier.verdict}"
        + (f", cleaned version {cleaned}" if cleaned else "")
        + "; pass force=true to scan again"
    )
    return JobOutcome(
        ref.describe(),
        earlier.verdict or "",
        summary,
        reused=True,
        new_version=cleaned,
        run_id=earlier.tags.get(T.RUN_ID),
        tags=earlier.tags,
    )
