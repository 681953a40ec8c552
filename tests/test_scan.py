"""Trigger recovery and detection on real backdoored lab models, with 5% of the training
data as the clean set and no knowledge of the attack."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from baerase_mlops.cli import main
from baerase_mlops.config import RecoveryConfig, ScanConfig
from baerase_mlops.core.contract import InputContract
from baerase_mlops.core.recovery import BaeraseRecovery, NeuralCleanseRecovery
from baerase_mlops.core.recovery.families import TriggerGenerator
from baerase_mlops.core.recovery.optimise import _compact, screened_out
from baerase_mlops.core.scan import Scanner, Verdict
from baerase_mlops.data import from_arrays
from baerase_mlops.errors import DataError, ModelError


@pytest.mark.slow
@pytest.mark.parametrize("name", ["badnets", "badnets_random", "trojan", "blended"])
def test_backdoor_is_flagged_with_the_right_target(scan_factory, lab_model_factory, name):
    _, data, result = scan_factory(name)
    assert len(data.clean) == 200  # 5% of the 4,000 training images
    assert result.verdict.backdoor
    assert result.verdict.flagged_classes == [lab_model_factory(name).target]


@pytest.mark.slow
def test_clean_model_is_not_flagged(scan_factory):
    _, _, result = scan_factory("clean")
    assert not result.verdict.backdoor
    assert result.verdict.anomaly_index <= result.verdict.threshold
    assert "no backdoor found" in result.verdict.summary() and "miss is possible" in result.verdict.summary()


@pytest.mark.slow
def test_recovered_trigger_of_the_target_works_on_held_out_images(scan_factory, lab_model_factory):
    _, _, result = scan_factory("badnets")
    target = lab_model_factory("badnets").target
    assert result.verdict.classes[target].holdout_asr >= 0.9
    assert result.verdict.classes[target].norm < 0.25 * result.verdict.median_norm


@pytest.mark.slow
def test_verdict_records_contract_timings_device_and_seed(scan_factory):
    _, _, result = scan_factory("trojan")
    data = result.verdict.to_json()
    assert data["contract"]["input_shape"] == [1, 28, 28] and data["contract"]["value_range"] == [0.0, 1.0]
    assert data["contract"]["normalization"]["applied_by"] == "model"
    assert data["device"] == "cpu" and data["seed"] == 0
    assert data["timings"]["recovery_s"] > 0
    assert len(data["classes"]) == 10
    assert data["timings"]["margins_s"] > 0 and all(c["margin"] > 0 for c in data["classes"])
    json.dumps(data)  # serialisable as it stands


@pytest.mark.slow
@pytest.mark.parametrize("name", ["badnets_random", "blended"])
def test_each_line_of_evidence_on_its_own_names_the_target(scan_factory, lab_model_factory, name):
    # On these lab backdoors the size test and the margin test each flag the target by themselves
    # (a fixed patch's margin, ~2x the median, is left to the size test); the verdict records which.
    _, _, result = scan_factory(name)
    target = result.verdict.classes[lab_model_factory(name).target]
    assert target.flagged_by == "size+margin"
    assert target.anomaly_index > result.verdict.threshold and target.margin_index > result.verdict.threshold


def _tiny(n_per_class: int = 6, classes: int = 3):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n_per_class * classes, 1, 8, 8, generator=gen)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    return from_arrays(x.numpy(), y.numpy(), source="tiny")


def _tiny_model(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))


FAST = ScanConfig(recovery=RecoveryConfig(steps=20, round_steps=10))


def test_recovery_is_reproducible_with_a_seed():
    data = _tiny()
    contract = InputContract((1, 8, 8), data.classes)
    a = Scanner(FAST, device="cpu").scan(_tiny_model(), data, contract).verdict
    b = Scanner(FAST, device="cpu").scan(_tiny_model(), data, contract).verdict
    assert [c.norm for c in a.classes] == [c.norm for c in b.classes]


def test_batched_and_one_class_at_a_time_recover_every_class():
    data = _tiny()
    for method in (BaeraseRecovery, NeuralCleanseRecovery):
        for chunk in (0, 1):
            config = replace(FAST.recovery, class_chunk=chunk)
            result = method(config, device="cpu").recover(_tiny_model(), data.x, data.y, 3)
            assert len(result.norms) == 3 and result.groups == (1 if chunk == 0 else 3)
            mask, pattern = result.sample(1, 5)
            assert mask.shape == (5, 1, 8, 8) and pattern.shape == (5, 1, 8, 8)
            assert 0 <= float(mask.min()) and float(mask.max()) <= 1


def test_the_screen_keeps_the_smaller_half_of_the_triggers_and_the_median_class():
    best = torch.tensor([50.0, 10.0, 40.0, 30.0, 20.0, 60.0, 70.0])
    out, weights = screened_out(best, torch.zeros(7))
    assert torch.nonzero(~out).flatten().tolist() == [1, 2, 3, 4]  # 7 // 2 + 1 smallest
    assert weights.tolist() == [1.0] * 7


def test_the_screen_stops_classes_whose_trigger_never_succeeded_first():
    best = torch.tensor([math.inf, 10.0, 40.0, math.inf, 20.0])
    out, _ = screened_out(best, torch.tensor([1.0, 0.0, 0.0, 2.0, 0.0]))  # their last sizes are tiny
    assert torch.nonzero(out).flatten().tolist() == [0, 3]


def test_with_many_classes_the_screen_keeps_the_smallest_few_and_one_class_of_each_run_of_the_rest():
    best = torch.arange(43, 0, -1, dtype=torch.float)  # class 42 has the smallest trigger, class 0 the largest
    out, weights = screened_out(best, torch.zeros(43), candidates=4, panel=8, generator=torch.Generator())
    kept = torch.nonzero(~out).flatten().tolist()
    assert {42, 41, 40, 39} <= set(kept) and len(kept) == 12
    assert weights[[42, 41, 40, 39]].tolist() == [1.0] * 4
    ranks = sorted(42 - k for k in kept if k < 39)  # 0: the smallest trigger; the panel's ranks are 4..42
    # Six runs up to the median's rank (21, the 22nd smallest), two above it.
    runs = [(4, 7), (7, 10), (10, 13), (13, 16), (16, 19), (19, 22), (22, 32), (32, 43)]
    assert all(start <= rank < stop for rank, (start, stop) in zip(ranks, runs))
    assert [weights[42 - rank].item() for rank in ranks] == [stop - start for start, stop in runs]
    assert weights[out].sum() == 0 and weights.sum().item() == 43


def test_the_panel_is_drawn_with_the_recovery_s_generator():
    best = torch.rand(43, generator=torch.Generator().manual_seed(1))
    draw = [screened_out(best, best, 4, 6, torch.Generator().manual_seed(seed))[0] for seed in (0, 0, 1, 2)]
    assert torch.equal(draw[0], draw[1]) and not (torch.equal(draw[0], draw[2]) and torch.equal(draw[0], draw[3]))


def test_the_panel_is_used_only_where_it_keeps_fewer_classes_than_the_smaller_half():
    best = torch.arange(10, 0, -1, dtype=torch.float)
    out, weights = screened_out(best, torch.zeros(10), candidates=4, panel=8)
    assert int((~out).sum()) == 10 // 2 + 1 and weights.tolist() == [1.0] * 10


@pytest.mark.parametrize("method", [BaeraseRecovery, NeuralCleanseRecovery])
def test_a_screened_out_class_keeps_the_trigger_it_had_at_the_screen(method):
    data = _tiny(classes=7)
    screened = replace(FAST.recovery, steps=40, screen_steps=20, early_stop_rounds=100)
    long = method(screened, device="cpu").recover(_tiny_model(7), data.x, data.y, 7)
    short = method(replace(screened, steps=20), device="cpu").recover(_tiny_model(7), data.x, data.y, 7)
    stopped = [k for k, n in enumerate(long.class_steps) if n == 20]
    assert len(stopped) == 3 and sorted(set(long.class_steps)) == [20, 40]
    for k in stopped:
        assert long.norms[k] == short.norms[k]
        assert torch.equal(long.family.mask_logit[k], short.family.mask_logit[k])


@pytest.mark.parametrize("fused", [True, False])
def test_the_classes_left_after_a_stop_train_exactly_as_in_the_whole_family(fused):
    # After a stop, recovery trains a compact copy holding only the remaining classes, with Adam's
    # state sliced to them; the whole family, with no gradient for the stopped rows, is the reference.
    whole = TriggerGenerator(5, (1, 6, 6), torch.Generator().manual_seed(0), noise_dim=4, hidden_dim=8)
    adam = torch.optim.Adam(whole.parameters(), lr=0.05, betas=(0.5, 0.9), fused=fused)
    keep = [1, 3]

    def step(family: TriggerGenerator, optimiser: torch.optim.Optimizer, z: torch.Tensor, rows: list[int]) -> None:
        mask, pattern = family(z)
        optimiser.zero_grad()
        (mask[rows].sum() + (mask * pattern)[rows].square().sum()).backward()
        optimiser.step()

    noise = [whole.noise(4, torch.Generator().manual_seed(i)) for i in range(6)]
    for z in noise[:3]:
        step(whole, adam, z, list(range(5)))
    part, part_adam = _compact(whole, adam, keep, whole.subset(keep))
    for z in noise[3:]:
        step(whole, adam, z, keep)
        step(part, part_adam, z[keep], [0, 1])
    for mine, theirs in zip(whole.parameters(), part.parameters()):
        assert torch.equal(mine[keep], theirs)


def test_a_scan_with_a_panel_records_each_class_s_weight_and_steps():
    data = _tiny(classes=12)
    panel = replace(
        FAST.recovery, steps=40, screen_steps=20, early_stop_rounds=100, screen_candidates=2, screen_panel=3
    )
    verdict = (
        Scanner(replace(FAST, recovery=panel), device="cpu")
        .scan(_tiny_model(12), data, InputContract((1, 8, 8), data.classes))
        .verdict
    )
    kept = [c for c in verdict.classes if c.steps == 40]
    assert len(kept) == 5 and all(c.steps == 20 and c.weight == 0 for c in verdict.classes if c.steps != 40)
    assert sum(c.weight for c in kept) == pytest.approx(12)
    assert sorted(c.weight for c in kept)[:2] == [1.0, 1.0]
    # Through JSON (NaN, e.g. an inconclusive warp test's indices, is null there and never equals itself)
    assert Verdict.from_json(verdict.to_json()).to_json() == verdict.to_json()


def test_a_verdict_read_back_from_json_keeps_an_inconclusive_test_as_nan():
    data = _tiny()
    warps = replace(FAST.warps, steps=10, start_pixels=0.01)  # one round, far too small a warp: nothing reached
    verdict = (
        Scanner(replace(FAST, warps=warps), device="cpu")
        .scan(_tiny_model(), data, InputContract((1, 8, 8), data.classes))
        .verdict
    )
    assert math.isnan(verdict.warp_index)
    read = Verdict.from_json(json.loads(json.dumps(verdict.to_json())))
    assert math.isnan(read.warp_index) and math.isnan(read.classes[0].warp_index)
    assert read.summary() == verdict.summary()


@pytest.mark.parametrize("field", ["eval_draws", "unflagged_draws"])
def test_held_out_draws_must_be_at_least_one(field):
    with pytest.raises(ValueError, match=field):
        Scanner(replace(FAST, **{field: 0}), device="cpu")


def test_classes_optimised_in_chunks_are_not_screened():
    data = _tiny(classes=7)
    config = replace(FAST.recovery, steps=40, screen_steps=20, early_stop_rounds=100, class_chunk=4)
    assert BaeraseRecovery(config, device="cpu").recover(_tiny_model(7), data.x, data.y, 7).class_steps == [40] * 7


def test_screen_steps_must_fall_on_a_round():
    with pytest.raises(ValueError, match="multiple of round_steps"):
        BaeraseRecovery(replace(FAST.recovery, steps=40, screen_steps=15))


def test_data_shape_not_matching_the_model_names_both_shapes():
    data = _tiny()
    with pytest.raises(DataError, match="1x8x8.*takes 1x28x28"):
        Scanner(FAST, device="cpu").scan(_tiny_model(), data, InputContract((1, 28, 28), data.classes))


def test_fewer_samples_than_two_per_class_is_refused():
    data = _tiny(n_per_class=1)
    with pytest.raises(DataError, match="at least two per class"):
        Scanner(FAST, device="cpu").scan(_tiny_model(), data, InputContract((1, 8, 8), data.classes))


def test_a_model_that_is_not_a_classifier_is_refused():
    data = _tiny()
    with pytest.raises(ModelError, match="not a classifier"):
        Scanner(FAST, device="cpu").scan(nn.Identity(), data, InputContract((1, 8, 8), data.classes))


def test_a_model_with_the_wrong_number_of_classes_is_refused():
    data = _tiny()
    with pytest.raises(ModelError, match="scores 5 classes but the clean data have 3"):
        Scanner(FAST, device="cpu").scan(_tiny_model(5), data, InputContract((1, 8, 8), data.classes))


def test_a_model_that_cannot_take_the_images_is_refused():
    data = _tiny()
    model = nn.Sequential(nn.Flatten(), nn.Linear(100, 3))
    with pytest.raises(ModelError, match="cannot take images of shape 1x8x8"):
        Scanner(FAST, device="cpu").scan(model, data, InputContract((1, 8, 8), data.classes))


def test_a_model_returning_nan_is_refused():
    data = _tiny()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with torch.no_grad():
        model[1].bias.fill_(float("nan"))
    with pytest.raises(ModelError, match="NaN"):
        Scanner(FAST, device="cpu").scan(model, data, InputContract((1, 8, 8), data.classes))


@pytest.mark.slow
def test_cli_scan_writes_the_report_and_exits_1_on_a_backdoor(lab_model_factory, tmp_path):
    lab = lab_model_factory("badnets")
    result = CliRunner().invoke(main, ["scan", "--model", str(lab.model_path), "--out", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code == 1, result.output
    assert "FLAGGED" in result.output and "backdoor found: class 0" in result.output
    verdict = json.loads((tmp_path / "r" / "verdict.json").read_text())
    assert verdict["status"] == "backdoor" and verdict["flagged_classes"] == [0]
    assert verdict["classes"][0]["flagged_by"] in ("size", "margin", "size+margin")
    # (rich wraps the table's headers and notes to the test terminal's width: single words only)
    assert "margin" in result.output and "FLAGGED" in result.output
    for name in ("norms.png", "triggers.png", "class_00.png", "triggers.pt"):
        assert (tmp_path / "r" / name).stat().st_size > 0


@pytest.mark.slow
def test_cli_scan_exits_0_when_no_backdoor_is_found(lab_model_factory, tmp_path):
    # The verdict on a clean model is tested above at the defaults; this is the exit path,
    # so a short scan with a threshold no class can pass will do.
    lab = lab_model_factory("clean")
    args = [
        "scan",
        "--model",
        str(lab.model_path),
        "--out",
        str(tmp_path / "r"),
        "--quiet",
        "--steps",
        "20",
        "--threshold",
        "1000",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "no backdoor found" in result.output


def test_cli_scan_with_data_that_do_not_fit_exits_2(lab_model_factory, tmp_path):
    import numpy as np

    np.savez(tmp_path / "rgb.npz", x=np.zeros((40, 32, 32, 3), np.uint8), y=np.arange(40) % 10)
    spec = {
        "architecture": "small_cnn",
        "input_shape": [1, 28, 28],
        "classes": [str(i) for i in range(10)],
        "mean": [0.1],
        "std": [0.3],
    }
    from baerase_mlops.lab.models import build_classifier

    torch.save(build_classifier("small_cnn", (1, 28, 28), 10, [0.1], [0.3]).state_dict(), tmp_path / "m.pt")
    (tmp_path / "m.json").write_text(json.dumps(spec))
    result = CliRunner().invoke(
        main,
        ["scan", "--model", str(tmp_path / "m.pt"), "--data", str(tmp_path / "rgb.npz"), "--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 2
    assert "3x32x32" in result.output and "1x28x28" in result.output
    assert not (tmp_path / "r").exists()


def test_cli_scan_missing_model_exits_2(tmp_path):
    result = CliRunner().invoke(main, ["scan", "--model", str(tmp_path / "nope.pt")])
    assert result.exit_code == 2 and "not found" in result.output


def test_each_class_png_is_its_row_of_the_trigger_grid(tmp_path):
    from PIL import Image

    from baerase_mlops.report.scan_report import write_scan_report

    data = _tiny()
    result = Scanner(FAST, device="cpu").scan(_tiny_model(), data, InputContract((1, 8, 8), data.classes))
    files = write_scan_report(result, tmp_path)
    grid = np.asarray(Image.open(files["triggers_grid"]).convert("RGB"))
    top = 0
    for k in range(3):
        row = np.asarray(Image.open(files[f"class_{k:02d}"]).convert("RGB"))
        assert row.shape[1] == grid.shape[1] and 0.2 * grid.shape[0] < row.shape[0] < 0.45 * grid.shape[0]
        assert np.array_equal(row, grid[top : top + row.shape[0]])  # the grid's rows, in class order
        top += row.shape[0]
    assert top == grid.shape[0]  # together they are the whole grid
