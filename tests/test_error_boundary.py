"""A user's mistake exits 2 (error) or 4 (usage) with one line naming the problem: never 1
(the code for "backdoor found") and never a traceback; through the CLI and through `mlflow run`.
An MLflow failure that is not "not found" is a registry error, never read as an answer."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from baerase_mlops.cli import main
from tests.mlflow_server import REPO, free_port, mlflow_run

SCAN = ["scan", "--model", "no-model-needed.pt", "--quiet"]  # every check below runs before the model is read

BAD_INPUTS = [
    (["--device", "cuda"], "--device: device 'cuda' was asked for but CUDA is not available here"),
    (["--device", "cuda:7"], "device 'cuda:7' was asked for"),
    (["--device", "tpu"], "--device: unknown device 'tpu'"),
    (["--steps", "5"], "--steps: must be at least 10 (one round of the cost schedule)"),
    (["--steps", "0"], "--steps: must be at least 10"),
    (["--steps", "2.5"], "--steps: expected a whole number"),
    (["--threshold", "-1"], "--threshold: must be greater than 0"),
    (["--threshold", "0"], "--threshold: must be greater than 0"),
    (["--clean-fraction", "1.5"], "--clean-fraction: must be at most 1"),
    (["--clean-fraction", "-0.2"], "--clean-fraction: must be greater than 0"),
    (["--mean", "0.1,oops", "--std", "0.3,0.3"], "--mean: expected comma-separated numbers"),
    (["--mean", "0.1"], "--mean and --std go together"),
    (["--mean", "0.1,0.1", "--std", "0.3"], "--mean has 2 numbers but --std has 1"),
    (["--std", "0", "--mean", "0.5"], "--std: must be greater than 0"),
    (["--method", "magic"], "--method: choose one of baerase, neural_cleanse"),
    (["--seed", "-3"], "--seed: must be at least 0"),
]


def one_line_error(result) -> str:
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_scan_input_is_a_usage_error_in_one_line(args, message):
    result = CliRunner().invoke(main, SCAN + args, catch_exceptions=False)
    assert result.exit_code == 4
    assert message in one_line_error(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["erase", "--model", "m.pt", "--out", "c.pt", "--target-asr", "2"], "--target-asr: must be at most 1"),
        (
            ["erase", "--model", "m.pt", "--out", "c.pt", "--max-accuracy-drop", "-0.1"],
            "--max-accuracy-drop: must be at least",
        ),
        (["scan-registry", "--workers", "0"], "--workers: must be at least 1"),
        (["serve-webhooks", "--workers", "-1"], "--workers: must be at least 0"),
        (["gate", "models:/m/1", "--alias", "champion", "--max-asr", "1.5"], "--max-asr: must be at most 1"),
        (["gate", "models:/m/1", "--alias", "champion", "--steps", "0"], "--steps: must be at least 10"),
        (["audit", "--registry", "--threshold", "-1"], "--threshold: must be greater than 0"),
        (["lab", "train", "--out", "m.pt", "--device", "cuda:3"], "device 'cuda:3' was asked for"),
        (["scan", "--no-such-flag"], "No such option '--no-such-flag'"),
    ],
)
def test_bad_options_of_other_commands_are_usage_errors_in_one_line(args, message):
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 4
    assert message in one_line_error(result)


@pytest.mark.parametrize("args", [["audit", "--registry"], ["gate", "models:/m/1", "--alias", "x"], ["scan-registry"]])
def test_unreachable_tracking_server_is_an_error_in_one_line(args, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 2
    assert "cannot reach the MLflow tracking server" in one_line_error(result)


def test_the_installed_command_exits_4_without_a_traceback():
    # A real process: what a CI step sees (its exit code and its stderr), not click's test runner.
    cmd = [sys.executable, "-m", "baerase_mlops.cli", *SCAN, "--device", "cuda:7"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 4
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert "cuda:7" in result.stderr


def test_core_value_error_is_a_usage_error_not_a_crash():
    from baerase_mlops.errors import at_boundary

    def core_refuses() -> int:
        raise ValueError("class_chunk must be 0 or more")

    assert at_boundary(core_refuses) == 4


@pytest.mark.slow
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"recovery_steps": "5"}, "--recovery-steps: must be at least 10 (one round of the cost schedule)"),
        ({"device": "cuda"}, "CUDA is not available here"),
    ],
)
def test_mlflow_run_refuses_bad_parameters_with_the_same_message(mlflow_server, params, message):
    result = mlflow_run(mlflow_server, {"model_uri": "models:/never-looked-up/1", **params}, entry="scan")
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_alias_lookup_reads_missing_as_none_and_an_outage_as_a_registry_error(registry, monkeypatch):
    import mlflow

    from baerase_mlops.errors import RegistryError
    from baerase_mlops.lab.spec import ModelSpec
    from baerase_mlops.registry.gate import _alias_holder
    from baerase_mlops.registry.lab import register_lab_model

    # what the model computes does not matter to an alias lookup: an untrained one, no training
    classes = tuple(str(i) for i in range(10))
    spec = ModelSpec("small_cnn", (1, 28, 28), classes, (0.1307,), (0.3081,), dataset="builtin:mnist")
    mv = register_lab_model(spec.build(), spec, f"boundary-alias-{free_port()}", fmt="state_dict+spec")
    assert _alias_holder(registry, mv.name, "champion") is None
    registry.set_registered_model_alias(mv.name, "champion", mv.version)
    assert _alias_holder(registry, mv.name, "champion") == str(mv.version)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(RegistryError, match="registry error reading alias"):
        _alias_holder(mlflow.MlflowClient(f"http://127.0.0.1:{free_port()}"), mv.name, "champion")


@pytest.mark.slow
def test_run_lookup_reads_a_missing_run_as_not_ours_and_an_outage_as_an_error(registry, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    from baerase_mlops.webhooks.scan_task import registered_by_baerase

    assert registered_by_baerase(registry, "0" * 32) is False
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(MlflowException):
        registered_by_baerase(mlflow.MlflowClient(f"http://127.0.0.1:{free_port()}"), "0" * 32)
