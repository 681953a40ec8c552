"""The MLflow project against a real `mlflow server`: scan a registered version, erase,
register the cleaned version, and refuse bad input without writing to the registry."""

from __future__ import annotations

import json
import uuid

import pytest
import torch

from baerase_mlops.registry.lab import register_lab_model
from tests.mlflow_server import mlflow_run

pytestmark = pytest.mark.slow


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _versions(client, name: str) -> dict[str, dict[str, str]]:
    return {mv.version: dict(mv.tags) for mv in client.search_model_versions(f"name = '{name}'")}


def _baerase_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.startswith("baerase.")}


@pytest.fixture(scope="module")
def cleaned_badnets(mlflow_server, lab_model_factory):
    """A BadNets lab model registered as pt2, then the main job run on it once."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    lab = lab_model_factory("badnets")
    name = _name("badnets")
    register_lab_model(lab.model, lab.spec, name)
    result = mlflow_run(mlflow_server, {"model_uri": f"models:/{name}/1"})
    return name, lab, result


def test_main_job_registers_a_cleaned_version_tagged_with_asr_and_accuracy(registry, cleaned_badnets):
    name, lab, result = cleaned_badnets
    assert result.returncode == 0, result.stderr[-3000:]
    versions = _versions(registry, name)
    assert sorted(versions) == ["1", "2"]
    scanned, cleaned = versions["1"], versions["2"]
    assert scanned["baerase.verdict"] == "backdoor" and scanned["baerase.cleaned_version"] == "2"
    assert json.loads(scanned["baerase.flagged_classes"]) == [lab.target]
    assert cleaned["baerase.verdict"] == "cleaned" and cleaned["baerase.source_version"] == "1"
    assert cleaned["baerase.asr_kind"] == "verified"
    assert float(cleaned["baerase.asr_before"]) >= 0.95
    assert float(cleaned["baerase.asr_after"]) <= 0.02
    # ... with what it rests on: the held-out images it was measured on and its 95% upper bound.
    assert int(cleaned["baerase.asr_after_images"]) >= 10
    assert float(cleaned["baerase.asr_after"]) < float(cleaned["baerase.asr_after_upper95"]) < 0.5
    assert float(cleaned["baerase.real_asr_after"]) <= 0.02  # the lab trigger, reported beside it
    assert float(cleaned["baerase.accuracy_before"]) - float(cleaned["baerase.accuracy_after"]) <= 0.02
    for key in ("baerase.anomaly_index", "baerase.scanned_at", "baerase.tool_version", "baerase.config_hash"):
        assert scanned[key] and cleaned[key]
    assert "from models:/" in registry.get_model_version(name, "2").description


def test_cleaned_versions_asr_after_is_the_independent_verifications(registry, cleaned_badnets):
    name, lab, _ = cleaned_badnets
    cleaned = registry.get_model_version(name, "2").tags
    run_id = cleaned["baerase.run_id"]
    verification = json.loads(open(registry.download_artifacts(run_id, "verification.json")).read())
    assert verification["passed"] is True and verification["rescan"]["flagged_classes"] == []
    assert float(cleaned["baerase.asr_after"]) == pytest.approx(verification["asr"], abs=1e-4)
    assert [t["label"] for t in verification["triggers"]] == [lab.target]
    # Measured with fresh triggers, not the unlearnt ones: never below the lab trigger's ASR by more than 2 points.
    assert float(cleaned["baerase.asr_after"]) >= float(cleaned["baerase.real_asr_after"]) - 0.02


def test_cleaned_version_loads_with_mlflow_like_the_original(registry, cleaned_badnets):
    import mlflow

    name, lab, _ = cleaned_badnets
    original = mlflow.pytorch.load_model(f"models:/{name}/1")
    cleaned = mlflow.pytorch.load_model(f"models:/{name}/2")
    assert type(cleaned).__name__ == type(original).__name__  # both torch.export GraphModules
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(original(x), lab.model(x), atol=1e-5)  # the scanned version's weights are untouched
    assert cleaned(x).shape == (8, 10)


def test_job_run_holds_params_metrics_dataset_and_report(registry, cleaned_badnets):
    name, _, _ = cleaned_badnets
    run = registry.get_run(registry.get_model_version(name, "1").tags["baerase.run_id"])
    assert run.data.params["job.model_format"] == "pt2"
    assert (
        "anomaly_index" in run.data.metrics and "norm_class_0" in run.data.metrics and "asr_after" in run.data.metrics
    )
    assert "margin_index" in run.data.metrics and "timing_margins_s" in run.data.metrics
    per_class = [run.data.metrics[f"recovery_steps_class_{k}"] for k in range(10)]
    assert run.data.metrics["recovery_class_steps"] == sum(per_class) and max(per_class) <= 400
    phases = {"phase_downloading_s", "phase_loading_s", "phase_validating_s", "phase_scanning_s", "phase_erasing_s"}
    assert phases <= set(run.data.metrics) and all(run.data.metrics[p] >= 0 for p in phases)
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.name == "builtin:mnist"
    report = {f.path for f in registry.list_artifacts(run.info.run_id, "report")}
    assert {"report/verdict.json", "report/triggers.png", "report/norms.png", "report/erasure.json"} <= report


def test_rerun_with_the_same_config_is_a_no_op(registry, mlflow_server, cleaned_badnets):
    name, _, _ = cleaned_badnets
    before = _versions(registry, name)
    result = mlflow_run(mlflow_server, {"model_uri": f"models:/{name}/1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "already scanned" in result.stdout
    assert _versions(registry, name) == before


# The main entry's "no backdoor found" path: the verdict on the clean model at the defaults is
# test_scan.py's (test_clean_model_is_not_flagged); here a threshold no class can pass makes it
# "clean" after the quickest scan, and the main job must then tag it and register nothing (a
# full default scan here cost two minutes of CI and tested the same detection again).
def test_clean_verdict_from_the_main_job_tags_the_version_and_registers_nothing(
    registry, mlflow_server, lab_model_factory
):
    lab = lab_model_factory("clean")
    name = _name("clean")
    register_lab_model(lab.model, lab.spec, name, fmt="state_dict+spec")
    quick = {"recovery_steps": "20", "threshold": "1000"}
    result = mlflow_run(mlflow_server, {"model_uri": f"models:/{name}/latest"} | quick)
    assert result.returncode == 0, result.stderr[-3000:]
    versions = _versions(registry, name)
    assert list(versions) == ["1"]
    assert versions["1"]["baerase.verdict"] == "clean"
    assert "baerase.cleaned_version" not in versions["1"]


def test_alias_resolves_and_fail_on_backdoor_exits_non_zero(registry, mlflow_server, cleaned_badnets):
    name, _, _ = cleaned_badnets
    registry.set_registered_model_alias(name, "candidate", "1")
    result = mlflow_run(
        mlflow_server, {"model_uri": f"models:/{name}@candidate", "fail_on_backdoor": "true"}, entry="scan"
    )
    assert result.returncode != 0
    assert f"models:/{name}/1" in result.stdout and "verdict backdoor" in result.stdout


def test_pickled_model_is_refused_without_the_trust_flag(registry, mlflow_server, lab_model_factory):
    lab = lab_model_factory("clean")
    name = _name("pickled")
    register_lab_model(lab.model, lab.spec, name, fmt="pickle")
    result = mlflow_run(mlflow_server, {"model_uri": f"models:/{name}/1"})
    assert result.returncode != 0
    assert "pickled model" in result.stderr and "trust" in result.stderr
    assert _baerase_tags(_versions(registry, name)["1"]) == {}


def test_pickled_model_with_the_trust_flag_is_modelscanned_and_scanned(registry, mlflow_server, lab_model_factory):
    lab = lab_model_factory("clean")
    name = _name("trusted")
    register_lab_model(lab.model, lab.spec, name, fmt="pickle")
    params = {
        "model_uri": f"models:/{name}/1",
        "trust_pickle": "true",
        "recovery_steps": "10",
    }  # plumbing: the quickest scan allowed (one round of the cost schedule); the verdict is advisory
    refused = mlflow_run(mlflow_server, params, entry="scan", MLFLOW_ALLOW_PICKLE_DESERIALIZATION="false")
    assert refused.returncode != 0 and "MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false" in refused.stderr
    assert _baerase_tags(_versions(registry, name)["1"]) == {}
    result = mlflow_run(mlflow_server, params, entry="scan")
    assert result.returncode == 0, result.stderr[-3000:]
    tags = _versions(registry, name)["1"]
    assert tags["baerase.verdict"] in ("clean", "backdoor")
    assert registry.get_run(tags["baerase.run_id"]).data.params["job.model_format"] == "pickle"


@pytest.fixture(scope="module")
def registered_clean(mlflow_server, lab_model_factory):
    """One registered clean model for the bad-input tests (each must leave it untouched)."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    lab = lab_model_factory("clean")
    name = _name("bad")
    register_lab_model(lab.model, lab.spec, name)
    return name


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/no-such-model/1", "registered model 'no-such-model' does not exist"),
        ("models:/{name}/7", "has no version 7"),
        ("models:/{name}@champion", "has no alias 'champion'"),
        ("models:/{name}/Production", "stages"),
    ],
)
def test_bad_model_uri_exits_non_zero_and_writes_nothing(registry, mlflow_server, registered_clean, uri, message):
    name = registered_clean
    result = mlflow_run(mlflow_server, {"model_uri": uri.format(name=name)})
    assert result.returncode != 0
    assert message in result.stderr
    assert {v: _baerase_tags(t) for v, t in _versions(registry, name).items()} == {"1": {}}


def test_data_that_do_not_fit_the_model_exit_non_zero_and_write_nothing(registry, mlflow_server, registered_clean):
    name = registered_clean
    result = mlflow_run(mlflow_server, {"model_uri": f"models:/{name}/1", "data_uri": "builtin:digits"})
    assert result.returncode != 0
    assert "expect_column_values_to_be_in_set" in result.stderr  # named by the failed expectation
    assert "1x8x8" in result.stderr and "1x28x28" in result.stderr
    assert {v: _baerase_tags(t) for v, t in _versions(registry, name).items()} == {"1": {}}


def test_unreachable_tracking_server_exits_non_zero_with_a_clear_message(mlflow_server):
    # `mlflow run` itself needs the server to create its run, so this calls the command
    # the MLproject runs, as `mlflow run` would, with the server gone.
    import subprocess
    import sys

    from tests.mlflow_server import REPO, free_port

    env = mlflow_server.env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    cmd = [sys.executable, "pipelines/job.py", "--mode", "scan", "--model-uri", "models:/clf/1"]
    result = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "cannot reach the MLflow tracking server" in result.stderr
