"""The benchmark suite: the smoke profile end to end (CI), and its pure parts quickly."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from baerase_mlops.cli import main as baerase
from benchmarks.aggregate import spread
from benchmarks.cases import CASES, make_case
from benchmarks.profiles import CPU, GPU, PROFILES, restrict, tiny
from benchmarks.run import entry


@pytest.mark.slow
def test_smoke_profile_completes_and_writes_the_table_json_and_plot(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    code = entry(["--profile", "smoke", "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    results = json.loads(out.with_suffix(".json").read_text())
    runs = results["runs"]
    assert [(r["case"], r["error"]) for r in runs] == [("badnets", None), ("clean", None)]
    badnets = runs[0]
    assert badnets["lab"]["asr"] >= 0.9  # the attack took
    assert set(badnets["defences"]) == {"baerase", "nc_unlearning", "fine_tuning"}
    assert badnets["scan"]["memory"]["rss_peak_mib"] > 0
    speed = results["scan_speed"]
    assert [row["class_chunk"] for row in speed["rows"]] == [0, 1] and speed["speedup"] > 0
    table = out.read_text()
    for heading in ("## Headline", "## Detection", "## Erasure per attack", "## Time and memory", "## Batched vs sequential", "## Claims"):
        assert heading in table
    assert "--profile smoke" in table  # the exact command
    assert "scan 200 recovery steps" in table  # the shortened settings are stated
    assert out.with_suffix(".png").stat().st_size > 1000


def test_cases_vary_target_and_placement_with_the_seed():
    shape = (1, 28, 28)
    targets = {make_case("badnets", seed, shape, 10).target for seed in range(8)}
    positions = {make_case("trojan", seed, shape, 10).attack.position for seed in range(8)}
    assert len(targets) > 1 and len(positions) > 1
    assert make_case("badnets", 3, shape, 10) == make_case("badnets", 3, shape, 10)  # reproducible
    assert make_case("badnets_random", 0, shape, 10).attack.position is None
    assert not make_case("clean", 0, shape, 10).backdoored
    assert set(CASES) == {"badnets", "badnets_random", "trojan", "blended", "clean"}


def test_profiles_cover_what_the_issue_asks():
    assert {d.name for d in CPU.datasets} == {"mnist", "cifar10", "gtsrb"}
    assert all(d.lab.get("architecture", "small_cnn") == "small_cnn" for d in CPU.datasets)
    assert all(d.lab["architecture"] == "resnet18" for d in GPU.datasets)
    assert not CPU.recovery_overrides and not CPU.unlearning_overrides  # the product's defaults
    assert PROFILES["smoke"].shortened  # shortened settings are said


def test_tiny_and_restrict_shrink_a_profile():
    dry = restrict(tiny(GPU), ["cifar10"], [7], ["badnets", "clean"], limit=1)
    assert [d.name for d in dry.datasets] == ["cifar10"]
    assert dry.datasets[0].models() == [(7, "badnets")]
    assert dry.recovery_overrides["steps"] == 20 and "TINY" in dry.shortened
    with pytest.raises(ValueError):
        restrict(GPU, ["mnist"], None, None, None)


def test_spread_formats_mean_and_range():
    assert spread([], str) == "—"
    assert spread([0.5], lambda v: f"{v:.1f}") == "0.5"
    assert spread([0.0, 1.0], lambda v: f"{v:.1f}") == "0.5 (0.0–1.0)"


def test_cli_bench_refuses_a_missing_datasets_dir(tmp_path):
    result = CliRunner().invoke(baerase, ["bench", "--profile", "cpu", "--datasets-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "not found" in result.output


def test_cli_bench_usage_error_exits_4():
    result = CliRunner().invoke(baerase, ["bench", "--profile", "nonsense"])
    assert result.exit_code == 4
