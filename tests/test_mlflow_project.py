"""The MLflow project against a real `mlflow server`: scan a registered version, erase,
register the cleaned version, and refuse bad input without writing to the registry. The main
job runs with its clean data and every artifact on an S3-compatible store (moto's server on
loopback).

The jobs run through `mlflow run`, as a user runs them; the bad-input refusals run the
entry point's own command (`python pipelines/job.py ...`, what `mlflow run` starts), which
shows the job's exit code (2) where `mlflow run` turns every failure into 1 (that `mlflow run`
passes the refusal on is tested in test_error_boundary.py and test_untrusted_models.py)."""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from baerase_mlops.data import clean_subset
from baerase_mlops.lab.train import lab_splits
from baerase_mlops.registry.lab import register_lab_model
from tests.conftest import SavedLabModel
from tests.mlflow_server import MlflowServer, job_command, mlflow_run, start_mlflow_server, stop_mlflow_server

pytestmark = pytest.mark.slow


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _versions(client, name: str) -> dict[str, dict[str, str]]:
    return {mv.version: dict(mv.tags) for mv in client.search_model_versions(f"name = '{name}'")}


def _baerase_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.startswith("baerase.")}


CLEAN_URI = "s3://clean-data/mnist/clean.npz"


def _npz_bytes(images, labels) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=(images.permute(0, 2, 3, 1) * 255).round().byte().numpy(), y=labels.numpy())
    return buffer.getvalue()


@dataclass(frozen=True)
class MainJob:
    server: MlflowServer  # its artifact store is S3
    client: Any  # an MlflowClient of that server
    name: str
    lab: SavedLabModel
    params: dict[str, str]  # what the job was given besides model_uri: a rerun gives the same
    env: dict[str, str]  # what the job needs to reach S3
    result: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def main_job(s3_server, lab_model_factory, mnist, tmp_path_factory):
    """The main job run once through `mlflow run` on a BadNets lab model registered as pt2, with
    every artifact (both versions' files, the run's report) on an S3-compatible store (moto) and
    the clean data (1,000 images of the lab's training split, so that the held-out fifth can
    judge accuracy) in another bucket: where the data come from and the files go is the only
    difference S3 makes, and the main job's full path (scan, erasure, verification) costs two
    minutes of CI each time it runs."""
    import mlflow

    s3 = s3_server.client()
    for bucket in ("mlflow-artifacts", "clean-data"):
        s3.create_bucket(Bucket=bucket)
    lab = lab_model_factory("badnets")
    train, _ = lab_splits(mnist, lab.spec)
    clean = clean_subset(train, 0.25, seed=0)
    s3.put_object(
        Bucket="clean-data", Key=CLEAN_URI.removeprefix("s3://clean-data/"), Body=_npz_bytes(clean.x, clean.y)
    )
    server = start_mlflow_server(
        tmp_path_factory.mktemp("mlflow_s3"), extra_env=s3_server.env(), artifacts="s3://mlflow-artifacts/"
    )
    try:
        mlflow.set_tracking_uri(server.uri)
        name = _name("badnets")
        register_lab_model(lab.model, lab.spec, name)
        params = {"data_uri": CLEAN_URI}
        result = mlflow_run(server, {"model_uri": f"models:/{name}/1", **params}, **s3_server.env())
        yield MainJob(server, mlflow.MlflowClient(server.uri), name, lab, params, s3_server.env(), result)
    finally:
        mlflow.set_tracking_uri(None)
        stop_mlflow_server(server)
        s3_server.reset()


