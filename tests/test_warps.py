"""The warp test (the third line of evidence): the warp itself, its statistic on hand-made
sizes, and the detector on real lab models."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from baerase_mlops.config import DetectionConfig, WarpConfig
from baerase_mlops.core.triggers import warp
from baerase_mlops.core.warps import WarpDetector, search_budgeted_warp, warp_asr, warp_indices
from baerase_mlops.report.scan_report import WARPS_FILE, read_warp_flows, write_scan_report

CONFIG = WarpConfig()
THRESHOLD = DetectionConfig().threshold  # the scan's one threshold, for every test


def test_a_zero_flow_leaves_the_images_unchanged():
    x = torch.rand(3, 2, 9, 11)
    assert torch.allclose(warp(x, torch.zeros(1, 2, 4, 4)), x, atol=1e-6)


def test_a_uniform_flow_of_one_pixel_shifts_the_image_by_one_pixel():
    x = torch.rand(1, 1, 9, 9)
    flow = torch.zeros(1, 2, 4, 4)
    flow[:, 0] = 2 / 8  # x offset of one pixel in grid_sample's units (2 = the side of 9 pixels, 8 steps)
    shifted = warp(x, flow)
    assert torch.allclose(shifted[..., :-1], x[..., 1:], atol=1e-5)  # each pixel now shows its right-hand neighbour


def test_one_warp_seven_times_smaller_than_a_3x_natural_spread_is_flagged():
    sizes = [1.2, 1.5, 2.4, 3.6, 1.9, 0.25, 1.3, 2.9, 1.6, 2.2]
    indices, median, _ = warp_indices(sizes, CONFIG.consistency, CONFIG.min_mad)
    assert median == pytest.approx(1.6)  # the lower median
    assert indices[5] > THRESHOLD
    assert all(v < THRESHOLD for k, v in enumerate(indices) if k != 5)


def test_the_same_spread_without_it_flags_nothing():
    sizes = [1.2, 1.5, 2.4, 3.6, 1.9, 1.1, 1.3, 2.9, 1.6, 2.2]
    indices, _, _ = warp_indices(sizes, CONFIG.consistency, CONFIG.min_mad)
    assert max(indices) < THRESHOLD


def test_43_classes_behave_the_same():
    natural = torch.linspace(1.1, 3.6, 43).tolist()
    indices, _, _ = warp_indices(natural, CONFIG.consistency, CONFIG.min_mad)
    assert max(indices) < THRESHOLD
    indices, _, _ = warp_indices([*natural[:20], 0.2, *natural[21:]], CONFIG.consistency, CONFIG.min_mad)
    assert indices[20] > THRESHOLD and sum(v > THRESHOLD for v in indices) == 1


def test_large_warps_are_never_outliers():
    indices, _, _ = warp_indices([1.2, 1.5, 1.4, 1.3, 40.0, 1.6], CONFIG.consistency, CONFIG.min_mad)
    assert indices[4] < 0


class _ShiftShortcut(nn.Module):
    """Class 0 reads column 3, class 2 column 5, class 1 columns 2 and 4: moving either kind of
    image one pixel left sends it to class 1, while class 0 and class 2 need two pixels. A warp
    shortcut in miniature."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        col = x[:, 0].mean(dim=1)  # N x W: each column's brightness
        return 20 * torch.stack((col[:, 3], col[:, 2] + col[:, 4], col[:, 5]), dim=1)


