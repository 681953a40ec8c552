"""`baerase serve-webhooks` as a real process on loopback, registered with the test server."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.mlflow_server import BIN, MlflowServer, free_port

SECRET = "test-webhook-secret-0123456789"


@dataclass
class ReceiverProcess:
    url: str
    queue: Path
    process: subprocess.Popen
    log: Path
    verify: str | bool = True  # the CA bundle of a receiver serving HTTPS

    def health(self) -> dict:
        return requests.get(self.url + "health", timeout=5, verify=self.verify).json()["queue"]

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        """A scrape of GET /metrics: {(sample name, its labels): value}."""
        return parse_metrics(requests.get(self.url + "metrics", timeout=10, verify=self.verify).text)

    def kill(self) -> None:
        """SIGKILL the receiver and its scan processes (a crash, not a shutdown)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=20)

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self.kill()


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def start_receiver(
    server: MlflowServer,
    queue: Path,
    *args: str,
    port: int | None = None,
    timeout: float = 60,
    scheme: str = "http",
    verify: str | bool = True,
) -> ReceiverProcess:
    port = port or free_port()
    log = queue.with_suffix(f".{port}.log")
    cmd = [str(BIN / "baerase"), "serve-webhooks", "--port", str(port), "--queue", str(queue), "--quiet", *args]
    process = subprocess.Popen(
        cmd,
        env=server.env(BAERASE_WEBHOOK_SECRET=SECRET),
        stdout=open(log, "a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    receiver = ReceiverProcess(f"{scheme}://127.0.0.1:{port}/", queue, process, log, verify)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve-webhooks exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            receiver.health()
            return receiver
        except requests.RequestException:
            time.sleep(0.3)
    receiver.kill()
    raise RuntimeError(f"serve-webhooks did not come up in {timeout}s: {log.read_text()[-2000:]}")


def register(server: MlflowServer, url: str, name: str) -> str:
    """`baerase register-webhook`, as a user runs it; returns the webhook id."""
    result = subprocess.run(
        [str(BIN / "baerase"), "register-webhook", "--url", url, "--name", name],
        env=server.env(BAERASE_WEBHOOK_SECRET=SECRET),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("(", 1)[1].split(")", 1)[0]


def wait_for(condition, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
