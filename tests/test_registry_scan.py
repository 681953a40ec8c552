"""`baerase scan-registry` against a real `mlflow server`: it scans every matched version,
a second run scans nothing that is already current, a new version is picked up on its own,
and the same works with one Ray task per version on a local Ray instance.

The scans are short (20 recovery steps, a threshold no class can pass): these tests are
about walking, skipping and fanning out; detection is tested at the defaults elsewhere."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from baerase_mlops.cli import main
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.lab import register_lab_model

pytestmark = pytest.mark.slow

SHORT_SCAN = ("--scan-only", "--steps", "20", "--threshold", "1000", "--workers", "2", "--quiet")


def scan_registry(server, out, *args: str):
    """The command as a cron job runs it: the server named by MLFLOW_TRACKING_URI."""
    runner = CliRunner(env={"MLFLOW_TRACKING_URI": server.uri})
    return runner.invoke(main, ["scan-registry", "--out", str(out), *SHORT_SCAN, *args], catch_exceptions=False)


def _summary(out) -> dict:
    return json.loads((out / "summary.json").read_text())


def _verdicts(registry, uris: list[str]) -> list[str | None]:
    """The verdict tag of each models:/name/N in ``uris``."""
    pairs = [uri.removeprefix("models:/").split("/") for uri in uris]
    return [registry.get_model_version(name, version).tags.get(T.VERDICT) for name, version in pairs]


def _register_fleet(lab, prefix: str, versions_per_model: tuple[int, ...]) -> list[str]:
    """Models named ``prefix-i`` with the given numbers of versions; their models:/ URIs."""
    uris = []
    for i, count in enumerate(versions_per_model):
        for _ in range(count):
            mv = register_lab_model(lab.model, lab.spec, f"{prefix}-{i}", fmt="state_dict+spec")
            uris.append(f"models:/{mv.name}/{mv.version}")
    return uris


@pytest.fixture(scope="module")
def fleet(mlflow_server, lab_model_factory):
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    prefix = f"fleet{uuid.uuid4().hex[:6]}"
    lab = lab_model_factory("clean")
    return prefix, lab, _register_fleet(lab, prefix, (2, 1, 1))


@pytest.fixture(scope="module")
def first_run(fleet, mlflow_server, tmp_path_factory):
    prefix, _, _ = fleet
    out = tmp_path_factory.mktemp("first")
    return scan_registry(
        mlflow_server, out, "--filter", f"name LIKE '{prefix}-%'", "--metrics-file", str(out / "baerase.prom")
    ), out


def test_every_matched_version_is_scanned_and_tagged(registry, fleet, first_run):
    _, _, uris = fleet
    result, out = first_run
    assert result.exit_code == 0, result.output
    summary = _summary(out)
    assert summary["counts"]["matched"] == 4 and summary["counts"]["scanned"] == 4
    assert sorted(row["version"] for row in summary["versions"]) == sorted(uris)
    assert _verdicts(registry, uris) == ["clean"] * len(uris)


def test_the_summary_is_an_mlflow_run_with_json_markdown_and_html(registry, first_run):
    _, out = first_run
    run = registry.get_run(_summary(out)["run_id"])
    assert run.data.metrics["scanned"] == 4 and run.data.params["registry_scan.executor"] == "local"
    logged = {f.path for f in registry.list_artifacts(run.info.run_id, "summary")}
    assert logged == {"summary/summary.json", "summary/summary.md", "summary/summary.html"}
    assert "| version |" in (out / "summary.md").read_text()


def test_the_summary_numbers_are_written_for_the_textfile_collector(first_run):
    from tests.webhook_receiver import parse_metrics

    _, out = first_run
    scrape = parse_metrics((out / "baerase.prom").read_text())
    versions = {
        dict(labels)["outcome"]: v for (name, labels), v in scrape.items() if name == "baerase_registry_scan_versions"
    }
    assert versions == {**{k: float(v) for k, v in _summary(out)["counts"].items()}, "matched": 4.0, "scanned": 4.0}
    assert (
        scrape[("baerase_registry_scan_exit_code", frozenset())] == 0
        and scrape[("baerase_registry_scan_open_backdoors", frozenset())] == 0
    )
    assert scrape[("baerase_registry_scan_last_finished_timestamp_seconds", frozenset())] > 0
    assert not [p.name for p in out.iterdir() if p.name.startswith("baerase.prom.")]  # the temporary file was renamed


@pytest.mark.parametrize(
    ("name", "words"), [("scan.txt", "reads only *.prom files"), ("missing/scan.prom", "no folder")]
)
def test_a_metrics_file_the_collector_would_not_read_is_refused_before_the_scan(
    registry, mlflow_server, tmp_path, name, words
):
    result = scan_registry(mlflow_server, tmp_path / "out", "--metrics-file", str(tmp_path / name))
    assert result.exit_code == 4 and words in result.output and not (tmp_path / "out").exists()


def test_a_second_run_scans_nothing_and_a_new_version_alone_is_scanned(
    registry, mlflow_server, fleet, first_run, tmp_path
):
    prefix, lab, _ = fleet
    again = scan_registry(mlflow_server, tmp_path / "again", "--filter", f"name LIKE '{prefix}-%'")
    assert again.exit_code == 0, again.output
    counts = _summary(tmp_path / "again")["counts"]
    assert (counts["scanned"], counts["skipped_current"]) == (0, 4)
    new = register_lab_model(lab.model, lab.spec, f"{prefix}-1", fmt="state_dict+spec")
    third = scan_registry(mlflow_server, tmp_path / "third", "--filter", f"name LIKE '{prefix}-%'")
    assert third.exit_code == 0, third.output
    summary = _summary(tmp_path / "third")
    assert [row["version"] for row in summary["versions"] if row["action"] == "scanned"] == [
        f"models:/{new.name}/{new.version}"
    ]
    assert summary["counts"]["skipped_current"] == 4


def test_a_filter_that_matches_nothing_exits_3(registry, mlflow_server, tmp_path):
    result = scan_registry(mlflow_server, tmp_path, "--filter", "name = 'no-such-model-anywhere'")
    assert result.exit_code == 3 and "no registered model version matches" in result.output


def test_ray_executor_runs_one_task_per_version_on_a_local_instance(
    registry, mlflow_server, lab_model_factory, tmp_path, monkeypatch
):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    prefix = f"rayfleet{uuid.uuid4().hex[:6]}"
    uris = _register_fleet(lab_model_factory("clean"), prefix, (1, 1))
    result = scan_registry(mlflow_server, tmp_path, "--filter", f"name LIKE '{prefix}-%'", "--executor", "ray")
    assert result.exit_code == 0, result.output
    summary = _summary(tmp_path)
    assert summary["executor"] == "ray" and summary["counts"]["scanned"] == 2
    assert sorted(row["version"] for row in summary["versions"]) == sorted(uris)
    assert _verdicts(registry, uris) == ["clean"] * len(uris)