def _line_images(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Dark images with one bright column: at 3 (class 0) or at 5 (class 2)."""
    x = torch.full((n, 1, 8, 8), 0.2)
    y = torch.tensor([0, 2] * (n // 2))
    x[y == 0, :, :, 3] = 1.0
    x[y == 2, :, :, 5] = 1.0
    return x, y


def test_a_warp_shortcut_gets_the_smallest_warp():
    x, y = _line_images()
    result = WarpDetector(replace(CONFIG, steps=100), "cpu").detect(_ShiftShortcut(), x, y, 3)
    assert result.reached[1] and result.sizes[1] < 0.5
    # Classes 0 and 2 are farther (or, where a warp between two dark columns gives no gradient,
    # never reached: then their size is the last budget tried, a lower bound).
    assert 2 * result.sizes[1] < min(result.sizes[0], result.sizes[2])
    assert result.flows.shape == (3, 2, CONFIG.grid, CONFIG.grid)


def test_seeded_runs_agree():
    x, y = _line_images()
    a = WarpDetector(replace(CONFIG, steps=20), "cpu", seed=3).detect(_ShiftShortcut(), x, y, 3)
    b = WarpDetector(replace(CONFIG, steps=20), "cpu", seed=3).detect(_ShiftShortcut(), x, y, 3)
    assert a.sizes == b.sizes and torch.equal(a.flows, b.flows)


@pytest.mark.parametrize("field", ["steps", "rounds", "batch", "min_per_class"])
def test_a_zero_count_is_an_error(field):
    with pytest.raises(ValueError, match=field):
        WarpDetector(replace(CONFIG, **{field: 0}))


@pytest.mark.slow
def test_a_wanet_lab_model_is_flagged_at_its_target(lab_model_factory, mnist):
    lab = lab_model_factory("wanet")
    assert lab.asr >= 0.85  # the backdoor works (0.90 measured)
    clean = mnist.subset(torch.arange(0, len(mnist), 5))
    result = WarpDetector(CONFIG, "cpu").detect(lab.model, clean.x, clean.y, 10)
    assert result.flagged == [lab.target]
    assert result.sizes[lab.target] < 0.5 * result.median


@pytest.mark.slow
def test_a_clean_lab_model_is_not_flagged(lab_model_factory, mnist):
    clean = mnist.subset(torch.arange(0, len(mnist), 5))
    result = WarpDetector(CONFIG, "cpu").detect(lab_model_factory("clean").model, clean.x, clean.y, 10)
    assert result.flagged == [] and max(result.indices) < THRESHOLD


def test_a_budgeted_warp_stays_within_its_budget_and_finds_the_shortcut():
    x, y = _line_images()
    model = _ShiftShortcut()
    outside = x[y != 1]
    flow = search_budgeted_warp(
        model,
        outside,
        1,
        0.4,
        steps=60,
        grid=4,
        lr=0.05,
        batch_size=16,
        generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"),
    )
    pixels = flow * torch.tensor([3.5, 3.5]).view(1, 2, 1, 1)  # (8 - 1) / 2 pixels per grid_sample unit
    assert float(pixels.abs().mean()) <= 0.4 + 1e-5
    assert warp_asr(model, outside, flow, 1, torch.device("cpu")) == 1.0
    assert warp_asr(model, outside, torch.zeros_like(flow), 1, torch.device("cpu")) == 0.0


def test_a_scan_report_keeps_the_flagged_warps(tmp_path):
    flows = {3: torch.randn(1, 2, 8, 8)}
    torch.save({str(k): f for k, f in flows.items()}, tmp_path / WARPS_FILE)
    assert torch.equal(read_warp_flows(tmp_path)[3], flows[3])
    assert read_warp_flows(tmp_path / "elsewhere") == {}


def test_the_test_abstains_when_the_median_class_was_never_reached():
    # Most classes of a 43-class traffic-sign model could not be warped at all within the budget: the
    # natural warp scale is unknown, and the few reached classes are no outliers (GTSRB small_cnn).
    x, y = _line_images()
    config = replace(CONFIG, steps=20, start_pixels=0.3)  # two rounds: class 1 alone is reached
    result = WarpDetector(config, "cpu").detect(_ShiftShortcut(), x, y, 3)
    assert result.reached == [False, True, False]
    assert not result.conclusive and result.flagged == []
    assert all(math.isnan(v) for v in result.indices)


@pytest.mark.slow
def test_a_scan_of_a_wanet_model_reports_and_keeps_its_warp(scan_factory, lab_model_factory, tmp_path):
    _, _, scan = scan_factory("wanet")
    target = lab_model_factory("wanet").target
    finding = scan.verdict.classes[target]
    assert finding.warp_index > THRESHOLD and finding.warp < scan.verdict.warp_flag_below
    assert "warp index" in scan.verdict.summary()
    files = write_scan_report(scan, tmp_path)
    assert files["warps"].is_file() and list(read_warp_flows(tmp_path)) == [target]
    assert torch.equal(read_warp_flows(tmp_path)[target], scan.warp_flows[target])
    assert json.loads(files["verdict"].read_text())["classes"][target]["flagged_by"].endswith("warp")
