"""A real `mlflow server` on a free loopback port, for integration tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MlflowServer:
    uri: str
    root: Path
    process: subprocess.Popen

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a client process of this server (the venv's tools on PATH)."""
        return {
            **os.environ,
            "MLFLOW_TRACKING_URI": self.uri,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            **extra,
        }


def start_mlflow_server(
    root: Path,
    extra_env: dict[str, str] | None = None,
    artifacts: str | None = None,
    timeout: float = 90,
    port: int | None = None,
) -> MlflowServer:
    """Start a server with a SQLite backend and proxied artifacts (local folder unless ``artifacts``);
    ``port``: a given one (to restart a stopped server where its clients look for it)."""
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts or str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = open(root / "server.log", "a")
    # No server-side job runner: MLflow 3 otherwise starts seven huey consumer processes per
    # server (a few CPU-seconds of imports each, 1.7 GB together) for features no test uses;
    # webhook deliveries do not go through it (a thread pool in mlflow/webhooks/delivery.py).
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(extra_env or {})}
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with {process.returncode}: {(root / 'server.log').read_text()[-2000:]}"
            )
        try:
            if requests.get(f"{uri}/health", timeout=1).ok:
                return MlflowServer(uri, root, process)
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop_mlflow_server(MlflowServer(uri, root, process))
    raise RuntimeError(f"mlflow server did not come up in {timeout}s: {(root / 'server.log').read_text()[-2000:]}")


def stop_mlflow_server(server: MlflowServer) -> None:
    """Stop the server and its worker processes (its own process group)."""
    import signal

    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.process.pid, signal.SIGKILL)


def mlflow_run(
    server: MlflowServer, params: dict[str, str], entry: str = "main", timeout: float = 900, **env: str
) -> subprocess.CompletedProcess:
    """`mlflow run <repo> -e ENTRY -P k=v ... --env-manager local`, as a user runs it."""
    cmd = [str(BIN / "mlflow"), "run", str(REPO), "-e", entry, "--env-manager", "local"]
    for key, value in params.items():
        cmd += ["-P", f"{key}={value}"]
    return subprocess.run(cmd, env=server.env(**env), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def job_command(
    server: MlflowServer, params: dict[str, str], mode: str = "main", timeout: float = 900, **env: str
) -> subprocess.CompletedProcess:
    """The command an entry point of the MLproject runs (``python pipelines/job.py --mode MODE
    --model-uri ...``), without ``mlflow run`` around it: for tests of what the job itself says
    and exits with. ``mlflow run`` adds its run and its own exit code 1 on any failure; importing
    its CLI alone costs about 6 s, twice that under the suite's load."""
    cmd = [sys.executable, "pipelines/job.py", "--mode", mode]
    for key, value in params.items():
        cmd += [f"--{key.replace('_', '-')}", value]
    return subprocess.run(cmd, env=server.env(**env), cwd=REPO, capture_output=True, text=True, timeout=timeout)
