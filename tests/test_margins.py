"""The maximum-margin test (the trigger-agnostic second line of evidence): its statistic on
hand-made margins, and on real lab models."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from baerase_mlops.config import DetectionConfig, MarginConfig
from baerase_mlops.core.margins import MaxMarginDetector, margin_indices

CONFIG = MarginConfig()
THRESHOLD = DetectionConfig().threshold  # the scan's one threshold, for both tests


def test_one_abnormally_large_margin_is_flagged_above_the_median():
    margins = [24.0, 31.0, 27.0, 35.0, 29.0, 100.0, 26.0, 33.0, 30.0, 28.0]
    indices, median, _ = margin_indices(margins, CONFIG.consistency, CONFIG.min_mad)
    assert median == pytest.approx(29.5, rel=1e-3)  # geometric mean of the middle two
    assert max(range(10), key=indices.__getitem__) == 5
    assert indices[5] > THRESHOLD
    assert all(v < THRESHOLD for k, v in enumerate(indices) if k != 5)


def test_small_margins_are_never_outliers():
    margins = [24.0, 31.0, 27.0, 35.0, 29.0, 0.5, 26.0, 33.0, 30.0, 28.0]
    indices, _, _ = margin_indices(margins, CONFIG.consistency, CONFIG.min_mad)
    assert indices[5] < 0


def test_mad_floor_keeps_a_tight_cluster_from_flagging_a_slightly_larger_class():
    margins = [30.0, 30.5, 29.8, 30.2, 30.1, 36.0, 29.9, 30.3, 30.0, 30.4]  # 20% above a 1%-wide cluster
    indices, _, mad = margin_indices(margins, CONFIG.consistency, CONFIG.min_mad)
    assert mad == CONFIG.min_mad
    assert indices[5] < THRESHOLD


def test_non_positive_margins_count_as_tiny_not_as_errors():
    indices, _, _ = margin_indices([-3.0, 0.0, 20.0, 22.0, 21.0], CONFIG.consistency, CONFIG.min_mad)
    assert all(math.isfinite(v) for v in indices) and indices[0] == indices[1] < 0


class _Shortcut(nn.Module):
    """Class k's score grows with pixel k; class 2's four times faster than the rest: a
    backdoor's shortcut in miniature."""

    GAINS = (9.0, 11.0, 40.0, 10.0, 12.0, 8.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.flatten(1)[:, : len(self.GAINS)]
        return pixels * torch.tensor(self.GAINS)


def test_a_shortcut_class_gets_the_largest_margin_and_is_flagged():
    result = MaxMarginDetector(replace(CONFIG, steps=50), "cpu").detect(_Shortcut(), (1, 4, 4), 6)
    assert result.flagged == [2]
    assert result.margins[2] > 30 and all(m < 12.5 for k, m in enumerate(result.margins) if k != 2)


def test_seeded_runs_agree():
    a = MaxMarginDetector(replace(CONFIG, steps=20), "cpu", seed=3).detect(_Shortcut(), (1, 4, 4), 6)
    b = MaxMarginDetector(replace(CONFIG, steps=20), "cpu", seed=3).detect(_Shortcut(), (1, 4, 4), 6)
    assert a.margins == b.margins


def test_the_threshold_is_the_constructors():
    result = MaxMarginDetector(replace(CONFIG, steps=50), "cpu", threshold=1000.0).detect(_Shortcut(), (1, 4, 4), 6)
    assert result.flagged == [] and result.threshold == 1000.0


def test_zero_steps_is_an_error():
    with pytest.raises(ValueError, match="steps"):
        MaxMarginDetector(replace(CONFIG, steps=0))


@pytest.mark.slow
def test_backdoored_lab_model_is_flagged_at_its_target(lab_model_factory):
    # Blended: its target's margin is ~6x the median (a patch's ~2x is left to the size test).
    lab = lab_model_factory("blended")
    result = MaxMarginDetector(CONFIG, "cpu").detect(lab.model, (1, 28, 28), 10)
    assert result.flagged == [lab.target]


@pytest.mark.slow
def test_clean_lab_model_is_not_flagged(lab_model_factory):
    result = MaxMarginDetector(CONFIG, "cpu").detect(lab_model_factory("clean").model, (1, 28, 28), 10)
    assert result.flagged == []
    assert max(result.indices) < THRESHOLD
