"""`baerase gate` against a real `mlflow server`: it refuses a backdoored version (scanning it
first, at the default settings, and registering the cleaned version), promotes the cleaned
one, leaves the alias alone on a refusal, and exits per DESIGN.md. Then verdict precedence on
the same versions (see its section below)."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from baerase_mlops.cli import main
from baerase_mlops.config import MAX_THRESHOLD, MIN_RECOVERY_STEPS, GatePolicy
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.job import JobSettings, run_job
from baerase_mlops.registry.lab import register_lab_model
from baerase_mlops.registry.versions import is_current, settings_for, version_info
from baerase_mlops.webhooks.aliases import AliasGuard
from baerase_mlops.webhooks.queue import JobQueue, JobSpec
from tests.conftest import assert_erased_and_verified

pytestmark = pytest.mark.slow


def gate(*args: str):
    return CliRunner().invoke(main, ["gate", *args, "--quiet"], catch_exceptions=False)


def _alias(client, name: str, alias: str) -> str | None:
    return dict(client.get_registered_model(name).aliases).get(alias)


@pytest.fixture(scope="module")
def backdoored(mlflow_server, lab_model_factory):
    """A BadNets model as models:/<name>/1 (pt2), with champion on it already (set by hand)."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    lab = lab_model_factory("badnets")
    name = f"gate-{uuid.uuid4().hex[:6]}"
    register_lab_model(lab.model, lab.spec, name)
    return name, lab


@pytest.fixture(scope="module")
def first_gate(backdoored, mlflow_server):
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    name, _ = backdoored
    return gate(f"models:/{name}/1", "--alias", "champion")


def test_gate_refuses_a_backdoored_version_and_leaves_the_alias_alone(registry, backdoored, first_gate):
    name, lab = backdoored
    assert first_gate.exit_code == 1, first_gate.output
    assert "gate refused" in first_gate.output and "carries a backdoor" in first_gate.output
    assert f"models:/{name}/2: gate that one" in first_gate.output.replace("\n", "")
    assert _alias(registry, name, "champion") is None
    scanned = registry.get_model_version(name, "1").tags
    assert scanned["baerase.verdict"] == "backdoor" and json.loads(scanned["baerase.flagged_classes"]) == [lab.target]
    assert scanned["baerase.data_uri"] == "builtin:mnist"


def test_gate_promotes_the_cleaned_version_without_scanning_again(registry, backdoored, first_gate):
    name, _ = backdoored
    cleaned = registry.get_model_version(name, "2").tags
    assert cleaned["baerase.verdict"] == "cleaned"
    result = gate(f"models:/{name}/2", "--alias", "champion")
    assert result.exit_code == 0, result.output
    assert "gate passed" in result.output and "scanned first" not in result.output
    assert _alias(registry, name, "champion") == "2"
    # An alias already on a passing version is not moved by a refusal elsewhere.
    again = gate(f"models:/{name}/1", "--alias", "champion")
    assert again.exit_code == 1 and "scanned first" not in again.output
    assert _alias(registry, name, "champion") == "2"


def test_the_gates_erasure_meets_the_erasure_bounds_and_reports_the_lab_triggers_real_asr(
    registry, backdoored, first_gate
):
    """The gate scanned and erased at the defaults on builtin:mnist, the lab model's own data (the
    BadNets erasure of the product defaults: test_erase.py does not compute it again). The
    attacker's trigger and the lab's test split are known there, so the trigger's ASR after
    erasure is reported beside the verified one (never used to decide)."""
    name, _ = backdoored
    cleaned = registry.get_model_version(name, "2").tags
    metrics = registry.get_run(cleaned["baerase.run_id"]).data.metrics
    assert_erased_and_verified(metrics)
    assert cleaned["baerase.asr_kind"] == "verified"
    assert float(cleaned["baerase.real_asr_after"]) == pytest.approx(metrics["real_asr_after"], abs=1e-4)
    assert float(cleaned["baerase.asr_after"]) == pytest.approx(metrics["verified_asr"], abs=1e-4)


def test_cleaned_version_outside_the_bounds_is_refused(registry, backdoored, first_gate):
    """The cleaned version's own tags, with a verified ASR above the bound (the measured one is
    often 0, which no bound refuses): a copy of version 2 carries them."""
    from baerase_mlops.registry.publish import write_tags

    name, _ = backdoored
    cleaned = registry.get_model_version(name, "2")
    copy = registry.copy_model_version(f"models:/{name}/2", name)
    try:
        write_tags(registry, name, copy.version, {**cleaned.tags, "baerase.asr_after": "0.05"})
        result = gate(f"models:/{name}/{copy.version}", "--alias", "production")
        assert result.exit_code == 1 and "exceeds" in result.output, result.output
        assert _alias(registry, name, "production") is None
    finally:
        registry.delete_model_version(name, copy.version)  # the other tests see the job's versions only


def test_audit_of_the_gated_model_reports_the_backdoor_as_cleaned(registry, backdoored, first_gate):
    name, _ = backdoored
    result = CliRunner().invoke(main, ["audit", f"models:/{name}", "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output  # the backdoored version has a cleaned successor
    versions = {v["version"]: v for v in json.loads(result.output)["versions"]}
    assert versions["1"]["finding"] == "backdoor-cleaned" and versions["2"]["aliases"] == ["champion"]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["models:/no-such-model/1", "--alias", "champion"], 2, "does not exist"),
        (["models:/{name}/9", "--alias", "champion"], 2, "has no version 9"),
        (["models:/{name}/1", "--alias", "latest"], 4, "reserved"),
        (["models:/{name}/1", "--alias", "v2"], 4, "reserved"),
        (["models:/{name}/1"], 4, "--alias"),
    ],
)
def test_gate_exit_codes_on_bad_input(registry, backdoored, args, code, words):
    name, _ = backdoored
    result = gate(*(a.format(name=name) for a in args))
    assert result.exit_code == code and words in result.output


