"""`baerase audit` against a real `mlflow server`: every verdict a version can carry, in each
format, and the exit codes. The versions' tags are written the way the job writes them (the
tags are the audit's whole input); real scans are audited in test_gate and test_webhook_burst."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from baerase_mlops import __version__
from baerase_mlops.cli import main
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.job import JobSettings
from baerase_mlops.registry.lab import register_lab_model
from baerase_mlops.registry.publish import write_tags
from baerase_mlops.registry.versions import settings_for, version_info

pytestmark = pytest.mark.slow

SARIF_LEVELS = {"none", "note", "warning", "error"}


def audit(*args: str):
    return CliRunner().invoke(main, ["audit", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def audited_model(mlflow_server, lab_model_factory):
    """Seven versions: clean, backdoor cleaned into v3, cleaned, backdoor with no successor,
    a failed scan, never scanned, and a clean verdict from other settings (stale)."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    client = mlflow.MlflowClient()
    lab = lab_model_factory("clean")
    name = f"audit-{uuid.uuid4().hex[:6]}"
    first = register_lab_model(lab.model, lab.spec, name, fmt="state_dict+spec")
    for _ in range(6):
        client.create_model_version(name, first.source, run_id=first.run_id)
    current = T.config_hash(settings_for(JobSettings(model_uri=""), version_info(client, name, "1")).verdict_settings())
    common = {
        T.TOOL_VERSION: __version__,
        T.CONFIG_HASH: current,
        T.DATA_URI: "builtin:mnist",
        T.SCANNED_AT: T.now(),
        T.ANOMALY_INDEX: "0.5",
        T.FLAGGED_CLASSES: "[]",
    }
    backdoor = {
        **common,
        T.ANOMALY_INDEX: "6.1",
        T.FLAGGED_CLASSES: "[0]",
        T.ASR_BEFORE: "0.99",
        T.ACCURACY_BEFORE: "0.97",
    }
    tags = {
        "1": {**common, T.VERDICT: "clean"},
        "2": {
            **backdoor,
            T.ASR_AFTER: "0.004",
            T.ACCURACY_AFTER: "0.965",
            T.CLEANED_VERSION: "3",
            T.VERDICT: "backdoor",
        },
        "3": {
            **backdoor,
            T.ASR_AFTER: "0.004",
            T.ACCURACY_AFTER: "0.965",
            T.SOURCE_VERSION: "2",
            T.ASR_KIND: "verified",
            T.VERDICT: "cleaned",
        },
        "4": {**backdoor, T.VERDICT: "backdoor"},
        "5": {**common, T.ERROR: "the model takes 1x8x8 images", T.VERDICT: "error"},
        "7": {**common, T.CONFIG_HASH: "0000000000000000", T.VERDICT: "clean"},
    }
    for version, values in tags.items():
        write_tags(client, name, version, values)
    client.set_registered_model_alias(name, "champion", "3")
    return name


def test_table_shows_every_version_and_never_scanned_as_such(registry, audited_model):
    result = audit(f"models:/{audited_model}")
    assert result.exit_code == 1, result.output  # version 4 carries a backdoor with no cleaned version
    cells = [line.split("│") for line in result.output.splitlines() if line.startswith("│")]
    lines = {
        c[1].strip(): "│".join(c) for c in cells if c[1].strip()
    }  # (a wrapped row continues with an empty first cell)
    assert set(lines) == {f"{audited_model}/{v}" for v in range(1, 8)}
    assert "not scanned" in lines[f"{audited_model}/6"] and "clean" not in lines[f"{audited_model}/6"]
    assert "clean (stale)" in lines[f"{audited_model}/7"]
    assert "champion" in lines[f"{audited_model}/3"] and "from v2" in lines[f"{audited_model}/3"]
    assert "99.00% -> 0.40%" in lines[f"{audited_model}/2"]


def test_json_holds_verdicts_findings_and_lineage(registry, audited_model):
    result = audit(f"models:/{audited_model}", "--format", "json")
    versions = {v["version"]: v for v in json.loads(result.output)["versions"]}
    assert {v: versions[v]["verdict"] for v in versions} == {
        "1": "clean",
        "2": "backdoor",
        "3": "cleaned",
        "4": "backdoor",
        "5": "error",
        "6": "not scanned",
        "7": "clean",
    }
    assert {v: versions[v]["finding"] for v in versions} == {
        "1": None,
        "2": "backdoor-cleaned",
        "3": None,
        "4": "backdoor",
        "5": "scan-error",
        "6": "not-scanned",
        "7": "stale",
    }
    assert versions["2"]["successor"] == "3" and versions["3"]["aliases"] == ["champion"]
    assert versions["4"]["flagged_classes"] == [0] and versions["4"]["anomaly_index"] == 6.1


def _check_sarif(log: dict) -> None:
    """The structure SARIF 2.1.0 requires of what we emit (sarif-schema-2.1.0: sarifLog, run,
    toolComponent, reportingDescriptor, result, message, location)."""
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    assert isinstance(log["runs"], list) and len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert isinstance(driver["name"], str) and driver["name"]
    rules = driver["rules"]
    ids = [rule["id"] for rule in rules]
    assert len(set(ids)) == len(ids)
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["defaultConfiguration"]["level"] in SARIF_LEVELS
    for result in run["results"]:
        assert set(result) <= {
            "ruleId",
            "ruleIndex",
            "level",
            "message",
            "locations",
            "partialFingerprints",
            "properties",
        }
        assert result["ruleId"] == ids[result["ruleIndex"]]
        assert result["level"] in SARIF_LEVELS
        assert isinstance(result["message"]["text"], str) and result["message"]["text"]
        for location in result["locations"]:
            assert isinstance(location["physicalLocation"]["artifactLocation"]["uri"], str)
            assert all(isinstance(logical["fullyQualifiedName"], str) for logical in location["logicalLocations"])
        assert all(isinstance(v, str) for v in result["partialFingerprints"].values())


