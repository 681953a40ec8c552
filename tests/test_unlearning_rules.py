"""Unlearning rules that need no model: when it may stop (core.unlearning.may_stop, repaired),
which checkpoint it keeps (better), and what relabelling adds to BAERASE's loss."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from baerase_mlops.config import UnlearningConfig
from baerase_mlops.core.unlearning import BaeraseUnlearning, Checkpoint, better, may_stop, repaired

BEFORE = Checkpoint(step=0, clean_accuracy=0.98, recovered_asr=1.0)


def _history(*accuracies: float) -> list[Checkpoint]:
    return [BEFORE] + [Checkpoint(10 * (i + 1), a, 0.0) for i, a in enumerate(accuracies)]


def test_without_a_repair_bound_the_unlearning_stops_as_soon_as_it_settles():
    history = _history(0.95, 0.955, 0.96)
    assert repaired(history[-1], BEFORE, history, within=None, patience=3)


def test_a_kept_checkpoint_within_the_repair_bound_stops_the_unlearning():
    history = _history(0.95, 0.96, 0.976)
    assert repaired(history[-1], BEFORE, history, within=0.005, patience=3)


def test_a_kept_checkpoint_still_improving_outside_the_bound_keeps_the_unlearning_going():
    history = _history(0.95, 0.955, 0.96)
    assert not repaired(history[-1], BEFORE, history, within=0.005, patience=3)


def test_the_unlearning_stops_when_patience_measurements_bring_no_better_checkpoint():
    history = _history(0.96, 0.95, 0.955, 0.958)
    assert repaired(history[1], BEFORE, history, within=0.005, patience=3)


def _points(*pairs: tuple[float, float]) -> list[Checkpoint]:
    """(clean accuracy, recovered ASR) measured every 10 steps, after BEFORE."""
    return [BEFORE] + [Checkpoint(10 * (i + 1), a, r) for i, (a, r) in enumerate(pairs)]


def test_a_settled_unlearning_does_not_stop_before_min_steps():
    history = _points((0.978, 0.0), (0.978, 0.0), (0.978, 0.0))
    config = UnlearningConfig(min_steps=40)
    assert not may_stop(history[-1], BEFORE, history, config)
    history.append(Checkpoint(40, 0.978, 0.0))
    assert may_stop(history[-1], BEFORE, history, config)


def test_no_checkpoint_before_min_steps_is_kept():
    config = UnlearningConfig(min_steps=60)
    assert not better(Checkpoint(50, 0.98, 0.0), BEFORE, BEFORE, config)
    assert better(Checkpoint(60, 0.98, 0.0), BEFORE, BEFORE, config)


def test_a_checkpoint_outside_the_accuracy_bound_is_never_kept():
    config = UnlearningConfig(min_steps=0, max_accuracy_drop=0.02)
    assert not better(Checkpoint(10, 0.95, 0.0), BEFORE, BEFORE, config)


def test_settled_triggers_do_not_stop_the_unlearning_while_the_kept_checkpoint_has_not_reached_the_target():
    # The settled measurements all lost too much accuracy, so the original is still the kept one:
    # stopping would hand it back.
    history = _points((0.95, 0.0), (0.95, 0.0), (0.95, 0.0))
    assert not may_stop(BEFORE, BEFORE, history, UnlearningConfig(min_steps=0))


def test_a_single_settled_measurement_is_not_settle_evals_of_them():
    history = _points((0.978, 0.0))
    assert not may_stop(history[-1], BEFORE, history, UnlearningConfig(min_steps=0, settle_evals=3))


def test_one_measurement_above_the_target_restarts_the_settling():
    history = _points((0.978, 0.0), (0.978, 0.05), (0.978, 0.0), (0.978, 0.0))
    assert not may_stop(history[-1], BEFORE, history, UnlearningConfig(min_steps=0))


def test_relabel_adds_the_triggered_images_cross_entropy_toward_their_true_labels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, stamped = torch.rand(6, 1, 4, 4), torch.rand(6, 1, 4, 4)
    y, targets = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([2, 2, 2, 2, 2, 2])
    plain = BaeraseUnlearning(UnlearningConfig(relabel=0.0), "cpu").loss(model, x, y, stamped, targets)
    relabelled = BaeraseUnlearning(UnlearningConfig(relabel=0.5), "cpu").loss(model, x, y, stamped, targets)
    keep = y != targets  # images of the target class are not stamped toward anything
    expected = 0.5 * F.cross_entropy(model(stamped[keep]), y[keep])
    assert torch.allclose(relabelled - plain, expected)
