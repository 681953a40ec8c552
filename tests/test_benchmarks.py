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


def _defence(method: str, changed: bool, acc: tuple[float, float], asr: tuple[float, float]) -> dict:
    return {
        "method": method, "changed": changed, "accuracy_before": acc[0], "accuracy_after": acc[1], "accuracy_on": "lab test split",
        "asr_before": asr[0], "asr_after": asr[1], "asr_kind": "real", "recovered_asr_before": None, "recovered_asr_after": None,
        "reached_target": changed, "unlearning_steps": 50 if changed else 0, "kept_step": 50 if changed else None,
        "unlearning_s": 1.0 if changed else 0.0, "wall_s": 2.0, "cpu_s": 2.0, "memory": {"rss_peak_mib": 900.0, "cuda_peak_mib": None},
    }  # fmt: skip


def _run(case: str, backdoored: bool, flagged: list[int], error: str | None = None) -> dict:
    """A hand-made run record: the shape suite.run_case writes (the report must not need a real run)."""
    if error:
        return {"dataset": "mnist", "case": case, "seed": 0, "backdoored": backdoored, "error": error}
    changed = bool(flagged)
    return {
        "dataset": "mnist", "case": case, "seed": 0, "backdoored": backdoored, "target": 3 if backdoored else None, "error": None,
        "lab": {"accuracy": 0.98, "asr": 1.0 if backdoored else 0.01, "train_s": 10.0, "cached": False},
        "scan": {"backdoor": changed, "flagged": flagged, "right_class": (3 in flagged) if backdoored else None,
                 "other_flagged": [k for k in flagged if k != 3], "anomaly_index": 2.5 if changed else 1.2,
                 "target_anomaly_index": 2.5 if backdoored else None, "recovery_s": 20.0, "recovery_steps": 400,
                 "wall_s": 25.0, "cpu_s": 30.0, "memory": {"rss_peak_mib": 800.0, "cuda_peak_mib": None}},
        "defences": {m: _defence(m, changed, (0.98, 0.975 if changed else 0.98), (1.0 if backdoored else 0.0, 0.001 if changed else 1.0 if backdoored else 0.0))
                     for m in ("baerase", "nc_unlearning", "fine_tuning")},
    }  # fmt: skip


def test_render_writes_every_section_from_a_json_of_runs(tmp_path):
    from benchmarks.run import write_outputs

    results = {
        "meta": {
            "profile": "cpu", "summary": "s", "shortened": "", "command": "python -m benchmarks.run --profile cpu",
            "started_at": "t0", "finished_at": "t1", "wall_s": 60.0, "load_average_start": [1, 1, 1], "load_average_end": [1, 1, 1],
            "machine": {"cpu": "x", "cores": 2, "torch_threads": 2, "ram_gib": 24.0, "os": "Linux", "python": "3.11", "torch": "2", "device": "cpu"},
            "git": {"commit": "abc", "dirty": False}, "defences": ["baerase", "nc_unlearning", "fine_tuning"],
            "datasets": [{"name": "mnist", "lab_text": "small_cnn"}], "scan_config": {}, "unlearning_config": {},
        },
        "runs": [_run("badnets", True, [3]), _run("trojan", True, []), _run("clean", False, [1]), _run("blended", True, [], error="RuntimeError: boom")],
        "scan_speed": {"dataset": "mnist", "model": "m.pt", "target": 3, "steps_per_group": 10, "speedup": 2.5,
                       "rows": [{"mode": "batched", "class_chunk": 0, "groups": 1, "steps": 10, "recovery_s": 1.0, "memory": {"rss_peak_mib": 1.0}, "flagged": [3]},
                                {"mode": "sequential", "class_chunk": 1, "groups": 10, "steps": 100, "recovery_s": 2.5, "memory": {"rss_peak_mib": 1.0}, "flagged": [3]}]},
    }  # fmt: skip
    files = write_outputs(results, tmp_path / "B.md")
    table = (tmp_path / "B.md").read_text()
    assert [f.name for f in files] == ["B.md", "B.json", "B.png"]
    assert "| mnist | 1/2 | 1/1 | BAERASE |" in table  # one of two backdoors found; the clean model flagged
    assert "2.50x" in table and "RuntimeError: boom" in table and "4 runs, 1 failed" in table
    assert "| mnist | Trojan | BAERASE | 98.0 | 98.0 | 0.00 | 100.0 | 100.00 | not run |" in table  # a miss leaves the backdoor


def test_the_table_records_the_command_as_it_was_given_not_the_callers_argv():
    from benchmarks.run import command_line

    assert command_line(["--profile", "smoke", "--out", "my dir/B.md"], "baerase bench") == "baerase bench --profile smoke --out 'my dir/B.md'"
    assert command_line([], "python -m benchmarks.run") == "python -m benchmarks.run"
