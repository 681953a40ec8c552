"""``baerase scan-registry``: walk the registry (page by page), skip every version whose
verdict is current for this tool version and these settings, scan the rest with bounded
concurrency (a local process pool, or one Ray task per version), and record a summary.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from baerase_mlops import __version__
from baerase_mlops.config import RegistryScanConfig
from baerase_mlops.errors import ExitCode, NothingToScanError, UsageError
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.job import JobSettings
from baerase_mlops.registry.scanning import VersionScan, init_worker, scan_version, threads_per_worker
from baerase_mlops.registry.versions import VersionInfo, is_current, settings_for, walk_registry

EXECUTORS = ("local", "ray")
OnDone = Callable[[VersionScan], None]


@dataclass
class ScanPlan:
    """What a registry scan will do with each matched version."""

    to_scan: list[JobSettings] = field(default_factory=list)
    current: list[VersionInfo] = field(default_factory=list)  # skipped: the verdict is current
    not_ready: list[VersionInfo] = field(default_factory=list)  # skipped: still registering, or failed to


@dataclass
class RegistryScanResult:
    filter: str | None
    executor: str
    started_at: str
    seconds: float
    plan: ScanPlan
    results: list[VersionScan]
    run_id: str | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def matched(self) -> int:
        return len(self.plan.to_scan) + len(self.plan.current) + len(self.plan.not_ready)

    def counts(self) -> dict[str, int]:
        verdicts = [r.verdict for r in self.results]
        return {
            "matched": self.matched,
            "skipped_current": len(self.plan.current),
            "skipped_not_ready": len(self.plan.not_ready),
            "scanned": sum(r.action == "scanned" for r in self.results),
            "errors": sum(r.action == "error" for r in self.results),
            "backdoor": verdicts.count("backdoor"),
            "cleaned_versions_registered": sum(r.new_version is not None for r in self.results),
        }

    def open_backdoors(self) -> list[str]:
        """Versions that carry a backdoor with no cleaned version: scanned now or before."""
        now = [r.model for r in self.results if r.verdict == "backdoor" and r.new_version is None]
        before = [
            v.uri for v in self.plan.current if v.recorded.verdict == "backdoor" and T.CLEANED_VERSION not in v.tags
        ]
        return now + before

    def exit_code(self) -> ExitCode:
        if any(r.action == "error" for r in self.results):
            return ExitCode.ERROR
        return ExitCode.BACKDOOR if self.open_backdoors() else ExitCode.PASSED


def plan_scan(versions: list[VersionInfo], base: JobSettings, data_override: str | None = None) -> ScanPlan:
    plan = ScanPlan()
    for info in versions:
        settings = settings_for(base, info, data_override)
        if info.status != "READY":
            plan.not_ready.append(info)
        elif not is_current(settings, info):
            plan.to_scan.append(settings)
        elif info.recorded.verdict == "error":
            plan.to_scan.append(replace(settings, force=True))  # an error is no verdict on the model: try again
        else:
            plan.current.append(info)
    return plan


def run_local(
    jobs: list[JobSettings], mode: str, workers: int, tracking_uri: str | None, on_done: OnDone
) -> list[VersionScan]:
    """A pool of ``workers`` processes (spawned: torch and fork do not mix), each its share of the CPUs."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if not jobs:
        return []
    workers = min(workers, len(jobs))
    results = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=init_worker, initargs=(tracking_uri, threads_per_worker(workers))
    ) as pool:
        futures = {pool.submit(scan_version, settings, mode): settings for settings in jobs}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # the worker process died (killed, out of memory)
                result = VersionScan(
                    futures[future].model_uri,
                    "error",
                    summary=f"the worker process died: {type(exc).__name__}: {exc}",
                    retryable=True,
                )
            on_done(result)
            results.append(result)
    return results


def ray_gpus_per_task(device: str, cluster_gpus: float) -> float:
    """One GPU per task when the scan uses CUDA: asked for, or ``auto`` on a cluster with GPUs."""
    if device.startswith("cuda"):
        return 1
    return 1 if device == "auto" and cluster_gpus > 0 else 0


