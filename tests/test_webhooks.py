"""`baerase serve-webhooks` with deliveries sent by a real `mlflow server`: a new version is
queued and scanned, forged and replayed deliveries are refused, a protected alias set by
hand on a version that did not pass is moved back, and a crash mid-scan loses nothing.

The receiver scans with 30 recovery steps: these tests are about plumbing (detection is
tested at the defaults elsewhere); the clean lab model scans clean at any step count here."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

import pytest
import requests

from baerase_mlops import __version__
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.job import JobSettings
from baerase_mlops.registry.lab import register_lab_model
from baerase_mlops.registry.versions import settings_for, version_info
from baerase_mlops.webhooks.signature import sign
from tests.mlflow_server import free_port
from tests.webhook_receiver import SECRET, register, start_receiver, wait_for

pytestmark = pytest.mark.slow

RECEIVER_ARGS = ("--steps", "30", "--lease", "5", "--protect", "champion,production")
RECEIVER_SETTINGS = JobSettings(model_uri="", recovery_steps=30)


@pytest.fixture(scope="module")
def hook(mlflow_server, tmp_path_factory):
    """A receiver on loopback, registered with the server through `baerase register-webhook`."""
    import mlflow

    queue = tmp_path_factory.mktemp("webhooks") / "queue.sqlite"
    port = free_port()
    state = {"receiver": start_receiver(mlflow_server, queue, *RECEIVER_ARGS, port=port), "port": port, "queue": queue}
    webhook_id = register(mlflow_server, state["receiver"].url, f"baerase-test-{uuid.uuid4().hex[:6]}")
    yield state
    mlflow.MlflowClient(mlflow_server.uri).delete_webhook(webhook_id)
    state["receiver"].stop()


def _rows(queue, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(queue) as db:
        return db.execute(sql, args).fetchall()


def _jobs(queue, kind: str, name: str, version: str) -> list[tuple]:
    return _rows(
        queue,
        "SELECT state, attempts, result, alias FROM jobs WHERE kind = ? AND name = ? AND version = ? ORDER BY id",
        kind,
        name,
        version,
    )


def _verdict(client, name: str, version: str) -> str | None:
    return client.get_model_version(name, version).tags.get(T.VERDICT)


def _register(client, lab, name: str, fmt: str = "state_dict+spec") -> str:
    return str(register_lab_model(lab.model, lab.spec, name, fmt=fmt).version)


@pytest.fixture(scope="module")
def scanned(hook, mlflow_server, lab_model_factory):
    """A clean lab model registered through the server: MLflow delivers model_version.created."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    client = mlflow.MlflowClient()
    lab = lab_model_factory("clean")
    name = f"hooked-{uuid.uuid4().hex[:6]}"
    _register(client, lab, name)
    wait_for(lambda: _verdict(client, name, "1"), 300, f"the receiver's scan of {name}/1")
    # The scan tags the version, then its worker marks the job done.
    wait_for(
        lambda: [s for s, *_ in _jobs(hook["queue"], "scan", name, "1")] == ["done"],
        60,
        f"the scan job of {name}/1 to finish",
    )
    return name, lab


def test_signed_delivery_from_mlflow_queues_and_runs_a_scan(registry, hook, scanned):
    name, _ = scanned
    tags = registry.get_model_version(name, "1").tags
    expected_hash = T.config_hash(settings_for(RECEIVER_SETTINGS, version_info(registry, name, "1")).verdict_settings())
    assert tags[T.VERDICT] == "clean" and tags[T.CONFIG_HASH] == expected_hash and tags[T.TOOL_VERSION] == __version__
    assert [(state, attempts) for state, attempts, _, _ in _jobs(hook["queue"], "scan", name, "1")] == [("done", 1)]
    assert ("model_version.created",) in _rows(hook["queue"], "SELECT DISTINCT event FROM deliveries")
    run = registry.get_run(tags[T.RUN_ID])
    assert run.data.params["job.recovery_steps"] == "30"


def _post(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=10)


def test_forged_stale_unsigned_and_replayed_deliveries_are_refused(hook):
    receiver = hook["receiver"]
    body = json.dumps(
        {"entity": "model_version", "action": "created", "data": {"name": "forged-model", "version": "1"}}
    ).encode()
    now = str(int(time.time()))

    def headers(delivery_id: str, timestamp: str = now, secret: str = SECRET) -> dict[str, str]:
        return {
            "X-MLflow-Delivery-Id": delivery_id,
            "X-MLflow-Timestamp": timestamp,
            "X-MLflow-Signature": sign(secret, delivery_id, timestamp, body),
        }

    forged = _post(receiver.url, body, headers("forged-1", secret="not-the-secret-at-all"))
    stale = _post(receiver.url, body, headers("stale-1", timestamp=str(int(time.time()) - 3600)))
    unsigned = _post(receiver.url, body, {"X-MLflow-Delivery-Id": "unsigned-1", "X-MLflow-Timestamp": now})
    assert (forged.status_code, stale.status_code, unsigned.status_code) == (401, 401, 401)
    assert "signature does not match" in forged.json()["error"] and "stale" in stale.json()["error"]
    # A genuine delivery (of an event that queues nothing), then the same bytes again.
    genuine = json.dumps(
        {
            "entity": "model_version_tag",
            "action": "set",
            "data": {"name": "m", "version": "1", "key": "team", "value": "x"},
        }
    ).encode()
    signed = {
        "X-MLflow-Delivery-Id": "genuine-1",
        "X-MLflow-Timestamp": now,
        "X-MLflow-Signature": sign(SECRET, "genuine-1", now, genuine),
    }
    assert _post(receiver.url, genuine, signed).status_code == 200
    replay = _post(receiver.url, genuine, signed)
    assert replay.status_code == 409 and "replay" in replay.json()["error"]
    remembered = {row[0] for row in _rows(hook["queue"], "SELECT delivery_id FROM deliveries")}
    assert "genuine-1" in remembered and not remembered & {"forged-1", "stale-1", "unsigned-1"}
    assert _rows(hook["queue"], "SELECT COUNT(*) FROM jobs WHERE name = 'forged-model'") == [(0,)]


