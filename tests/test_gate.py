"""`baerase gate` against a real `mlflow server`: it refuses a backdoored version (scanning it
first, at the default settings, and registering the cleaned version), promotes the cleaned
one, leaves the alias alone on a refusal, and exits per DESIGN.md."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from baerase_mlops.cli import main
from baerase_mlops.registry.lab import register_lab_model

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


def test_cleaned_version_outside_the_bounds_is_refused(registry, backdoored, first_gate):
    """The cleaned version's own tags, with a verified ASR above the bound (the measured one is
    often 0, which no bound refuses): a copy of version 2 carries them."""
    from baerase_mlops.registry.publish import write_tags

    name, _ = backdoored
    cleaned = registry.get_model_version(name, "2")
    copy = registry.create_model_version(name, cleaned.source, run_id=cleaned.run_id)
    write_tags(registry, name, copy.version, {**cleaned.tags, "baerase.asr_after": "0.05"})
    result = gate(f"models:/{name}/{copy.version}", "--alias", "production")
    assert result.exit_code == 1 and "exceeds" in result.output, result.output
    assert _alias(registry, name, "production") is None


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
