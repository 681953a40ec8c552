"""The hooks' logic without a server: delivery signatures, the durable queue, event routing,
gate decisions and audit findings (the registry-facing tests are in test_gate, test_webhooks,
test_registry_scan and test_audit)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from baerase_mlops import __version__
from baerase_mlops.config import GatePolicy, WebhookConfig
from baerase_mlops.errors import ExitCode
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.audit import AuditRow, audit_exit_code
from baerase_mlops.registry.gate import evaluate
from baerase_mlops.registry.job import JobSettings
from baerase_mlops.registry.versions import VersionInfo, settings_for
from baerase_mlops.report.audit_report import audit_sarif
from baerase_mlops.webhooks.events import jobs_for
from baerase_mlops.webhooks.queue import JobQueue, JobSpec
from baerase_mlops.webhooks.receiver import Receiver
from baerase_mlops.webhooks.signature import DeliveryRejected, sign, verify

SECRET = "a-test-secret-of-some-length"
BASE = JobSettings(model_uri="", recovery_steps=30)


def _headers(
    body: bytes, delivery_id: str = "d-1", timestamp: int | None = None, secret: str = SECRET
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": ts,
        "X-MLflow-Signature": sign(secret, delivery_id, ts, body),
    }


def test_signature_matches_mlflows_own_signing():
    from mlflow.webhooks.delivery import _generate_hmac_signature

    body = json.dumps({"entity": "model_version", "action": "created", "data": {"name": "m", "version": "1"}})
    assert sign(SECRET, "id-1", "1700000000", body.encode()) == _generate_hmac_signature(
        SECRET, "id-1", "1700000000", body
    )


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        (lambda h, b: ({**h, "X-MLflow-Signature": "v1,AAAA"}, b), 401, "does not match"),
        (lambda h, b: (h, b + b" "), 401, "does not match"),  # the body was altered
        (lambda h, b: (_headers(b, secret="another-secret-entirely"), b), 401, "does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-MLflow-Signature"}, b), 401, "missing header"),
        (lambda h, b: (_headers(b, timestamp=int(time.time()) - 3600), b), 401, "stale"),
        (lambda h, b: (_headers(b, timestamp=int(time.time()) + 3600), b), 401, "stale"),
    ],
)
def test_forged_altered_unsigned_and_stale_deliveries_are_refused(change, status, words):
    body = b'{"entity": "model_version", "action": "created", "data": {"name": "m", "version": "1"}}'
    headers, sent = change(_headers(body), body)
    with pytest.raises(DeliveryRejected) as refused:
        verify(SECRET, headers, sent, time.time(), 300)
    assert refused.value.status == status and words in refused.value.reason


def test_a_signed_fresh_delivery_is_accepted_also_among_rotated_signatures():
    body = b"{}"
    headers = _headers(body)
    headers["X-MLflow-Signature"] = "v1,b2xkLXNpZ25hdHVyZQ== " + headers["X-MLflow-Signature"]
    assert verify(SECRET, headers, body, time.time(), 300).delivery_id == "d-1"


def test_events_route_to_scans_and_alias_checks_and_ignore_our_own_tags():
    protected = ("champion",)
    created = {"entity": "model_version", "action": "created", "data": {"name": "m", "version": "3"}}
    assert jobs_for(created, protected) == [JobSpec("scan", "m", "3")]
    alias = {
        "entity": "model_version_alias",
        "action": "created",
        "data": {"name": "m", "alias": "champion", "version": "3"},
    }
    assert jobs_for(alias, protected) == [JobSpec("aliases", "m", "3", "champion")]
    assert jobs_for({**alias, "data": {**alias["data"], "alias": "staging"}}, protected) == []
    verdict = {
        "entity": "model_version_tag",
        "action": "set",
        "data": {"name": "m", "version": "3", "key": T.VERDICT, "value": "backdoor"},
    }
    assert jobs_for(verdict, protected) == [JobSpec("aliases", "m", "3")]
    for key in (T.ASR_AFTER, "baerase.alias_refused.champion", "team"):
        assert jobs_for({**verdict, "data": {**verdict["data"], "key": key}}, protected) == []
    with pytest.raises(ValueError, match="data.version"):
        jobs_for({"entity": "model_version", "action": "created", "data": {"name": "m"}}, protected)


def test_queue_refuses_replays_and_survives_a_reopen(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite")
    assert queue.accept("d-1", "model_version.created", [JobSpec("scan", "m", "1")])
    assert not queue.accept("d-1", "model_version.created", [JobSpec("scan", "m", "2")])  # replay: nothing queued
    assert queue.accept("d-2", "model_version.created", [JobSpec("scan", "m", "1")])  # the same scan waiting absorbs it
    reopened = JobQueue(tmp_path / "q.sqlite")
    assert [(j.spec, j.state) for j in reopened.jobs()] == [(JobSpec("scan", "m", "1"), "queued")]
    assert reopened.counts()["deliveries"]["remembered"] == 2


def test_a_job_whose_worker_died_is_claimed_again_until_its_attempts_run_out(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite")
    queue.enqueue([JobSpec("scan", "m", "1")])
    now = time.time()
    first = queue.claim("scan", "worker-a", lease_s=10, max_attempts=2, now=now)
    assert first is not None and first.attempts == 1
    assert queue.claim("scan", "worker-b", lease_s=10, max_attempts=2, now=now + 5) is None  # leased
    second = queue.claim("scan", "worker-b", lease_s=10, max_attempts=2, now=now + 11)  # worker-a stopped renewing
    assert second is not None and second.id == first.id and second.attempts == 2
    assert not queue.renew(first, "worker-a", 10)  # worker-a lost it
    assert queue.claim("scan", "worker-c", lease_s=10, max_attempts=2, now=now + 30) is None
    assert queue.jobs()[0].state == "failed" and "gave up after 2 attempts" in queue.jobs()[0].result


def test_a_released_job_comes_back_and_a_finished_one_does_not(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite")
    queue.enqueue([JobSpec("scan", "m", "1"), JobSpec("aliases", "m", "1", "champion")])
    job = queue.claim("scan", "w", 60, 3)
    queue.release(job, "w", count_attempt=False)  # a shutdown
    again = queue.claim("scan", "w", 60, 3)
    assert again.id == job.id and again.attempts == 1
    queue.finish(again, "w", "done", "scanned")
    assert queue.claim("scan", "w", 60, 3) is None
    assert queue.claim("aliases", "w", 60, 3).spec.alias == "champion"


def test_receiver_answers_forged_replayed_and_malformed_deliveries(tmp_path):
    queue = JobQueue(tmp_path / "q.sqlite")
    receiver = Receiver(queue, SECRET, WebhookConfig())
    body = json.dumps({"entity": "model_version", "action": "created", "data": {"name": "m", "version": "1"}}).encode()
    headers = _headers(body)
    assert receiver.handle(headers, body) == (200, {"event": "model_version.created", "queued": ["scan"]})
    assert receiver.handle(headers, body)[0] == 409
    assert receiver.handle({**headers, "X-MLflow-Signature": "v1,AAAA"}, body)[0] == 401
    assert receiver.handle(_headers(b"[1]", "d-2"), b"[1]")[0] == 400
    assert len(queue.jobs()) == 1


def _info(version: str = "1", **tags: str) -> VersionInfo:
    return VersionInfo("m", version, "READY", tags)


def _current(info: VersionInfo, base: JobSettings = BASE) -> VersionInfo:
    settings = settings_for(base, info)
    extra = {T.TOOL_VERSION: __version__, T.CONFIG_HASH: T.config_hash(settings.verdict_settings())}
    return replace(info, tags={**info.tags, **extra})


@pytest.mark.parametrize(
    ("tags", "passed", "words"),
    [
        ({}, False, "never scanned"),
        ({T.VERDICT: "clean", T.ANOMALY_INDEX: "0.4"}, True, "no backdoor found"),
        (
            {T.VERDICT: "backdoor", T.FLAGGED_CLASSES: "[0]", T.CLEANED_VERSION: "2"},
            False,
            "models:/m/2: gate that one",
        ),
        ({T.VERDICT: "error", T.ERROR: "pickled model"}, False, "pickled model"),
        (
            {
                T.VERDICT: "cleaned",
                T.ASR_KIND: "verified",
                T.ASR_AFTER: "0.004",
                T.ACCURACY_BEFORE: "0.98",
                T.ACCURACY_AFTER: "0.975",
            },
            True,
            "cleaned from version",
        ),
        (
            {
                T.VERDICT: "cleaned",
                T.ASR_KIND: "verified",
                T.ASR_AFTER: "0.05",
                T.ACCURACY_BEFORE: "0.98",
                T.ACCURACY_AFTER: "0.975",
            },
            False,
            "exceeds",
        ),
        (
            {
                T.VERDICT: "cleaned",
                T.ASR_KIND: "verified",
                T.ASR_AFTER: "0.004",
                T.ACCURACY_BEFORE: "0.98",
                T.ACCURACY_AFTER: "0.94",
            },
            False,
            "lost",
        ),
        (
            {T.VERDICT: "cleaned", T.ASR_AFTER: "0.004", T.ACCURACY_BEFORE: "0.98", T.ACCURACY_AFTER: "0.975"},
            False,
            "not verified",
        ),
        ({T.VERDICT: "cleaned", T.ASR_KIND: "verified"}, False, "without its ASR"),
    ],
)
def test_gate_decisions(tags, passed, words):
    info = _current(_info(**tags)) if tags else _info()
    decision = evaluate(info, current=bool(tags), policy=GatePolicy())
    assert decision.passed is passed and words in decision.reason


def test_a_verdict_from_other_settings_or_another_tool_version_does_not_pass():
    info = _current(_info(**{T.VERDICT: "clean"}))
    other = replace(BASE, recovery_steps=400)
    assert settings_for(other, info).verdict_settings() != settings_for(BASE, info).verdict_settings()
    assert not evaluate(info, current=False, policy=GatePolicy()).passed
    assert "stale" in evaluate(info, current=False, policy=GatePolicy()).reason


def test_data_uri_comes_from_the_command_line_then_the_version_then_the_model():
    from baerase_mlops.registry.versions import data_uri_for

    info = VersionInfo("m", "1", "READY", {}, model_tags={T.DATA_URI: "s3://b/clean.npz"})
    assert data_uri_for(info) == "s3://b/clean.npz"
    assert data_uri_for(replace(info, tags={T.DATA_URI: "builtin:digits"})) == "builtin:digits"
    assert data_uri_for(info, "set.npz") == "set.npz"
    assert data_uri_for(VersionInfo("m", "1", "READY", {})) == "builtin:mnist"


def test_audit_findings_exit_codes_and_sarif_levels():
    rows = [
        AuditRow(_current(_info("1", **{T.VERDICT: "clean"})), True, None),
        AuditRow(_current(_info("2", **{T.VERDICT: "backdoor", T.CLEANED_VERSION: "3"})), True, "3"),
        AuditRow(_info("4"), False, None),
    ]
    assert [r.finding for r in rows] == [None, "backdoor-cleaned", "not-scanned"]
    assert rows[2].verdict == "not scanned"
    assert audit_exit_code(rows) == ExitCode.PASSED
    assert audit_exit_code(rows, strict=True) == ExitCode.BACKDOOR
    open_backdoor = AuditRow(_current(_info("5", **{T.VERDICT: "backdoor"})), True, None)
    assert audit_exit_code([*rows, open_backdoor]) == ExitCode.BACKDOOR
    sarif = json.loads(audit_sarif([*rows, open_backdoor]))
    assert [(r["ruleId"], r["level"]) for r in sarif["runs"][0]["results"]] == [
        ("baerase/backdoor-cleaned", "warning"),
        ("baerase/not-scanned", "warning"),
        ("baerase/backdoor", "error"),
    ]


def test_a_job_stage_times_itself_and_sums_a_stage_that_comes_back():
    import time

    from baerase_mlops.registry.tracking import Stage

    stage = Stage("downloading the model")
    time.sleep(0.02)
    stage.now = "scanning"
    time.sleep(0.01)
    stage.now = "downloading again"
    phases = stage.timings()
    assert set(phases) == {"phase_downloading_s", "phase_scanning_s"}
    assert phases["phase_downloading_s"] >= 0.02 and phases["phase_scanning_s"] >= 0.01
    assert str(stage) == "downloading again"
