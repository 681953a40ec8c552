"""The one rule before anything is called cleaned (engine.erasure_refusal), without a model: the
registry job, `baerase erase` and the benchmark's "registered" count all apply it."""

from __future__ import annotations

from baerase_mlops.engine import erasure_refusal

PASSING = {
    "verified": True,
    "reasons": [],
    "reached_target": True,
    "accuracy_drop": 0.009,
    "accuracy_on": "lab test split",
    "target_asr": 0.01,
    "max_accuracy_drop": 0.02,
}


def test_a_verified_erasure_at_its_target_within_the_accuracy_bound_may_be_called_cleaned():
    assert erasure_refusal(**PASSING) is None


def test_a_failed_verification_refuses_and_names_its_reasons():
    code, why = erasure_refusal(**PASSING | {"verified": False, "reasons": ["a fresh scan flags class 3"]})
    assert code == "failed_verification" and "a fresh scan flags class 3" in why


def test_an_unlearning_short_of_its_target_refuses_even_when_verified():
    code, why = erasure_refusal(**PASSING | {"reached_target": False})
    assert code == "not_reached" and "1.00%" in why


def test_a_verified_erasure_that_lost_more_accuracy_than_allowed_is_refused_and_says_where_it_was_measured():
    # CIFAR-10 resnet_narrow of 2026-12-07: verified, its target reached, 3.18 points lost.
    code, why = erasure_refusal(**PASSING | {"accuracy_drop": 0.0318})
    assert code == "not_reached" and "3.18%" in why and "lab test split" in why and "2.00%" in why


def test_a_drop_exactly_at_the_bound_passes():
    assert erasure_refusal(**PASSING | {"accuracy_drop": 0.02}) is None