def test_sarif_has_one_result_per_finding_with_its_level(registry, audited_model, tmp_path):
    out = tmp_path / "audit.sarif"
    result = audit(f"models:/{audited_model}", "--format", "sarif", "--output", str(out))
    assert result.exit_code == 1 and result.output == ""
    log = json.loads(out.read_text())
    _check_sarif(log)
    found = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].rsplit("/", 1)[1]: r["level"]
        for r in log["runs"][0]["results"]
    }
    assert found == {"2": "warning", "4": "error", "5": "warning", "6": "warning", "7": "note"}


def test_markdown_is_a_table_of_every_version(registry, audited_model):
    result = audit(f"models:/{audited_model}", "--format", "markdown")
    rows = [line for line in result.output.splitlines() if line.startswith(f"| {audited_model}/")]
    assert len(rows) == 7 and "not scanned" in rows[5]


def test_exit_codes(registry, audited_model):
    assert audit(f"models:/{audited_model}/1").exit_code == 0
    assert audit(f"models:/{audited_model}@champion").exit_code == 0
    assert audit(f"models:/{audited_model}/3", "--strict").exit_code == 0
    assert audit(f"models:/{audited_model}/6", "--strict").exit_code == 1  # never scanned
    assert audit("--registry", "--filter", f"name = '{audited_model}'").exit_code == 1
    nothing = audit("--registry", "--filter", "name = 'no-such-model-anywhere'")
    assert nothing.exit_code == 3 and "nothing to audit" in nothing.output
    missing = audit("models:/no-such-model-anywhere")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert audit(f"models:/{audited_model}", "--registry").exit_code == 4
    assert audit("--registry", "--filter", "name LIKE").exit_code == 4


def test_one_version_with_a_backdoor_exits_1_even_when_cleaned_and_names_the_cleaned_version(registry, audited_model):
    cleaned_twin = audit(f"models:/{audited_model}/2")
    assert cleaned_twin.exit_code == 1
    assert f"models:/{audited_model}/3" in cleaned_twin.output
    assert audit(f"models:/{audited_model}/2", "--format", "json").exit_code == 1
    assert audit(f"models:/{audited_model}/4").exit_code == 1  # no cleaned version at all


@pytest.fixture(scope="module")
def tidy_model(mlflow_server, lab_model_factory):
    """A registry where every backdoor was cleaned: v1 backdoor cleaned into v2 (champion, ASR
    0.4%), v3 never scanned and holding no alias."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    client = mlflow.MlflowClient()
    lab = lab_model_factory("clean")
    name = f"tidy-{uuid.uuid4().hex[:6]}"
    first = register_lab_model(lab.model, lab.spec, name, fmt="state_dict+spec")
    for _ in range(2):
        client.create_model_version(name, first.source, run_id=first.run_id)
    current = T.config_hash(settings_for(JobSettings(model_uri=""), version_info(client, name, "1")).verdict_settings())
    backdoor = {
        T.TOOL_VERSION: __version__,
        T.CONFIG_HASH: current,
        T.DATA_URI: "builtin:mnist",
        T.SCANNED_AT: T.now(),
        T.ANOMALY_INDEX: "6.1",
        T.FLAGGED_CLASSES: "[0]",
        T.ASR_BEFORE: "0.99",
        T.ACCURACY_BEFORE: "0.97",
        T.ASR_AFTER: "0.004",
        T.ACCURACY_AFTER: "0.965",
    }
    write_tags(client, name, "1", {**backdoor, T.CLEANED_VERSION: "2", T.VERDICT: "backdoor"})
    write_tags(client, name, "2", {**backdoor, T.SOURCE_VERSION: "1", T.ASR_KIND: "verified", T.VERDICT: "cleaned"})
    client.set_registered_model_alias(name, "champion", "2")
    return name


def test_registry_with_every_backdoor_cleaned_and_aliases_on_passing_versions_exits_0(registry, tidy_model):
    assert audit("--registry", "--filter", f"name = '{tidy_model}'").exit_code == 0
    assert audit(f"models:/{tidy_model}").exit_code == 0
    assert audit("--registry", "--filter", f"name = '{tidy_model}'", "--strict").exit_code == 1  # v3 never scanned


def test_registry_audit_exits_1_when_an_alias_points_at_a_version_that_has_not_passed(registry, tidy_model):
    registry.set_registered_model_alias(tidy_model, "staging", "3")  # never scanned
    try:
        result = audit("--registry", "--filter", f"name = '{tidy_model}'", "--format", "json")
        assert result.exit_code == 1
    finally:
        registry.delete_registered_model_alias(tidy_model, "staging")
    # champion's cleaned version keeps 0.4% ASR: over a stricter bound, the alias has not passed
    assert audit("--registry", "--filter", f"name = '{tidy_model}'", "--max-asr", "0.001").exit_code == 1