@pytest.fixture
def job_registry(main_job, monkeypatch):
    """This process's MLflow client pointed at the main job's server."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", main_job.server.uri)
    mlflow.set_tracking_uri(main_job.server.uri)
    yield main_job.client
    mlflow.set_tracking_uri(None)


def test_main_job_registers_a_cleaned_version_tagged_with_asr_and_accuracy(job_registry, main_job):
    name, lab, result = main_job.name, main_job.lab, main_job.result
    assert result.returncode == 0, result.stderr[-3000:]
    versions = _versions(job_registry, name)
    assert sorted(versions) == ["1", "2"], result.stdout[-3000:]  # the job's summary says why there is no version 2
    scanned, cleaned = versions["1"], versions["2"]
    assert scanned["baerase.verdict"] == "backdoor" and scanned["baerase.cleaned_version"] == "2"
    assert json.loads(scanned["baerase.flagged_classes"]) == [lab.target]
    assert cleaned["baerase.verdict"] == "cleaned" and cleaned["baerase.source_version"] == "1"
    assert cleaned["baerase.data_uri"] == CLEAN_URI
    assert cleaned["baerase.asr_kind"] == "verified"
    assert float(cleaned["baerase.asr_before"]) >= 0.95
    assert float(cleaned["baerase.asr_after"]) <= 0.02
    # ... with what it rests on: the held-out images it was measured on and its 95% upper bound.
    assert int(cleaned["baerase.asr_after_images"]) >= 10
    assert float(cleaned["baerase.asr_after"]) < float(cleaned["baerase.asr_after_upper95"]) < 0.5
    # Data other than the lab's own carry no lab test split: no real ASR is claimed (the gate's
    # builtin:mnist scan reports it, test_gate.py).
    assert "baerase.real_asr_after" not in cleaned
    assert float(cleaned["baerase.accuracy_before"]) - float(cleaned["baerase.accuracy_after"]) <= 0.02
    for key in ("baerase.anomaly_index", "baerase.scanned_at", "baerase.tool_version", "baerase.config_hash"):
        assert scanned[key] and cleaned[key]
    assert "from models:/" in job_registry.get_model_version(name, "2").description


def test_cleaned_versions_asr_after_is_the_independent_verifications(job_registry, main_job):
    cleaned = job_registry.get_model_version(main_job.name, "2").tags
    run_id = cleaned["baerase.run_id"]
    verification = json.loads(open(job_registry.download_artifacts(run_id, "verification.json")).read())
    assert verification["passed"] is True and verification["rescan"]["flagged_classes"] == []
    assert float(cleaned["baerase.asr_after"]) == pytest.approx(verification["asr"], abs=1e-4)
    assert int(cleaned["baerase.asr_after_images"]) == verification["asr_images"]
    assert [t["label"] for t in verification["triggers"]] == [main_job.lab.target]


def test_both_versions_files_and_the_report_are_on_s3(main_job, s3_server):
    keys = [
        o["Key"]
        for page in s3_server.client().get_paginator("list_objects_v2").paginate(Bucket="mlflow-artifacts")
        for o in page.get("Contents", [])
    ]
    assert sum(k.endswith("model.pt2") for k in keys) == 2  # the scanned and the cleaned version
    assert any(k.endswith("report/verdict.json") for k in keys) and any(k.endswith("validation.json") for k in keys)


def test_cleaned_version_loads_with_mlflow_like_the_original(job_registry, main_job):
    import mlflow

    original = mlflow.pytorch.load_model(f"models:/{main_job.name}/1")
    cleaned = mlflow.pytorch.load_model(f"models:/{main_job.name}/2")
    assert type(cleaned).__name__ == type(original).__name__  # both torch.export GraphModules
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(original(x), main_job.lab.model(x), atol=1e-5)  # the scanned version's weights are untouched
    assert cleaned(x).shape == (8, 10)


def test_job_run_holds_params_metrics_dataset_and_report(job_registry, main_job):
    run = job_registry.get_run(job_registry.get_model_version(main_job.name, "1").tags["baerase.run_id"])
    assert run.data.params["job.model_format"] == "pt2"
    assert (
        "anomaly_index" in run.data.metrics and "norm_class_0" in run.data.metrics and "asr_after" in run.data.metrics
    )
    assert "margin_index" in run.data.metrics and "timing_margins_s" in run.data.metrics
    per_class = [run.data.metrics[f"recovery_steps_class_{k}"] for k in range(10)]
    assert run.data.metrics["recovery_class_steps"] == sum(per_class) and max(per_class) <= 400
    phases = {"phase_downloading_s", "phase_loading_s", "phase_validating_s", "phase_scanning_s", "phase_erasing_s"}
    assert phases <= set(run.data.metrics) and all(run.data.metrics[p] >= 0 for p in phases)
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.name == CLEAN_URI
    report = {f.path for f in job_registry.list_artifacts(run.info.run_id, "report")}
    assert {"report/verdict.json", "report/triggers.png", "report/norms.png", "report/erasure.json"} <= report


def test_verdict_json_holds_the_job_phases_before_the_report(job_registry, main_job):
    run_id = job_registry.get_model_version(main_job.name, "1").tags["baerase.run_id"]
    run = job_registry.get_run(run_id)
    verdict = json.loads(open(job_registry.download_artifacts(run_id, "report/verdict.json")).read())
    phases = {"phase_downloading_s", "phase_loading_s", "phase_validating_s", "phase_scanning_s", "phase_erasing_s"}
    assert set(verdict["job_phases"]) == phases
    assert all(verdict["job_phases"][p] == pytest.approx(run.data.metrics[p], abs=0.01) for p in phases)
    assert verdict["job_phases"]["phase_scanning_s"] >= verdict["timings"]["total_s"]
    assert {"phase_reporting_s", "phase_writing_s"} <= set(run.data.metrics)  # after the report: the run's alone


def test_rerun_with_the_same_config_is_a_no_op(job_registry, main_job):
    before = _versions(job_registry, main_job.name)
    params = {"model_uri": f"models:/{main_job.name}/1", **main_job.params}
    result = mlflow_run(main_job.server, params, **main_job.env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "already scanned" in result.stdout
    assert _versions(job_registry, main_job.name) == before


def test_alias_resolves_and_fail_on_backdoor_exits_non_zero(job_registry, main_job):
    name = main_job.name
    job_registry.set_registered_model_alias(name, "candidate", "1")
    params = {"model_uri": f"models:/{name}@candidate", "fail_on_backdoor": "true", **main_job.params}
    result = mlflow_run(main_job.server, params, entry="scan", **main_job.env)
    assert result.returncode != 0
    assert f"models:/{name}/1" in result.stdout and "verdict backdoor" in result.stdout


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


def test_pickled_model_is_refused_without_the_trust_flag(registry, mlflow_server, lab_model_factory):
    lab = lab_model_factory("clean")
    name = _name("pickled")
    register_lab_model(lab.model, lab.spec, name, fmt="pickle")
    result = job_command(mlflow_server, {"model_uri": f"models:/{name}/1"})
    assert result.returncode == 2
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
    refused = job_command(mlflow_server, params, mode="scan", MLFLOW_ALLOW_PICKLE_DESERIALIZATION="false")
    assert refused.returncode == 2 and "MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false" in refused.stderr
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
def test_bad_model_uri_exits_2_and_writes_nothing(registry, mlflow_server, registered_clean, uri, message):
    name = registered_clean
    result = job_command(mlflow_server, {"model_uri": uri.format(name=name)})
    assert result.returncode == 2
    assert message in result.stderr
    assert {v: _baerase_tags(t) for v, t in _versions(registry, name).items()} == {"1": {}}


def test_data_that_do_not_fit_the_model_exit_2_and_write_nothing(registry, mlflow_server, registered_clean):
    name = registered_clean
    result = job_command(mlflow_server, {"model_uri": f"models:/{name}/1", "data_uri": "builtin:digits"})
    assert result.returncode == 2
    assert "expect_column_values_to_be_in_set" in result.stderr  # named by the failed expectation
    assert "1x8x8" in result.stderr and "1x28x28" in result.stderr
    assert {v: _baerase_tags(t) for v, t in _versions(registry, name).items()} == {"1": {}}


def test_unreachable_tracking_server_exits_non_zero_with_a_clear_message(mlflow_server):
    # `mlflow run` itself needs the server to create its run, so this calls the command
    # the MLproject runs, as `mlflow run` would, with the server gone.
    from tests.mlflow_server import free_port

    gone = f"http://127.0.0.1:{free_port()}"
    result = job_command(mlflow_server, {"model_uri": "models:/clf/1"}, mode="scan", MLFLOW_TRACKING_URI=gone)
    assert result.returncode == 2
    assert "cannot reach the MLflow tracking server" in result.stderr
