"""What a job logs to its MLflow run: params, metrics, the clean set as an input, the report;
and how the run ends when the job fails (its exit code and error as tags, FAILED)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baerase_mlops.errors import RegistryError

if TYPE_CHECKING:  # not imported at run time: a job refused before loading never imports torch
    from baerase_mlops.core.scan import Verdict
    from baerase_mlops.core.verification import VerificationResult
    from baerase_mlops.data import ImageSet


def log_params(settings: dict[str, Any]) -> None:
    import mlflow

    mlflow.log_params({k: ("" if v is None else str(v))[:500] for k, v in settings.items()})


def log_clean_set(data: ImageSet, context: str = "clean") -> None:
    """The clean set as a run input (name, digest, schema), not a copy of the pixels."""
    import mlflow

    dataset = mlflow.data.from_numpy(features=data.x.numpy(), targets=data.y.numpy(), name=data.source)
    mlflow.log_input(dataset, context=context)


def log_verdict(verdict: Verdict) -> None:
    import mlflow

    metrics = {
        "anomaly_index": verdict.anomaly_index,
        "median_norm": verdict.median_norm,
        "margin_index": verdict.margin_index,
        "warp_index": verdict.warp_index,
        "flagged_count": len(verdict.flagged_classes),
        # What the class schedule spent: steps summed over the classes (all classes x the budget
        # without it), beside each class's own count below.
        "recovery_class_steps": sum(c.steps for c in verdict.classes),
        **{f"timing_{k}": v for k, v in verdict.timings.items()},
    }
    for c in verdict.classes:
        metrics[f"norm_class_{c.label}"] = c.norm
        metrics[f"anomaly_index_class_{c.label}"] = c.anomaly_index
        metrics[f"holdout_asr_class_{c.label}"] = c.holdout_asr
        metrics[f"margin_index_class_{c.label}"] = c.margin_index
        metrics[f"warp_class_{c.label}"] = c.warp
        metrics[f"warp_index_class_{c.label}"] = c.warp_index
        metrics[f"recovery_steps_class_{c.label}"] = c.steps
    # NaN: not measured (a margin or warp test switched off, a class with no held-out image)
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and not math.isnan(v)})
    mlflow.set_tag("baerase.status", verdict.status)


def log_report(report_dir: Path) -> None:
    """The report folder (verdict, trigger images, erasure) under the run's ``report/``."""
    import mlflow

    mlflow.log_artifacts(str(report_dir), artifact_path="report")


def log_erasure(metrics: dict[str, Any]) -> None:
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None})


# MLflow's own HTTP retries (7 retries, backoff factor 2, 120 s timeout) keep a job waiting on
# a dead tracking server for minutes. A job retries each request 4 times with backoff
# 0 + 2 + 4 + 8 s (about 15 s for a server that refuses connections; at most 5 x 20 s for one
# that accepts and never answers), then stops with one line and exit 2. Values the user set
# in the environment win.
HTTP_RETRY_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
EXIT_CODE_TAG = "baerase.exit_code"  # on the job's run: its own exit code (`mlflow run` always exits 1 on failure)
ERROR_TAG = "baerase.error"  # on the job's run: the error message that ended it
MAX_TAG_CHARS = 5000  # MLflow's limit on a tag value is 8,000 characters


def bounded_http_retries() -> None:
    """Bound MLflow's HTTP retries for this process (see HTTP_RETRY_ENV)."""
    import os

    for name, value in HTTP_RETRY_ENV.items():
        os.environ.setdefault(name, value)


class Stage:
    """What the job is doing, for the one line that says where a registry failure hit it, and
    how long each stage took (wall seconds, summed where a stage comes back)."""

    def __init__(self, now: str):
        self._now = now
        self._since = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @property
    def now(self) -> str:
        return self._now

    @now.setter
    def now(self, stage: str) -> None:
        self._close()
        self._now = stage

    def _close(self) -> None:
        moment = time.perf_counter()
        self.seconds[self._now] = self.seconds.get(self._now, 0.0) + moment - self._since
        self._since = moment

    def timings(self) -> dict[str, float]:
        """Seconds per stage so far, the current one included, as MLflow metric names
        (``phase_scanning_s``: the stage's first word)."""
        self._close()
        phases: dict[str, float] = {}
        for name, seconds in self.seconds.items():
            key = f"phase_{name.split()[0]}_s"
            phases[key] = phases.get(key, 0.0) + seconds
        return phases

    def __str__(self) -> str:
        return self.now


