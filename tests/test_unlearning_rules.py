"""Unlearning rules that need no model: when it may stop once its triggers have settled
(core.unlearning.repaired), and what relabelling adds to BAERASE's loss."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from baerase_mlops.config import UnlearningConfig
from baerase_mlops.core.unlearning import BaeraseUnlearning, Checkpoint, repaired

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
