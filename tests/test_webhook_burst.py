"""A burst of 200 `model_version.created` deliveries, sent by a real `mlflow server` as fast
as it creates the versions, is all queued with none lost, and the queue keeps every job
across a crash of the receiver.

The receiver runs with ``--workers 0`` (it only queues): the scans are not the subject
here, and a real deployment may drain the queue from another process the same way."""

from __future__ import annotations

import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from baerase_mlops.registry.lab import register_lab_model
from tests.webhook_receiver import register, start_receiver, wait_for

pytestmark = pytest.mark.slow

BURST = 200


def _scan_jobs(queue) -> list[tuple[str, str, str]]:
    with sqlite3.connect(queue) as db:
        return db.execute("SELECT name, version, state FROM jobs WHERE kind = 'scan'").fetchall()


@pytest.fixture(scope="module")
def burst(mlflow_server, lab_model_factory, tmp_path_factory):
    """200 versions of one model, created through the server by 8 clients at once."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    client = mlflow.MlflowClient(mlflow_server.uri)
    queue = tmp_path_factory.mktemp("burst") / "queue.sqlite"
    receiver = start_receiver(mlflow_server, queue, "--workers", "0")
    webhook_id = register(mlflow_server, receiver.url, f"burst-{uuid.uuid4().hex[:6]}")
    name = f"burst-{uuid.uuid4().hex[:6]}"
    try:
        lab = lab_model_factory("clean")
        first = register_lab_model(lab.model, lab.spec, name, fmt="state_dict+spec")
        # The same artifacts as version 1: registering is what fires the webhook, not logging.
        create = lambda _: client.create_model_version(name, first.source, run_id=first.run_id)  # noqa: E731
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(BURST - 1)))
        expected = {str(v) for v in range(1, BURST + 1)}
        wait_for(lambda: {v for n, v, _ in _scan_jobs(queue) if n == name} >= expected, 180, f"{BURST} queued scans")
        yield name, queue, receiver, expected
    finally:
        client.delete_webhook(webhook_id)
        receiver.stop()


def test_every_delivery_of_a_burst_is_queued_once(burst):
    name, queue, _, expected = burst
    versions = [v for n, v, _ in _scan_jobs(queue) if n == name]
    assert len(versions) == BURST and set(versions) == expected
    with sqlite3.connect(queue) as db:
        (deliveries,) = db.execute("SELECT COUNT(*) FROM deliveries WHERE event = 'model_version.created'").fetchone()
    assert deliveries == BURST


def test_the_queued_burst_survives_a_crash_of_the_receiver(burst, mlflow_server):
    name, queue, receiver, expected = burst
    receiver.kill()
    restarted = start_receiver(mlflow_server, queue, "--workers", "0")
    try:
        assert restarted.health()["scan"]["queued"] >= BURST
        assert {v for n, v, state in _scan_jobs(queue) if n == name and state == "queued"} == expected
    finally:
        restarted.stop()
