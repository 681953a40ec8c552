"""When the unlearning may stop, once its triggers have settled (core.unlearning.repaired)."""

from __future__ import annotations

from baerase_mlops.core.unlearning import Checkpoint, repaired

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