@contextmanager
def registry_errors(tracking_uri: str, stage: object) -> Iterator[None]:
    """Turn an MLflow or HTTP failure of the tracking server into one RegistryError line (exit 2)."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, requests.RequestException, ConnectionError) as exc:
        raise RegistryError(
            f"the MLflow tracking server at {tracking_uri} failed while {stage}: {_one_line(exc)}"
        ) from exc


def server_unreachable(exc: BaseException) -> bool:
    """The failure is the tracking server not answering (after MLflow's retries), not a refusal:
    the error reads like a broken connection, or the server does not answer a health check now."""
    import mlflow

    text = getattr(exc, "message", None) or str(exc)
    markers = (
        "Max retries exceeded",
        "Connection refused",
        "NewConnectionError",
        "Read timed out",
        "RemoteDisconnected",
        "Connection broken",
        "IncompleteRead",
    )
    return any(m in text for m in markers) or not server_answers(mlflow.get_tracking_uri())


def _one_line(exc: Exception) -> str:
    from mlflow.exceptions import MlflowException

    text = exc.message if isinstance(exc, MlflowException) else str(exc)
    if server_unreachable(exc):
        retries = HTTP_RETRY_ENV["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
        return f"it stopped answering (gave up after {retries} retries); nothing more was written to the registry"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:300]


def server_answers(tracking_uri: str) -> bool:
    """A quick look (2 s) before writing to a server that may just have failed."""
    if not tracking_uri.startswith(("http://", "https://")):
        return True
    import requests

    try:
        return requests.get(tracking_uri.rstrip("/") + "/health", timeout=2).ok
    except requests.RequestException:
        return False


def end_job_run(tracking_uri: str, exit_code: int | None, error: str | None) -> None:
    """End the active run: FINISHED, or FAILED with the job's exit code and error as tags.
    Never raises: the job's own error is what the user must see."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if mlflow.active_run() is None:
        return
    if exit_code is None:
        mlflow.end_run()
        return
    if server_answers(tracking_uri):
        try:
            mlflow.set_tags({EXIT_CODE_TAG: str(int(exit_code)), ERROR_TAG: (error or "")[:MAX_TAG_CHARS]})
            mlflow.end_run("FAILED")
            return
        except (MlflowException, OSError):
            pass
    _forget_active_run()


def _forget_active_run() -> None:
    """Drop the active run locally, without a request: the server cannot be told, and MLflow's
    exit handler would otherwise retry ending it (and print a traceback) after the job's error."""
    from mlflow.tracking.fluent import _active_run_stack  # private, pinned MLflow: no public way to forget a run

    _active_run_stack.get().clear()


def record_exit(exit_code: int, error: str | None = None) -> None:
    """Under `mlflow run` (MLFLOW_RUN_ID set): the entry point's exit code and error as tags on
    its run, since `mlflow run` itself exits 1 on any failure. Never raises."""
    import os

    import mlflow
    from mlflow.exceptions import MlflowException

    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id or not server_answers(mlflow.get_tracking_uri()):
        return
    tags = {EXIT_CODE_TAG: str(int(exit_code))} | ({ERROR_TAG: error[:MAX_TAG_CHARS]} if error else {})
    try:
        client = mlflow.MlflowClient()
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
    except (MlflowException, OSError):
        pass


def mark_advisory(reason: str) -> None:
    import mlflow

    mlflow.set_tag("baerase.advisory", reason)


def mark_precedence(summary: str) -> None:
    import mlflow

    mlflow.set_tag("baerase.precedence", summary[:MAX_TAG_CHARS])


def log_verification(verification: VerificationResult) -> None:
    """The second, independent scan of the candidate: its verdict and the trigger search, as
    ``verification.json``; the run then holds both scans (``report/verdict.json`` is the first)."""
    import mlflow

    mlflow.log_dict(verification.to_json(), "verification.json")
    mlflow.set_tag("baerase.verification", "passed" if verification.passed else "failed")
