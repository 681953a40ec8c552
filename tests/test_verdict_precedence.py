"""Verdict precedence against a real `mlflow server`: a scan weaker than the recorded one
(fewer recovery steps, a higher threshold) never overwrites a `backdoor` verdict and never
moves or removes a protected alias; a scan below the documented minimum runs as advisory;
a rescan replaces the whole `baerase.*` tag set.

One BadNets model is scanned and erased at the defaults (models:/<name>/1 backdoor,
models:/<name>/2 its cleaned version); the weaker scans after it are short on purpose."""

from __future__ import annotations

import uuid

import pytest

from baerase_mlops.config import MIN_RECOVERY_STEPS, GatePolicy
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.job import JobSettings, run_job
from baerase_mlops.registry.lab import register_lab_model
from baerase_mlops.registry.versions import is_current, settings_for, version_info
from baerase_mlops.webhooks.aliases import AliasGuard
from baerase_mlops.webhooks.queue import JobQueue, JobSpec

pytestmark = [pytest.mark.slow, pytest.mark.extended]

DATA = {"data_uri": "builtin:mnist"}  # as the MLproject and the registry commands pass it
WEAK = DATA | {"recovery_steps": 100}  # what `serve-webhooks --steps 100` scans with
QUICK = DATA | {"recovery_steps": 20, "threshold": 1000.0}  # a threshold no class can pass: always "no backdoor found"


def _tags(client, name: str, version: str) -> dict[str, str]:
    return {k: v for k, v in client.get_model_version(name, version).tags.items() if k.startswith(T.PREFIX)}


@pytest.fixture(scope="module")
def erased(mlflow_server, lab_model_factory):
    """BadNets as models:/<name>/1, the main job at the defaults: 1 backdoor, 2 cleaned."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    lab = lab_model_factory("badnets")
    name = f"precedence-{uuid.uuid4().hex[:6]}"
    register_lab_model(lab.model, lab.spec, name)
    outcome = run_job(JobSettings(model_uri=f"models:/{name}/1", **DATA))
    assert outcome.verdict == "backdoor" and outcome.new_version == "2", outcome.summary
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
    assert "threshold 1000, above the maximum 2" in registry.get_run(outcome.run_id).data.tags["baerase.advisory"]


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