def test_protected_alias_set_by_hand_on_a_failing_version_is_moved_back(registry, hook, scanned):
    name, lab = scanned
    registry.set_registered_model_alias(name, "champion", "1")  # passed: stays
    wait_for(
        lambda: any(s == "done" for s, _, _, a in _jobs(hook["queue"], "aliases", name, "1") if a == "champion"),
        60,
        "the check of champion on version 1",
    )
    assert dict(registry.get_registered_model(name).aliases)["champion"] == "1"
    # A pickled version: the receiver refuses to load it, so it cannot pass.
    failing = _register(registry, lab, name, fmt="pickle")
    registry.set_registered_model_alias(name, "champion", failing)
    wait_for(
        lambda: dict(registry.get_registered_model(name).aliases).get("champion") == "1",
        60,
        "champion to move back to version 1",
    )
    why = registry.get_model_version(name, failing).tags["baerase.alias_refused.champion"]
    assert "moved back to version 1" in why and f"models:/{name}/{failing}" in why
    wait_for(
        lambda: _verdict(registry, name, failing) == "error", 120, f"the scan of {name}/{failing} to record its error"
    )
    assert "pickled model" in registry.get_model_version(name, failing).tags[T.ERROR]


def test_protected_alias_with_no_earlier_passing_version_is_removed(registry, hook, scanned):
    _, lab = scanned
    name = f"lonely-{uuid.uuid4().hex[:6]}"
    _register(registry, lab, name, fmt="pickle")
    registry.set_registered_model_alias(name, "production", "1")
    wait_for(
        lambda: "production" not in dict(registry.get_registered_model(name).aliases), 60, "production to be removed"
    )
    assert "alias removed" in registry.get_model_version(name, "1").tags["baerase.alias_refused.production"]


def test_a_scan_killed_mid_way_is_finished_after_a_restart(registry, hook, scanned, mlflow_server):
    name, lab = scanned
    version = _register(registry, lab, name)
    wait_for(
        lambda: any(s == "running" for s, *_ in _jobs(hook["queue"], "scan", name, version)),
        60,
        "the scan to start",
        every=0.1,
    )
    hook["receiver"].kill()  # the receiver and its scan process die at once
    assert _verdict(registry, name, version) is None
    assert [s for s, *_ in _jobs(hook["queue"], "scan", name, version)] == ["running"]
    hook["receiver"] = start_receiver(mlflow_server, hook["queue"], *RECEIVER_ARGS, port=hook["port"])
    wait_for(lambda: _verdict(registry, name, version), 300, "the restarted receiver to finish the scan")
    wait_for(
        lambda: [s for s, *_ in _jobs(hook["queue"], "scan", name, version)] == ["done"],
        60,
        "the scan job to be marked done",
    )
    assert [(s, attempts) for s, attempts, *_ in _jobs(hook["queue"], "scan", name, version)] == [("done", 2)]


def _sample(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_refusals_accepted_deliveries_scans_queue_depth_and_alias_reverts(registry, hook, scanned):
    """GET /metrics, scraped before and after a forged delivery and an alias revert: each
    counter moves by exactly what was done; the receiver's scans are in the histogram.
    (Last in the module: its pickled version's scan must not delay the crash test's.)"""
    receiver, (_, lab) = hook["receiver"], scanned
    before = receiver.metrics()
    body = b'{"entity": "model_version", "action": "created", "data": {"name": "forged-model", "version": "2"}}'
    now = str(int(time.time()))
    forged = {
        "X-MLflow-Delivery-Id": "forged-metrics",
        "X-MLflow-Timestamp": now,
        "X-MLflow-Signature": sign("not-the-secret-at-all", "forged-metrics", now, body),
    }
    assert _post(receiver.url, body, forged).status_code == 401
    name = f"reverted-{uuid.uuid4().hex[:6]}"
    _register(registry, lab, name, fmt="pickle")  # cannot pass: the receiver refuses to unpickle it
    registry.set_registered_model_alias(name, "production", "1")
    wait_for(
        lambda: "production" not in dict(registry.get_registered_model(name).aliases), 60, "production to be removed"
    )

    def reverted() -> dict | None:
        scrape = receiver.metrics()
        return scrape if _sample(scrape, "baerase_alias_reverts_total", alias="production", action="removed") else None

    after = wait_for(reverted, 30, "the revert's metric")

    def moved(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert moved("baerase_webhook_deliveries_refused_total", reason="bad_signature") == 1
    assert moved("baerase_webhook_deliveries_refused_total", reason="stale") == 0
    assert moved("baerase_alias_reverts_total", alias="production", action="removed") == 1
    assert (
        moved("baerase_webhook_deliveries_accepted_total", event="model_version.created") >= 1
    )  # the pickled version's
    assert moved("baerase_webhook_deliveries_accepted_total", event="model_version_alias.created") >= 1
    assert _sample(after, "baerase_scan_verdicts_total", verdict="clean") >= 1
    assert _sample(after, "baerase_scan_duration_seconds_count", action="scanned") >= 1
    assert _sample(after, "baerase_scan_duration_seconds_sum", action="scanned") > 0
    # Queue depth is read from the queue at the scrape: the done jobs of this module are in it.
    assert _sample(after, "baerase_webhook_jobs", kind="scan", state="done") >= 1
    assert _sample(after, "baerase_webhook_jobs", kind="aliases", state="done") >= 1