def run_ray(
    jobs: list[JobSettings], mode: str, workers: int, tracking_uri: str | None, address: str | None, on_done: OnDone
) -> list[VersionScan]:
    """One Ray task per version, at most ``workers`` in flight; GPUs requested when the scan uses CUDA.

    Connects to ``address`` (or ``RAY_ADDRESS``); without either, starts a local instance of
    ``workers`` CPUs and stops it after. The cluster's workers need this package installed."""
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'baerase-mlops[ray]'") from None
    if not jobs:
        return []
    env = {"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {}
    started_here = not ray.is_initialized()
    if started_here:
        address = address or os.environ.get("RAY_ADDRESS")
        kwargs = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
        ray.init(runtime_env={"env_vars": env}, log_to_driver=False, **kwargs)
    try:
        gpus = ray_gpus_per_task(jobs[0].device, ray.cluster_resources().get("GPU", 0))
        task = ray.remote(scan_version).options(num_cpus=1, num_gpus=gpus, max_retries=1)
        pending: dict = {}
        results: list[VersionScan] = []
        queue = list(jobs)
        while queue or pending:
            while queue and len(pending) < workers:
                settings = queue.pop(0)
                pending[task.remote(settings, mode, tracking_uri, 1)] = settings
            done, _ = ray.wait(list(pending), num_returns=1)
            settings = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except Exception as exc:  # the task's worker died
                result = VersionScan(
                    settings.model_uri,
                    "error",
                    summary=f"the Ray task failed: {type(exc).__name__}: {exc}",
                    retryable=True,
                )
            on_done(result)
            results.append(result)
        return results
    finally:
        if started_here:
            ray.shutdown()


def run_registry_scan(
    client,
    base: JobSettings,
    config: RegistryScanConfig = RegistryScanConfig(),
    filter_string: str | None = None,
    data_override: str | None = None,
    out_dir: Path | None = None,
    on_plan: Callable[[ScanPlan], None] = lambda plan: None,
    on_done: OnDone = lambda result: None,
    *,
    metrics_file: Path | None = None,
) -> RegistryScanResult:
    """Walk, plan, scan, summarise (and write ``metrics_file``, Prometheus text); raise
    NothingToScanError when the filter matched no version."""
    import mlflow

    if metrics_file is not None:
        check_metrics_file(metrics_file)
    if config.executor not in EXECUTORS:
        raise UsageError(f"unknown executor {config.executor!r}; choose one of {EXECUTORS}")
    if config.workers < 1:
        raise UsageError(f"workers must be at least 1, got {config.workers}")
    started, clock = T.now(), time.monotonic()
    versions = walk_registry(client, filter_string, config.page_size)
    if not versions:
        raise NothingToScanError(
            f"no registered model version matches {filter_string!r}"
            if filter_string
            else "the registry holds no model versions"
        )
    plan = plan_scan(versions, base, data_override)
    on_plan(plan)
    mode = "main" if config.erase else "scan"
    tracking_uri = mlflow.get_tracking_uri()
    if config.executor == "ray":
        results = run_ray(plan.to_scan, mode, config.workers, tracking_uri, config.ray_address, on_done)
    else:
        results = run_local(plan.to_scan, mode, config.workers, tracking_uri, on_done)
    result = RegistryScanResult(filter_string, config.executor, started, time.monotonic() - clock, plan, results)
    record_summary(result, base, config, out_dir)
    if metrics_file is not None:
        write_metrics_file(result, metrics_file)
    return result


def check_metrics_file(path: Path) -> None:
    """Before the scan, not after an hour of it: node-exporter's textfile collector reads only
    ``*.prom`` files, and the folder must exist."""
    path = Path(path)
    if path.suffix != ".prom":
        raise UsageError(
            f"--metrics-file {path}: node-exporter's textfile collector reads only *.prom files; name it "
            f"{path.stem}.prom"
        )
    if not path.parent.is_dir():
        raise UsageError(
            f"--metrics-file {path}: no folder {path.parent} (point it at the textfile collector's "
            "--collector.textfile.directory)"
        )


def write_metrics_file(result: RegistryScanResult, path: Path) -> None:
    """The summary numbers in Prometheus text format, written to a temporary file beside
    ``path`` and renamed over it (prometheus_client's write_to_textfile), so that the collector
    never reads half a file."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    versions = Gauge(
        "baerase_registry_scan_versions",
        "Versions in the last registry scan, by outcome.",
        ["outcome"],
        registry=registry,
    )
    for outcome, n in result.counts().items():
        versions.labels(outcome).set(n)
    gauges = {
        "open_backdoors": ("Versions carrying a backdoor with no cleaned version.", len(result.open_backdoors())),
        "duration_seconds": ("Seconds the last registry scan took.", result.seconds),
        "exit_code": (
            "Exit code of the last registry scan (0 passed, 1 open backdoor, 2 a scan failed).",
            int(result.exit_code()),
        ),
        # Alert on time() minus this: a scan that stopped running writes nothing at all.
        "last_finished_timestamp_seconds": ("When the last registry scan finished (Unix time).", time.time()),
    }
    for name, (doc, value) in gauges.items():
        Gauge(f"baerase_registry_scan_{name}", doc, registry=registry).set(value)
    write_to_textfile(str(path), registry)


def record_summary(
    result: RegistryScanResult, base: JobSettings, config: RegistryScanConfig, out_dir: Path | None
) -> None:
    """The summary as an MLflow run in ``config.experiment`` holding it as files (JSON,
    Markdown, HTML), which also go to ``out_dir`` when given."""
    import tempfile

    import mlflow

    from baerase_mlops.report.registry_summary import write_registry_summary

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(config.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(config.experiment)
    with (
        mlflow.start_run(experiment_id=experiment_id, run_name="baerase scan-registry") as run,
        tempfile.TemporaryDirectory(prefix="baerase-") as tmp,
    ):
        result.run_id = run.info.run_id
        params = {
            "filter": result.filter or "",
            "executor": result.executor,
            "workers": config.workers,
            "erase": config.erase,
            "tool_version": __version__,
            "recovery_steps": base.recovery_steps,
            "threshold": base.threshold,
            "method": base.method,
        }
        mlflow.log_params(
            {f"registry_scan.{k}": v for k, v in params.items()}
        )  # prefixed: `mlflow run` logs its own parameters
        mlflow.log_metrics({**{k: float(v) for k, v in result.counts().items()}, "seconds": result.seconds})
        files = write_registry_summary(result, Path(out_dir) if out_dir else Path(tmp))
        for path in files.values():
            mlflow.log_artifact(str(path), artifact_path="summary")
        result.files = files if out_dir else {}
