"""The receiver's workers: ``workers`` threads that each run one queued scan at a time in
its own process (``baerase_mlops.webhooks.scan_task``), renewing the job's lease while it runs, and one
thread that checks protected aliases (registry calls only, so never stuck behind a scan).

A scan process that dies, or a worker that is killed, leaves its job running with a lease
that runs out; the job is then claimed again (up to ``max_attempts`` claims). A stop puts
claimed jobs straight back.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

from baerase_mlops.config import GatePolicy, WebhookConfig
from baerase_mlops.registry.job import JobSettings
from baerase_mlops.registry.scanning import VersionScan, threads_per_worker
from baerase_mlops.webhooks.aliases import AliasGuard
from baerase_mlops.webhooks.metrics import ReceiverMetrics
from baerase_mlops.webhooks.queue import Job, JobQueue
from baerase_mlops.webhooks.scan_task import RESULT_PREFIX, settings_to_json

log = logging.getLogger("baerase.webhooks")
RETRY_DELAY_S = 30.0


def _die_with_parent() -> None:
    """In the scan process: be killed when the worker process dies (Linux), never orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class WorkerContext:
    queue: JobQueue
    base: JobSettings
    policy: GatePolicy
    config: WebhookConfig
    tracking_uri: str
    data_override: str | None = None
    metrics: ReceiverMetrics | None = None  # the receiver's, so that /metrics shows the scans


class Workers:
    def __init__(self, context: WorkerContext):
        self.context = context
        self.id = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.threads: list[threading.Thread] = []
        self.processes: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def start(self) -> None:
        config = self.context.config
        targets = [self._scan_loop] * config.workers + [self._alias_loop]
        self.threads = [
            threading.Thread(target=t, name=f"baerase-worker-{i}", daemon=True) for i, t in enumerate(targets)
        ]
        for thread in self.threads:
            thread.start()

    def notify(self) -> None:
        """New jobs were queued: idle workers look now rather than at their next poll."""
        self.wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.wake.set()
        with self.lock:
            for process in self.processes.values():
                process.kill()
        for thread in self.threads:
            thread.join(timeout)

    def _idle(self) -> None:
        self.wake.wait(self.context.config.poll_s)
        self.wake.clear()

    def _claim(self, kind: str) -> Job | None:
        c = self.context.config
        return self.context.queue.claim(kind, self.id, c.lease_s, c.max_attempts)

    def _scan_loop(self) -> None:
        while not self.stopping.is_set():
            job = self._claim("scan")
            if job is None:
                self._idle()
                continue
            try:
                self._run_scan(job)
            except Exception:  # keep the worker alive; the lease brings the job back
                log.exception("scan job %s failed in the worker", job.id)

    def _run_scan(self, job: Job) -> None:
        c, queue = self.context, self.context.queue
        log.info("scan %s/%s (job %s, attempt %s)", job.spec.name, job.spec.version, job.id, job.attempts)
        payload = {
            "name": job.spec.name,
            "version": job.spec.version,
            "settings": settings_to_json(c.base),
            "mode": "main" if c.config.erase else "scan",
            "data_override": c.data_override,
            "tracking_uri": c.tracking_uri,
            "threads": threads_per_worker(max(1, c.config.workers)),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "baerase_mlops.webhooks.scan_task"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with_parent,
        )
        with self.lock:
            self.processes[job.id] = process
        started = time.monotonic()
        try:
            result = self._wait(job, process, json.dumps(payload))
        finally:
            with self.lock:
                self.processes.pop(job.id, None)
        if result is None:  # stopped, or the process died: back to the queue
            if self.stopping.is_set():
                queue.release(job, self.id, count_attempt=False, result="the receiver stopped during the scan")
            else:
                queue.release(job, self.id, RETRY_DELAY_S, result=f"the scan process exited with {process.returncode}")
            return
        log.info("%s: %s %s", result.model, result.action, result.summary)
        if c.metrics:
            c.metrics.scan_finished(result.action, result.verdict, time.monotonic() - started)
        if result.action == "error" and result.retryable and job.attempts < c.config.max_attempts:
            queue.release(job, self.id, RETRY_DELAY_S, result=result.summary)
        else:
            queue.finish(
                job, self.id, "failed" if result.action == "error" else "done", f"{result.action}: {result.summary}"
            )

    def _wait(self, job: Job, process: subprocess.Popen, payload: str) -> VersionScan | None:
        """Feed the job to the process and wait, renewing the lease; its result, or None."""
        c = self.context
        out: dict[str, str] = {}
        reader = threading.Thread(target=lambda: out.update(stdout=process.communicate(payload)[0]), daemon=True)
        reader.start()
        renew_every = c.config.lease_s / 3
        last_renewal = time.monotonic()
        while reader.is_alive():
            reader.join(min(1.0, renew_every))
            if self.stopping.is_set():
                process.kill()
                reader.join()
                return None
            if time.monotonic() - last_renewal >= renew_every:
                if not c.queue.renew(job, self.id, c.config.lease_s):
                    log.warning("job %s: lease lost; stopping its scan", job.id)
                    process.kill()
                    reader.join()
                    return None
                last_renewal = time.monotonic()
        for line in (out.get("stdout") or "").splitlines():
            if line.startswith(RESULT_PREFIX):
                return VersionScan(**json.loads(line[len(RESULT_PREFIX) :]))
        return None

    def _alias_loop(self) -> None:
        import mlflow

        c = self.context
        on_refused = c.metrics.alias_reverted if c.metrics else (lambda alias, action: None)
        guard = AliasGuard(
            mlflow.MlflowClient(c.tracking_uri),
            c.queue,
            c.base,
            c.policy,
            c.config.protected_aliases,
            c.data_override,
            on_refused,
        )
        last_cleanup = 0.0
        while not self.stopping.is_set():
            if time.monotonic() - last_cleanup > 60:
                c.queue.forget_deliveries(time.time() - 2 * c.config.tolerance_s)
                last_cleanup = time.monotonic()
            job = self._claim("aliases")
            if job is None:
                self._idle()
                continue
            try:
                outcome = guard.check(job.spec)
            except Exception as exc:  # the registry failed: the job comes back after a pause
                log.warning("alias check %s failed: %s", job.spec, exc)
                c.queue.release(job, self.id, RETRY_DELAY_S / 3, result=f"{type(exc).__name__}: {exc}")
                continue
            log.info("aliases of %s/%s: %s", job.spec.name, job.spec.version, outcome)
            c.queue.finish(job, self.id, "done", outcome)
