"""Scan one registry version unattended: in a pool process, a Ray task or the webhook worker.

``scan_version`` never raises: it runs the MLflow job (``run_job``) and returns what became
of the version. A failure that will happen again (a model that cannot be loaded, data that
do not fit it) is recorded on the version as verdict ``error`` with the reason in
``baerase.error``, so that audits show it; a registry failure, which may pass, writes
nothing and is marked retryable.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from baerase_mlops import __version__
from baerase_mlops.errors import BaeraseError, RegistryError
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.job import JobSettings

MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class VersionScan:
    """What an unattended scan did to one version."""

    model: str  # models:/name/N
    action: str  # "scanned", "reused" (a current verdict was there) or "error"
    verdict: str | None = None  # of the scanned version
    new_version: str | None = None  # the cleaned version it registered
    summary: str = ""
    seconds: float = 0.0
    retryable: bool = False  # an error that may pass (the registry), nothing was recorded


def init_worker(tracking_uri: str | None, threads: int) -> None:
    """Set up a worker process: its tracking server, and its share of the CPU for torch."""
    import mlflow
    import torch

    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
        mlflow.set_tracking_uri(tracking_uri)
    # Under `mlflow run` the parent's run id is in the environment: each scan gets its own run.
    os.environ.pop("MLFLOW_RUN_ID", None)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    torch.set_num_threads(max(1, threads))


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def scan_version(
    settings: JobSettings, mode: str = "main", tracking_uri: str | None = None, threads: int | None = None
) -> VersionScan:
    """Run the job on ``settings.model_uri`` (a registry version); never raises."""
    from baerase_mlops.registry.job import run_job

    if tracking_uri is not None or threads is not None:
        init_worker(tracking_uri, threads or threads_per_worker(1))
    start = time.monotonic()
    try:
        outcome = run_job(settings, mode)
    except RegistryError as exc:
        return VersionScan(
            settings.model_uri, "error", summary=str(exc), seconds=time.monotonic() - start, retryable=True
        )
    except BaeraseError as exc:
        record_error(settings, str(exc))
        return VersionScan(settings.model_uri, "error", "error", summary=str(exc), seconds=time.monotonic() - start)
    except Exception as exc:  # a bug must not stop a registry-wide scan; it is reported, not recorded
        return VersionScan(
            settings.model_uri, "error", summary=f"{type(exc).__name__}: {exc}", seconds=time.monotonic() - start
        )
    action = "reused" if outcome.reused else "scanned"
    return VersionScan(
        settings.model_uri, action, outcome.verdict, outcome.new_version, outcome.summary, time.monotonic() - start
    )


def record_error(settings: JobSettings, message: str) -> None:
    """Verdict ``error`` on the version, with the reason, for this tool version and settings."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from baerase_mlops.registry.resolve import resolve_model_uri

    client = mlflow.MlflowClient()
    try:
        ref = resolve_model_uri(settings.model_uri, client)
        tags = {
            T.ERROR: message[:MAX_ERROR_CHARS],
            T.SCANNED_AT: T.now(),
            T.TOOL_VERSION: __version__,
            T.CONFIG_HASH: T.config_hash(settings.verdict_settings()),
            T.DATA_URI: str(settings.data_uri or ""),
            T.VERDICT: "error",
        }
        existing = dict(client.get_model_version(ref.name, ref.version).tags)
        if existing.get(T.VERDICT) == "backdoor":
            return  # a failed scan is no evidence: it never hides a recorded backdoor
        T.replace_tags(client, ref.name, ref.version, tags, existing)
    except (BaeraseError, MlflowException, OSError):
        pass  # the version is gone or the registry is down: there is nothing to record on