def test_gate_as_an_mlflow_job_records_its_decision(registry, mlflow_server, backdoored, first_gate):
    from tests.mlflow_server import mlflow_run

    name, _ = backdoored
    result = mlflow_run(mlflow_server, {"model_uri": f"models:/{name}/1", "alias": "production"}, entry="gate")
    assert result.returncode == 0, result.stderr[-3000:]  # a refusal is a completed job
    run = registry.search_runs(
        ["0"], filter_string="tags.`gate.alias` = 'production'", order_by=["start_time DESC"], max_results=1
    )[0]
    assert run.data.tags["gate.decision"] == "refused" and run.data.tags["gate.model"] == f"models:/{name}/1"
    assert _alias(registry, name, "production") is None


# Verdict precedence, on the gated model (it is the one strong scan these tests need): a scan
# weaker than the recorded one (fewer recovery steps, a higher threshold) never overwrites a
# `backdoor` verdict and never moves or removes a protected alias; a scan below the documented
# minimum runs as advisory; a rescan replaces the whole `baerase.*` tag set. The weaker scans
# are short on purpose. They run last: the final one rescans the cleaned version.

DATA = {"data_uri": "builtin:mnist"}  # as the MLproject and the registry commands pass it
WEAK = DATA | {"recovery_steps": 100}  # what `serve-webhooks --steps 100` scans with
QUICK = DATA | {"recovery_steps": 20, "threshold": 1000.0}  # a threshold no class can pass: always "no backdoor found"


def _tags(client, name: str, version: str) -> dict[str, str]:
    return {k: v for k, v in client.get_model_version(name, version).tags.items() if k.startswith(T.PREFIX)}


@pytest.fixture(scope="module")
def erased(backdoored, first_gate):
    """The gated model: models:/<name>/1 backdoor, models:/<name>/2 its cleaned version, both
    written by the gate's scan at the defaults."""
    name, _ = backdoored
    assert first_gate.exit_code == 1, first_gate.output
    return name


def test_a_weaker_rescan_never_overwrites_a_backdoor_verdict(registry, erased):
    name = erased
    before = _tags(registry, name, "1")
    for weaker in (QUICK, WEAK | {"threshold": 1000.0}):
        outcome = run_job(JobSettings(model_uri=f"models:/{name}/1", force=True, **weaker), "scan")
        assert outcome.verdict == "backdoor" and "recorded verdict backdoor stands" in outcome.summary
        assert _tags(registry, name, "1") == before
        run = registry.get_run(outcome.run_id)
        assert "does not overwrite" in run.data.tags["baerase.precedence"] and run.info.status == "FINISHED"


def test_a_scan_below_the_minimum_is_advisory_on_the_console_and_in_the_run(registry, erased, capsys):
    name = erased
    outcome = run_job(JobSettings(model_uri=f"models:/{name}/1", force=True, **QUICK), "scan")
    err = capsys.readouterr().err
    assert f"fewer than the minimum {MIN_RECOVERY_STEPS}" in err and "advisory" in err
    advisory = registry.get_run(outcome.run_id).data.tags["baerase.advisory"]
    assert f"threshold 1000, above the maximum {MAX_THRESHOLD:g}" in advisory


def test_a_stronger_recorded_verdict_counts_as_current_for_a_weaker_scan(registry, erased):
    name = erased
    info = version_info(registry, name, "1")
    assert is_current(settings_for(JobSettings(model_uri="", **WEAK), info), info)
    assert not is_current(
        settings_for(JobSettings(model_uri="", **DATA | {"recovery_steps": 800}), info), info
    )  # a stronger scan is owed


def test_weaker_alias_guard_keeps_the_alias_on_a_passing_version_and_moves_it_off_the_backdoor(
    registry, erased, tmp_path
):
    name = erased
    guard = AliasGuard(
        registry, JobQueue(tmp_path / "q.sqlite"), JobSettings(model_uri="", **WEAK), GatePolicy(), ("champion",)
    )
    registry.set_registered_model_alias(name, "champion", "2")
    assert guard.check(JobSpec("aliases", name, "2", "champion")) == "champion on version 2: passed"
    registry.set_registered_model_alias(name, "champion", "1")  # by hand, on the backdoored version
    assert "alias moved back to version 2" in guard.check(JobSpec("aliases", name, "1", "champion"))
    assert dict(registry.get_registered_model(name).aliases)["champion"] == "2"
    assert _tags(registry, name, "1")[T.VERDICT] == "backdoor"


def test_a_rescan_replaces_the_whole_tag_set(registry, erased):
    name = erased
    before = _tags(registry, name, "2")
    assert before[T.VERDICT] == "cleaned" and {T.SOURCE_VERSION, T.ASR_AFTER, T.ACCURACY_AFTER} <= set(before)
    outcome = run_job(JobSettings(model_uri=f"models:/{name}/2", force=True, **QUICK), "scan")
    after = _tags(registry, name, "2")
    assert after[T.VERDICT] == "clean" and after[T.RUN_ID] == outcome.run_id
    assert not {T.SOURCE_VERSION, T.ASR_AFTER, T.ACCURACY_AFTER, T.CLEANED_VERSION} & set(after)
    assert set(after) == set(outcome.tags)  # exactly what the new run wrote
