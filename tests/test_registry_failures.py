"""A tracking server that dies mid-job: a bounded retry, one clear line, exit 2, and nothing
half-written to the registry (checked on the same server, restarted on its port)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from baerase_mlops.registry.lab import register_lab_model
from tests.conftest import untrained_mnist_spec
from tests.mlflow_server import REPO, start_mlflow_server, stop_mlflow_server

pytestmark = pytest.mark.slow

NAME = "dies-mid-job"


def _running_job_runs(client) -> list:
    return [
        r for r in client.search_runs(["0"]) if r.info.run_name.startswith("baerase-") and r.info.status == "RUNNING"
    ]


def _kill(server) -> None:
    os.killpg(server.process.pid, signal.SIGKILL)  # no goodbye: as when its host goes away
    server.process.wait(timeout=20)


def test_a_server_killed_mid_job_gives_one_line_exit_2_and_nothing_half_written(tmp_path):
    import mlflow

    server = start_mlflow_server(tmp_path / "server", timeout=300)  # a loaded CI machine is slow to start one
    client = mlflow.MlflowClient(server.uri)
    try:
        mlflow.set_tracking_uri(server.uri)
        spec = untrained_mnist_spec()
        register_lab_model(spec.build().eval(), spec, NAME, fmt="state_dict+spec")
        cmd = [
            sys.executable,
            "pipelines/job.py",
            "--mode",
            "main",
            "--model-uri",
            f"models:/{NAME}/1",
            "--data-uri",
            "builtin:mnist",
        ]
        job = subprocess.Popen(
            cmd, env=server.env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 300
        while not _running_job_runs(client):  # the job's run exists: it is mid-job
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()[1][-2000:]
            time.sleep(0.2)
        _kill(server)
        killed = time.monotonic()
        _, stderr = job.communicate(timeout=240)
        waited = time.monotonic() - killed
    finally:
        mlflow.set_tracking_uri(None)
    assert job.returncode == 2, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"the MLflow tracking server at {server.uri} failed while" in errors[0], stderr[-3000:]
    assert "Traceback" not in stderr
    assert waited < 120  # ~15 s of retries per request, not MLflow's minutes

    port = int(server.uri.rsplit(":", 1)[1])
    again = start_mlflow_server(tmp_path / "server", port=port, timeout=300)
    try:
        versions = client.search_model_versions(f"name = '{NAME}'")
        assert [v.version for v in versions] == ["1"]  # no cleaned version half-registered
        assert {k: v for k, v in versions[0].tags.items() if k.startswith("baerase.")} == {}
    finally:
        stop_mlflow_server(again)
