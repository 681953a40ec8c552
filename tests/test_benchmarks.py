"""The benchmark suite: the smoke profile end to end (CI), and its pure parts quickly:
the zoo's matrix, the model cache, shard merging, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from baerase_mlops.cli import main as baerase
from baerase_mlops.errors import UsageError
from baerase_mlops.lab.names import ARCHITECTURES
from benchmarks.aggregate import median, spread, wilson
from benchmarks.cases import CASES, make_case
from benchmarks.labcache import cache_key, default_cache_dir, model_identity, obtain_lab_model
from benchmarks.merge import MergeError, merge
from benchmarks.profiles import PROFILES, SMOKE, ZOO, DatasetPlan, restrict, tiny
from benchmarks.run import choose_defences, entry
from benchmarks.suite import run_key
from tests.conftest import LAB_MODELS


@pytest.mark.slow
def test_smoke_profile_completes_and_writes_the_table_json_and_plot(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    code = entry(["--profile", "smoke", "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    results = json.loads(out.with_suffix(".json").read_text())
    runs = results["runs"]
    assert [(r["case"], r["arch"], r["error"]) for r in runs] == [
        ("badnets", "lenet5", None),
        ("clean", "lenet5", None),
    ]
    badnets = runs[0]
    assert badnets["lab"]["asr"] >= 0.9 and badnets["took"]  # the attack took
    assert set(badnets["defences"]) == {"baerase", "neural_cleanse", "fine_tuning"}
    assert set(badnets["scans"]) == {"baerase", "neural_cleanse"}  # NC mode runs its own scan
    assert (
        badnets["defences"]["neural_cleanse"]["scan"] == "neural_cleanse"
        and badnets["defences"]["fine_tuning"]["scan"] == "baerase"
    )
    assert all(d["total_s"] > 0 for d in badnets["defences"].values())  # each defence timed in the same run
    for d in badnets["defences"].values():  # the stopping rule's measurements, where it unlearnt
        assert (d["history"] is None) == (not d["changed"])
        assert not d["changed"] or (
            d["history"][0]["step"] == 0 and d["kept_step"] in [h["step"] for h in d["history"]]
        )
    assert badnets["scans"]["baerase"]["memory"]["rss_peak_mib"] > 0
    table = out.read_text()
    for heading in (
        "## Headline",
        "## Detection per dataset",
        "## False positives",
        "## Erasure per dataset",
        "## Time and memory",
        "## Claims",
    ):
        assert heading in table
    assert "--profile smoke" in table  # the exact command
    assert "scan 200 recovery steps" in table  # the shortened settings are stated
    assert out.with_suffix(".png").stat().st_size > 1000


def test_the_zoo_covers_what_issue_12_asks():
    for plan in ZOO.datasets:
        assert len(plan.archs) >= 3 and set(plan.archs) <= set(ARCHITECTURES)
        assert len(plan.seeds) >= 3
        assert set(plan.cases) == set(CASES)
        clean = [m for m in plan.models() if m[2] == "clean"]
        assert len(clean) >= 6  # the false-positive rate needs a denominator
    cifar = next(d for d in ZOO.datasets if d.name == "cifar10")
    assert {"vgg_bn", "resnet_narrow"} <= set(cifar.archs) and all(
        o["augment"] == "crop_flip" for o in cifar.archs.values()
    )
    gtsrb = next(d for d in ZOO.datasets if d.name == "gtsrb")
    assert all(o.get("augment") == "crop" for o in gtsrb.archs.values())  # a mirrored sign is another sign
    assert not ZOO.recovery_overrides and not ZOO.unlearning_overrides and not ZOO.verification_overrides  # defaults
    assert SMOKE.shortened and set(PROFILES) == {"smoke", "zoo"}


def test_cases_vary_target_and_placement_with_the_seed():
    shape = (1, 28, 28)
    targets = {make_case("badnets", seed, shape, 10).target for seed in range(8)}
    positions = {make_case("sticker", seed, shape, 10).attack.position for seed in range(8)}
    fields = {make_case("wanet", seed, shape, 10).attack.trigger_seed for seed in range(3)}
    assert len(targets) > 1 and len(positions) > 1 and len(fields) == 3
    assert make_case("badnets", 3, shape, 10) == make_case("badnets", 3, shape, 10)  # reproducible
    random = make_case("badnets_random", 0, shape, 10).attack
    assert random.position is None and random.size == 4 and random.pattern == "checkerboard"
    assert all(0.1 <= make_case("blended", s, shape, 10).attack.alpha <= 0.2 for s in range(5))
    assert not make_case("clean", 0, shape, 10).backdoored


def test_a_shard_is_the_matrix_restricted():
    shard = restrict(ZOO, datasets=["mnist"], archs=["lenet5"], seeds=[1], cases=["sig", "clean"])
    assert [d.name for d in shard.datasets] == ["mnist"]
    assert shard.datasets[0].models() == [("lenet5", 1, "sig"), ("lenet5", 1, "clean")]
    assert restrict(ZOO, archs=["vgg_bn"]).total_models() == 2 * 3 * len(CASES)  # cifar10 and gtsrb
    with pytest.raises(ValueError, match="no_such"):
        restrict(ZOO, archs=["no_such"])
    dry = restrict(tiny(ZOO), datasets=["cifar10"], limit=1)
    assert dry.datasets[0].models() == [("vgg_bn", 0, "badnets")] and "TINY" in dry.shortened


def test_cache_lives_outside_the_repo_and_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("BAERASE_ZOO_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir().parts[-3:] == (".cache", "baerase-mlops", "zoo")
    monkeypatch.setenv("BAERASE_ZOO_CACHE", str(tmp_path / "zoo"))
    assert default_cache_dir() == tmp_path / "zoo"


def test_cache_key_changes_with_everything_that_defines_a_model(tmp_path):
    from dataclasses import replace

    from baerase_mlops.config import LabConfig

    plan = DatasetPlan("digits", "builtin:digits", {"small_cnn": {}}, seeds=(0,))
    case = make_case("badnets", 0, (1, 8, 8), 10)
    base = LabConfig()
    key = cache_key(model_identity(plan, tmp_path, base, case))
    assert key == cache_key(model_identity(plan, tmp_path, base, case))
    others = [
        model_identity(plan, tmp_path, replace(base, augment="crop"), case),
        model_identity(plan, tmp_path, replace(base, architecture="conv_bn"), case),
        model_identity(plan, tmp_path, replace(base, seed=1), case),
        model_identity(plan, tmp_path, base, make_case("badnets", 1, (1, 8, 8), 10)),
        model_identity(plan, tmp_path, base, make_case("trojan", 0, (1, 8, 8), 10)),
    ]
    assert len({key, *(cache_key(i) for i in others)}) == 1 + len(others)


def test_cache_key_follows_the_data_sets_bytes_not_its_file_time(tmp_path):
    import os

    from baerase_mlops.config import LabConfig

    (tmp_path / "d.npz").write_bytes(b"the same bytes")
    plan = DatasetPlan("d", "d.npz", {"small_cnn": {}}, seeds=(0,))
    case = make_case("badnets", 0, (1, 8, 8), 10)
    before = cache_key(model_identity(plan, tmp_path, LabConfig(), case))
    os.utime(tmp_path / "d.npz", (1, 1))  # a copy or a re-extraction: other times, the same data
    assert cache_key(model_identity(plan, tmp_path, LabConfig(), case)) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "d.npz").write_bytes(b"other bytes")
    assert cache_key(model_identity(plan, other, LabConfig(), case)) != before


@pytest.mark.slow
def test_a_second_run_trains_nothing(tmp_path):
    case = make_case("badnets", 0, (1, 8, 8), 10)
    plan = DatasetPlan("digits", "builtin:digits", {"small_cnn": {"epochs": 1}}, seeds=(0,))
    first = obtain_lab_model(
        plan, "small_cnn", case, "builtin:digits", tmp_path, tmp_path / "cache", reuse=True, device="cpu"
    )
    second = obtain_lab_model(
        plan, "small_cnn", case, "builtin:digits", tmp_path, tmp_path / "cache", reuse=True, device="cpu"
    )
    assert not first.cached and second.cached and first.path == second.path
    assert (second.accuracy, second.asr, second.train_s) == (first.accuracy, first.asr, first.train_s)
    a, b = first.mut.model.state_dict(), second.mut.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list((tmp_path / "cache").rglob(".*"))  # no temporary files left behind


def _shard(runs: list[dict], command: str, profile: str = "zoo") -> dict:
    meta = {"command": command, "started_at": "t", "models": len(runs), "machine": {}, "git": {}}
    return {
        "meta": {
            "profile": profile,
            "defences": ["baerase"],
            "dataset_order": ["mnist"],
            "arch_order": ["small_cnn", "lenet5"],
            "shards": [meta],
        },
        "runs": runs,
    }


def _cell(arch: str, case: str, seed: int, marker: str) -> dict:
    return {"dataset": "mnist", "arch": arch, "case": case, "seed": seed, "marker": marker}


def test_merging_shards_replaces_a_rerun_cell_and_loses_nothing():
    first = _shard([_cell("small_cnn", "badnets", 0, "old"), _cell("small_cnn", "clean", 0, "old")], "shard 1")
    second = _shard([_cell("lenet5", "badnets", 0, "new"), _cell("small_cnn", "badnets", 0, "rerun")], "shard 2")
    merged = merge(merge(None, first), second)
    keys = [run_key(r) for r in merged["runs"]]
    assert len(keys) == len(set(keys)) == 3  # the re-run replaced its cell, nothing duplicated
    by_key = {run_key(r): r["marker"] for r in merged["runs"]}
    assert by_key == {
        "mnist/small_cnn/badnets/seed0": "rerun",
        "mnist/small_cnn/clean/seed0": "old",
        "mnist/lenet5/badnets/seed0": "new",
    }
    assert [s["command"] for s in merged["meta"]["shards"]] == ["shard 1", "shard 2"]  # every shard's provenance kept
    assert merged["meta"]["shards"][1]["replaced"] == ["mnist/small_cnn/badnets/seed0"]
    assert keys == [
        "mnist/small_cnn/badnets/seed0",
        "mnist/small_cnn/clean/seed0",
        "mnist/lenet5/badnets/seed0",
    ]  # table order
    with pytest.raises(MergeError):
        merge(merged, _shard([], "smoke", profile="smoke"))


def test_wilson_interval_and_medians():
    lo, hi = wilson(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-3)
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([1.0, 2.0]) == 1.5 and median([]) is None
    assert spread([], str) == "—" and spread([0.0, 1.0, 0.5], lambda v: f"{v:.1f}") == "0.5 (0.0–1.0)"


def test_cli_bench_refuses_a_missing_datasets_dir(tmp_path):
    result = CliRunner().invoke(baerase, ["bench", "--profile", "zoo", "--datasets-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "not found" in result.output


def test_cli_bench_usage_error_exits_4():
    result = CliRunner().invoke(baerase, ["bench", "--profile", "nonsense"])
    assert result.exit_code == 4


def test_a_shard_may_run_only_some_defences_in_the_profiles_order():
    assert choose_defences("fine_tuning,baerase") == ("baerase", "fine_tuning")
    with pytest.raises(UsageError, match="unknown defence"):
        choose_defences("baerase,no_such")


def _defence(
    method: str, scan: str, changed: bool, acc: tuple[float, float], asr: tuple[float | None, float | None]
) -> dict:
    return {
        "method": method,
        "scan": scan,
        "changed": changed,
        "accuracy_before": acc[0],
        "accuracy_after": acc[1],
        "accuracy_on": "lab test split",
        "asr_before": asr[0],
        "asr_after": asr[1],
        "asr_kind": "real",
        "reached_target": changed,
        "unlearning_steps": 50 if changed else 0,
        "unlearning_s": 1.0 if changed else 0.0,
        "wall_s": 2.0,
        "total_s": 12.0,
        "cpu_s": 2.0,
        "memory": {"rss_peak_mib": 900.0},
    }


def test_peer_only_needs_the_peer_and_a_table_to_add_it_to(tmp_path, capsys):
    assert entry(["--profile", "smoke", "--peer-only", "--out", str(tmp_path / "B.md")]) == 4
    assert "needs --peer-dir and an existing" in capsys.readouterr().err
    assert not (tmp_path / "B.json").exists()


def _scan(flagged: list[int], target: int | None, index: float) -> dict:
    return {
        "backdoor": bool(flagged),
        "flagged": flagged,
        "right_class": (target in flagged) if target is not None else None,
        "anomaly_index": index,
        "target_anomaly_index": index if target is not None else None,
        "wall_s": 10.0,
        "memory": {"rss_peak_mib": 800.0},
    }


def _run(
    case: str, seed: int, flagged: list[int], *, asr: float = 1.0, after: float = 0.001, error: str | None = None
) -> dict:
    """A hand-made run record in the shape suite.run_case writes (the report must not need a real run)."""
    backdoored = case != "clean"
    base = {
        "key": f"mnist/small_cnn/{case}/seed{seed}",
        "dataset": "mnist",
        "arch": "small_cnn",
        "case": case,
        "label": CASES[case][1],
        "seed": seed,
        "backdoored": backdoored,
        "error": error,
    }
    if error:
        return base
    target = 3 if backdoored else None
    changed = bool(flagged)
    before_asr = asr if backdoored else None
    after_asr = (after if changed else asr) if backdoored else None
    return {
        **base,
        "target": target,
        "took": (asr >= 0.9) if backdoored else None,
        "wall_s": 60.0,
        "lab": {
            "accuracy": 0.98,
            "asr": asr if backdoored else 0.01,
            "train_s": 10.0,
            "cached": False,
            "train_rss_peak_mib": 700.0,
        },
        "scans": {"baerase": _scan(flagged, target, 2.5 if changed else 1.2), "neural_cleanse": _scan([], target, 1.0)},
        "defences": {
            "baerase": _defence(
                "baerase", "baerase", changed, (0.98, 0.975 if changed else 0.98), (before_asr, after_asr)
            ),
            "neural_cleanse": _defence(
                "nc_unlearning", "neural_cleanse", False, (0.98, 0.98), (before_asr, before_asr)
            ),
        },
    }


def _results(runs: list[dict], command: str = "python -m benchmarks.run --profile zoo --datasets mnist") -> dict:
    """A result file as a shard writes it."""
    shard = {
        "command": command,
        "started_at": "t0",
        "finished_at": "t1",
        "wall_s": 600.0,
        "models": len(runs),
        "runs": len(runs),
        "load_average_start": [1, 1, 1],
        "load_average_end": [2, 2, 2],
        "machine": {"cpu": "x", "cores": 2, "device": "cpu"},
        "git": {"commit": "abcdef123456", "dirty": False},
    }
    return {
        "meta": {
            "profile": "zoo",
            "summary": "s",
            "shortened": "",
            "defences": ["baerase", "neural_cleanse"],
            "scan_config": {},
            "unlearning_config": {},
            "dataset_order": ["mnist"],
            "arch_order": ["small_cnn"],
            "shards": [shard],
        },
        "runs": runs,
    }


def _examined(cell: dict, cache_key: str, scans: list[str]) -> dict:
    clean_set = {"images": 2401, "description": "5% of the lab model's training split"}
    return {**cell, "lab": {"cache_key": cache_key}, "clean_set": clean_set, "scans": {s: {"method": s} for s in scans}}


def test_a_rerun_cell_keeps_the_peer_scan_of_the_same_model_it_did_not_repeat():
    old = _examined(_cell("lenet5", "badnets", 0, "old"), "abc", ["baerase", "neural_cleanse", "backdoorbench_nc"])
    rerun = _examined(_cell("lenet5", "badnets", 0, "rerun"), "abc", ["baerase", "neural_cleanse"])
    merged = merge(_shard([old], "with the peer"), _shard([rerun], "product only"))
    (run,) = merged["runs"]
    assert run["marker"] == "rerun" and list(run["scans"]) == ["baerase", "neural_cleanse", "backdoorbench_nc"]


def test_a_rerun_cell_on_another_model_drops_the_old_peer_scan():
    old = _examined(_cell("lenet5", "sig", 0, "old"), "abc", ["baerase", "backdoorbench_nc"])
    retrained = _examined(_cell("lenet5", "sig", 0, "rerun"), "def", ["baerase"])  # the attack changed: a new model
    (run,) = merge(_shard([old], "with the peer"), _shard([retrained], "product only"))["runs"]
    assert list(run["scans"]) == ["baerase"]


def test_merge_from_adds_a_shard_file_to_the_table_without_running_anything(tmp_path):
    from benchmarks.run import main, write_outputs

    write_outputs(_results([_run("badnets", 0, [3]), _run("clean", 0, [])]), tmp_path / "B.md", write_json=True)
    shard = tmp_path / "shard.json"
    shard.write_text(json.dumps(_results([_run("clean", 0, [1]), _run("clean", 1, [])], "shard 2")))
    result = CliRunner().invoke(main, ["--profile", "zoo", "--out", str(tmp_path / "B.md"), "--merge-from", str(shard)])
    assert result.exit_code == 0, result.output
    merged = json.loads((tmp_path / "B.json").read_text())
    assert [run_key(r) for r in merged["runs"]] == [
        "mnist/small_cnn/badnets/seed0",
        "mnist/small_cnn/clean/seed0",
        "mnist/small_cnn/clean/seed1",
    ]
    assert next(r for r in merged["runs"] if r["seed"] == 0 and r["case"] == "clean")["scans"]["baerase"][
        "flagged"
    ] == [1]
    assert [s["command"] for s in merged["meta"]["shards"]][-1] == "shard 2"
    assert "shard 2" in (tmp_path / "B.md").read_text()


def test_render_writes_every_section_from_a_json_of_runs(tmp_path):
    from benchmarks.run import write_outputs

    results = _results(
        [
            _run("badnets", 0, [3]),
            _run("badnets", 1, []),
            _run("sig", 0, [3], asr=0.5),
            _run("clean", 0, [1]),
            _run("clean", 1, []),
            _run("blended", 0, [], error="RuntimeError: boom"),
        ]
    )
    files = write_outputs(results, tmp_path / "B.md", write_json=True)
    table = (tmp_path / "B.md").read_text()
    assert [f.name for f in files] == ["B.md", "B.json", "B.png"]
    # Headline: one of two backdoors that took found (the SIG model did not take and is not counted),
    # one of two clean flagged.
    assert "| BAERASE (defaults) | 1/2 (50%; 9–91) | 1/2 (50%; 9–91) | 1/2 (50%; 9–91) |" in table
    assert "| Neural Cleanse mode | 0/2 (0%; 0–66) | 0/2 (0%; 0–66) | 0/2 (0%; 0–66) |" in table
    assert (
        "| mnist | small_cnn | SIG (clean-label) | 0 | 98.0 | 50.0 |" in table
    )  # listed among those that did not take
    assert "mnist/small_cnn/blended/seed0: RuntimeError: boom" in table
    assert "1.85 (1.20) / 2.50" in table  # the target's index, median (min), next to the largest clean index
    assert "--datasets mnist" in table  # the shard's command


def test_the_table_records_the_command_as_it_was_given_not_the_callers_argv():
    from benchmarks.run import command_line

    assert (
        command_line(["--profile", "smoke", "--out", "my dir/B.md"], "baerase bench")
        == "baerase bench --profile smoke --out 'my dir/B.md'"
    )
    assert command_line([], "python -m benchmarks.run") == "python -m benchmarks.run"


def _scans_only(case: str, seed: int, norms: list[float], margins: list[float]) -> dict:
    """A run of a --scans-only shard: both scans recorded, no defence run."""
    from baerase_mlops.config import DetectionConfig
    from baerase_mlops.core.detection import AnomalyDetector

    run = _run(case, seed, [])
    flagged = AnomalyDetector(DetectionConfig()).detect(norms).flagged
    target = run["target"]
    scan = _scan(flagged, target, 4.0 if flagged else 1.0) | {
        "norms": norms,
        "margins": margins,
        "margin_indices": [0.0] * len(norms),
        "flagged_by": ["size" if k in flagged else "" for k in range(len(norms))],
    }
    return run | {"scans": {"baerase": scan, "neural_cleanse": scan}, "defences": {}}


SPREAD = [26.0 * (87.0 / 26.0) ** (k / 8) for k in range(9)]  # natural sizes spread over 3x


def test_scans_only_runs_count_for_detection_and_claim_no_erasure(tmp_path):
    from benchmarks.run import write_outputs

    bad = _scans_only("badnets", 0, SPREAD[:3] + [6.0] + SPREAD[3:], [30.0] * 10)
    clean = _scans_only("clean", 0, SPREAD + [50.0], [30.0] * 10)
    results = {
        "meta": {
            "profile": "zoo",
            "summary": "s",
            "shortened": "",
            "defences": [],
            "scan_config": {},
            "unlearning_config": {},
            "shards": [],
        },
        "runs": [bad, clean],
    }
    write_outputs(results, tmp_path / "B.md")
    table = (tmp_path / "B.md").read_text()
    assert (
        "| BAERASE scan alone (scans-only runs) | 1/1 (100%; 21–100) | 0/1 (0%; 0–79) | — (no unlearning run) |"
        in table
    )
    assert "## Lines of evidence" in table


def test_statistics_recomputes_the_candidates_from_recorded_norms():
    from benchmarks.statistics import CANDIDATES, evaluate

    runs = [
        {**r, "_scan": r["scans"]["baerase"]}
        for r in (
            _scans_only("badnets", 0, SPREAD[:3] + [7.0] + SPREAD[3:], [30.0] * 10),  # 7x under the median
            _scans_only("clean", 0, SPREAD + [50.0], [30.0] * 10),
        )
    ]
    raw = evaluate(runs, CANDIDATES["raw, floor 0.2, t=2"])
    log = evaluate(runs, next(c for name, c in CANDIDATES.items() if name.endswith("(size default)")))
    assert (raw["hits"], raw["fp"]) == (0, 0)  # the earlier default misses it
    assert (log["hits"], log["fp"]) == (1, 0)


def test_a_mad_of_every_class_is_not_weighed_on_scans_whose_schedule_stopped_some_classes():
    from benchmarks.statistics import CANDIDATES, evaluate

    run = _scans_only("badnets", 0, SPREAD[:3] + [7.0] + SPREAD[3:], [30.0] * 10)
    run["scans"]["baerase"]["class_steps"] = [100, 400] * 5
    runs = [{**run, "_scan": run["scans"]["baerase"]}]
    assert evaluate(runs, CANDIDATES["raw, floor 0.2, t=2"])["bad"] == 0
    assert evaluate(runs, next(c for name, c in CANDIDATES.items() if name.endswith("(size default)")))["bad"] == 1


@pytest.mark.slow
def test_rescan_scans_a_saved_lab_model_under_other_recovery_settings(lab_model_factory):
    from benchmarks.rescan import rescan

    lab = lab_model_factory("badnets")
    line = rescan(lab.model_path, {"steps": 40, "screen_steps": 20}, "baerase", "cpu")
    assert line["attack"] == "badnets" and line["target"] == lab.target
    assert len(line["norms"]) == 10 and max(line["steps"]) <= 40 and sorted(line["steps"])[0] <= 20
    json.dumps(line)


def test_rescan_refuses_an_unknown_recovery_setting(tmp_path):
    from click.testing import CliRunner

    from benchmarks.rescan import main

    model = tmp_path / "m.pt"
    model.write_bytes(b"")
    result = CliRunner().invoke(main, [str(model), "--recovery", '{"stepz": 1}'])
    assert result.exit_code == 2 and "stepz" in result.output


@pytest.mark.parametrize(
    ("variant", "named"),
    [('shift={"trigger_shiff": 1}', "trigger_shiff"), ("shift=[1]", "JSON object"), ('{"seed": 1}', "NAME=JSON")],
)
def test_reerase_refuses_a_variant_that_is_not_unlearning_settings(tmp_path, variant, named):
    from click.testing import CliRunner

    from benchmarks.reerase import main

    model = tmp_path / "m.pt"
    model.write_bytes(b"")
    result = CliRunner().invoke(main, [str(model), "--variant", variant])
    assert result.exit_code == 2 and named in result.output


def test_the_reading_notes_count_the_scans_that_ran_under_the_class_schedule():
    from benchmarks.report import scheduled_note

    uniform = _scans_only("badnets", 0, SPREAD[:3] + [6.0] + SPREAD[3:], [30.0] * 10)
    scheduled = _scans_only("clean", 0, SPREAD + [50.0], [30.0] * 10)
    uniform["scans"]["baerase"] = {**uniform["scans"]["baerase"], "class_steps": [400] * 10}
    scheduled["scans"]["baerase"] = {**scheduled["scans"]["baerase"], "class_steps": [100, 400] * 5}
    assert "1 of 2 BAERASE scans ran under the class schedule" in scheduled_note([uniform, scheduled])


def test_the_erasure_table_counts_a_verified_erasure_whose_real_asr_is_higher_as_over_claimed():
    from benchmarks.report import _over_claimed_count, _verified_count

    def run(real_after: float, verified: bool, verified_asr: float) -> dict:
        record = _defence("baerase", "baerase", True, (0.98, 0.975), (1.0, real_after))
        return {"defences": {"baerase": record | {"verified": verified, "verified_asr": verified_asr}}}

    runs = [run(0.126, True, 0.005), run(0.01, True, 0.0), run(0.3, False, 0.3)]
    assert _verified_count(runs, "baerase") == "2/3"
    assert _over_claimed_count(runs, "baerase") == "1/2"


def test_the_erasure_table_counts_a_real_accuracy_drop_above_the_verifications_interval():
    from benchmarks.report import _drop_over_estimate_count

    def run(real_drop: float, interval: list[float] | None) -> dict:
        record = _defence("baerase", "baerase", True, (0.80, 0.80 - real_drop), (0.9, 0.003))
        estimate = {"verification_accuracy_drop_interval": interval} if interval else {}
        return {"defences": {"baerase": record | {"verified": True, "verified_asr": 0.0} | estimate}}

    # CIFAR-10 vgg_bn of 2026-12-07: 2.55 points lost on the test split, no drop seen on its own images.
    runs = [run(0.0255, [-0.01, 0.012]), run(0.004, [-0.01, 0.012]), run(0.03, None)]
    assert _drop_over_estimate_count(runs, "baerase") == "1/2"  # the run recorded before the estimate: not counted


def test_the_erasure_table_counts_as_registered_only_what_the_jobs_rule_would_register():
    from benchmarks.report import _registered_count

    def run(drop: float, verified: bool, reached: bool) -> dict:
        record = _defence("baerase", "baerase", True, (0.80, 0.80 - drop), (0.9, 0.003))
        outcome = {"verified": verified, "verified_asr": 0.0, "reached_target": reached}
        return {"defences": {"baerase": record | outcome}}

    # A verified erasure that lost 2.55 points (CIFAR-10 vgg_bn, 2026-12-07) is not registered.
    runs = [run(0.0255, True, True), run(0.009, True, True), run(0.009, False, True), run(0.009, True, False)]
    bounds = {"target_asr": 0.01, "max_accuracy_drop": 0.02}
    assert _registered_count(runs, "baerase", bounds) == "1/4"
    assert _registered_count(runs, "baerase", bounds | {"max_accuracy_drop": 0.03}) == "2/4"
    assert _registered_count(runs, "baerase", {}) == "—"  # a table without its unlearning settings claims nothing


def test_a_peer_dir_that_is_not_a_backdoorbench_checkout_is_refused_before_any_model(tmp_path, capsys):
    code = entry(["--profile", "smoke", "--peer-dir", str(tmp_path), "--out", str(tmp_path / "B.md")])
    assert code == 4
    err = capsys.readouterr().err
    assert "not a BackdoorBench checkout" in err and "defense/nc.py is missing" in err
    assert not (tmp_path / "B.json").exists()


def test_the_peers_detection_is_counted_beside_the_products_on_every_model_it_ran_on(tmp_path):
    from benchmarks.run import write_outputs

    bad, clean = _run("badnets", 0, [3]), _run("clean", 0, [])
    bad["scans"]["backdoorbench_nc"] = _scan([3], bad["target"], 3.5) | {"wall_s": 300.0}
    clean["scans"]["backdoorbench_nc"] = _scan([6], None, 2.4) | {"wall_s": 300.0}
    write_outputs(_results([bad, clean]), tmp_path / "B.md")
    table = (tmp_path / "B.md").read_text()
    # The peer ran beside full defences (not a scans-only shard) and still counts for detection.
    assert (
        "| BackdoorBench NC (peer), detection only | 1/1 (100%; 21–100) | 1/1 (100%; 21–100) "
        "| — (its unlearning is not run) |" in table
    )
    assert "BackdoorBench NC (peer): detected, right class" in table  # the per-cell detection table
    assert "| BackdoorBench NC (peer) | unlearning" in table  # its time beside the product's scans


@pytest.mark.slow
def test_backdoorbench_nc_from_the_users_checkout_flags_a_lab_backdoor_and_leaves_the_model_alone(
    lab_model_factory,
):
    """Needs a BackdoorBench clone (CC BY-NC: never vendored) named by BAERASE_PEER_DIR, and opencv."""
    import os
    from pathlib import Path

    import yaml

    from baerase_mlops.engine import load_local_model, prepare_clean_data
    from benchmarks.peer import BackdoorBenchNC

    peer_dir = os.environ.get("BAERASE_PEER_DIR")
    if not peer_dir:
        pytest.skip("BAERASE_PEER_DIR is not set: no BackdoorBench checkout to run the peer from")
    mut = load_local_model(lab_model_factory("badnets").model_path)
    data = prepare_clean_data(None, mut)  # the clean images the product's scans get
    before = [p.detach().clone() for p in mut.model.parameters()]
    scan = BackdoorBenchNC(peer_dir).scan(mut.model, data.clean, seed=0, device=torch.device("cpu"))
    assert scan.flagged[:1] == [LAB_MODELS["badnets"]["target"]]
    assert scan.anomaly_index > 2.0 and len(scan.norms) == 10 and len(scan.class_s) == 10
    own = yaml.safe_load((Path(peer_dir) / "config/defense/nc/config.yaml").read_text())
    assert scan.settings["nc_epoch"] == own["nc_epoch"]  # the peer's own config, not ours
    assert all(p.requires_grad for p in mut.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, mut.model.parameters(), strict=True))


def test_stability_counts_a_model_whose_verdict_differs_between_scan_seeds_as_flipped():
    from benchmarks.stability import flips, summary

    bad, steady, clean = _run("badnets", 0, [3]), _run("badnets", 1, [3]), _run("clean", 0, [])
    for r, name in ((bad, "a"), (steady, "b"), (clean, "c")):
        r["lab"]["model_file"] = name
    rescans = {
        ("a", 7): {"flagged": [3]},
        ("a", 8): {"flagged": [5]},  # the target missed at this seed: a flip
        ("b", 7): {"flagged": [3, 1]},  # another class too, the target still flagged: the same verdict
        ("b", 8): {"flagged": [3]},
        ("c", 7): {"flagged": []},
    }  # "c" at seed 8 not scanned yet: left out of the rate
    rows = flips([bad, steady, clean], rescans, "baerase", [7, 8])
    assert [r["verdicts"] for r in rows] == [[True, True, False], [True, True, True], [False, False, None]]
    table = summary(rows, [7, 8], "baerase")
    assert "(2 of 3 models scanned at every seed)" in table
    assert "| mnist | small_cnn | BadNets, fixed position | 2 | 110 111 | 1/2 |" in table
    assert "Flip rate: 1/2 (50%; 9–91) of models." in table


def test_stability_resumes_only_from_its_own_methods_seed_only_rescans(tmp_path):
    from benchmarks.stability import done_before

    out = tmp_path / "flips.jsonl"
    lines = [
        {"model": "m.pt", "method": "baerase", "recovery": {"seed": 7}, "flagged": [3]},
        {"model": "m.pt", "method": "neural_cleanse", "recovery": {"seed": 8}, "flagged": []},
        {"model": "m.pt", "method": "baerase", "recovery": {"seed": 9, "steps": 100}, "flagged": []},  # rescan's
        {"model": "m.pt", "method": "baerase", "recovery": {"steps": 100}, "flagged": []},  # no seed at all
    ]
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert set(done_before(out, "baerase")) == {("m.pt", 7)}
    assert set(done_before(out, "neural_cleanse")) == {("m.pt", 8)}


def test_a_failing_peer_is_logged_and_reported_without_costing_the_products_results():
    from benchmarks.suite import _guarded_peer_scan

    logged = []

    def unreadable():
        raise FileNotFoundError("badnets-seed0.json")

    scan, error = _guarded_peer_scan(None, unreadable, 0, 3, logged.append)
    assert scan is None and error == "FileNotFoundError: badnets-seed0.json"
    assert logged == ["  backdoorbench_nc scan (peer) FAILED: FileNotFoundError: badnets-seed0.json"]


def test_two_digit_mnist_sets_two_images_side_by_side_labelled_ten_times_left_plus_right(tmp_path):
    from benchmarks.cost import write_two_digit_mnist

    n = 50
    x = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None], 28 * 28, axis=1).reshape(n, 28, 28, 1)
    y = np.arange(n) % 10
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y)
    write_two_digit_mnist(tmp_path / "mnist.npz", tmp_path / "mnist100.npz")
    data = np.load(tmp_path / "mnist100.npz")
    images, labels = data["x_train"], data["y_train"]
    assert images.shape == (n, 28, 28, 1) and list(data["classes"][:3]) == ["00", "01", "02"]
    left, right = images[:, 0, 0, 0].astype(int), images[:, 0, 27, 0].astype(int)  # each image is its index
    assert (left == np.arange(n)).all() and sorted(right) == list(range(n))  # every image is someone's partner
    assert (labels == 10 * y[left] + y[right]).all()


def _cost_record(classes: int, variant: str, wall: float) -> dict:
    return {
        "classes": classes,
        "dataset": "gtsrb",
        "arch": "small_cnn",
        "variant": variant,
        "target": 22,
        "target_found": True,
        "target_index": 5.0,
        "wall_s": wall,
        "timings": {"recovery_s": wall - 10},
        "class_steps_share": 0.46,
        "memory": {"rss_peak_mib": 1500.0},
        "machine": {"cpu": "x", "cores": 2, "torch_threads": 2},
        "finished_at": "2026-12-07T15:00:00+00:00",
    }


def test_the_cost_against_classes_survives_a_merge_and_is_rendered_in_the_table():
    from benchmarks.report import render

    table = _shard([_cell("small_cnn", "badnets", 0, "old")], "shard 1")
    table["cost"] = [_cost_record(43, "defaults", 80.0), _cost_record(43, "before the panel (screen_panel=0)", 110.0)]
    merged = merge(table, _shard([_cell("lenet5", "badnets", 0, "new")], "shard 2"))
    assert merged["cost"] == table["cost"]
    text = render(_results([]) | {"cost": merged["cost"]}, "BENCHMARKS.json", None)
    assert "one model each (`python -m benchmarks.cost`)" in text
    assert "| 43 | gtsrb | small_cnn | defaults | yes (5.00) | 80.0 | 70.0 | 46% | 1500 |" in text


def test_a_replayed_schedule_keeps_a_stopped_class_s_size_at_the_screen_and_a_kept_one_s_at_the_end():
    from dataclasses import replace as with_

    from baerase_mlops.config import RecoveryConfig
    from benchmarks.schedules import replay

    # 40 rounds, 10 classes; class k's size is 100 + k up to the screen (round 10) and 50 + k after.
    trace = [[(100.0 if r < 10 else 50.0) + k for k in range(10)] for r in range(40)]
    sizes, weights, share = replay(trace, with_(RecoveryConfig(), screen_panel=0), seed=0)
    assert sizes == [50.0 + k for k in range(6)] + [100.0 + k for k in range(6, 10)]  # the smaller half goes on
    assert weights == [1.0] * 10 and share == (10 * 10 + 6 * 30) / 400
    whole, _, whole_share = replay(trace, with_(RecoveryConfig(), screen_steps=0), seed=0)
    assert whole == trace[-1] and whole_share == 1.0


def test_a_replayed_panel_weighs_every_class_once_in_all_and_spends_the_steps_of_the_classes_it_keeps():
    from baerase_mlops.config import RecoveryConfig
    from benchmarks.schedules import replay

    trace = [[(100.0 if r < 10 else 50.0) + k for k in range(43)] for r in range(40)]
    sizes, weights, share = replay(trace, RecoveryConfig(), seed=0)
    kept = [k for k in range(43) if sizes[k] < 100]
    assert kept[:4] == [0, 1, 2, 3] and len(kept) == 4 + RecoveryConfig().screen_panel
    assert sum(weights) == 43 and all(weights[k] == 0 for k in range(43) if k not in kept)
    assert share == (43 * 10 + len(kept) * 30) / (43 * 40)
