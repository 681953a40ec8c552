"""The anomaly index (a MAD outlier test on log trigger sizes, or Neural Cleanse's raw one) on
hand-made norm vectors."""

from __future__ import annotations

from dataclasses import replace

import pytest

from baerase_mlops.config import DetectionConfig
from baerase_mlops.core.detection import AnomalyDetector, anomaly_indices

PURE_NC = DetectionConfig(scale="raw", spread="both", min_relative_mad=0.0, centre="mid")
# Today's default before the log scale: raw L1 with a MAD floor of 20% of the median, threshold 2.
RAW_FLOORED = DetectionConfig(threshold=2.0, scale="raw", spread="both", min_relative_mad=0.2, centre="mid")


def test_index_is_distance_from_median_in_consistency_scaled_mads():
    # median 10, |deviations| = 9, 1, 0, 1, 2 -> MAD 1
    indices, median, mad = anomaly_indices([1.0, 9.0, 10.0, 11.0, 12.0])
    assert median == 10.0 and mad == 1.0
    assert indices.tolist() == pytest.approx([9 / 1.4826, 1 / 1.4826, 0.0, 1 / 1.4826, 2 / 1.4826])


def test_even_count_takes_the_mean_of_the_middle_two():
    _, median, _ = anomaly_indices([1.0, 2.0, 4.0, 100.0])
    assert median == 3.0


def test_the_default_centre_of_an_even_count_is_the_lower_middle_value():
    _, median, _ = anomaly_indices([1.0, 2.0, 4.0, 100.0], centre="lower")
    assert median == 2.0
    assert AnomalyDetector(DetectionConfig(scale="raw")).detect([1.0, 2.0, 4.0, 100.0]).median == 2.0


def test_a_stopped_class_inflated_into_the_middle_does_not_move_the_default_centre():
    # The class schedule stops a class at the screen that would have ended just above the median:
    # its size stays an upper bound (150 instead of 60), and the mean of the middle two moves with it.
    norms = [8.0, 40.0, 45.0, 50.0, 55.0, 60.0, 65.0, 70.0, 80.0, 90.0]
    stopped = [*norms[:5], 150.0, *norms[6:]]
    default = AnomalyDetector(DetectionConfig())
    assert default.detect(stopped).indices[0] == pytest.approx(default.detect(norms).indices[0])
    mid = AnomalyDetector(DetectionConfig(centre="mid"))
    assert mid.detect(stopped).indices[0] < mid.detect(norms).indices[0]


def test_unknown_centre_is_an_error():
    with pytest.raises(ValueError, match="centre"):
        AnomalyDetector(DetectionConfig(centre="mean"))


def test_small_outlier_is_flagged_and_named():
    detection = AnomalyDetector(PURE_NC).detect([60.0, 58.0, 5.0, 62.0, 61.0, 59.0, 57.0, 63.0, 60.0, 58.0])
    assert detection.flagged == [2]
    assert detection.anomaly_index > 10


def test_large_outlier_is_not_flagged():
    detection = AnomalyDetector(PURE_NC).detect([60.0, 58.0, 500.0, 62.0, 61.0, 59.0, 57.0, 63.0, 60.0, 58.0])
    assert detection.flagged == []


def test_index_at_the_threshold_is_not_flagged():
    # median 10, MAD 1: a norm of 10 - 2 * 1.4826 has index exactly 2.0
    norms = [10 - 2 * 1.4826, 9.0, 10.0, 11.0, 10.0, 9.0, 11.0]
    detection = AnomalyDetector(replace(PURE_NC, threshold=2.0)).detect(norms)
    assert detection.indices[0] == pytest.approx(2.0)
    assert detection.flagged == []


def test_threshold_is_configurable():
    norms = [7.0, 9.0, 10.0, 11.0, 10.0, 9.0, 11.0]  # index of 7 is 3 / 1.4826 = 2.02
    assert AnomalyDetector(replace(PURE_NC, threshold=2.0)).detect(norms).flagged == [0]
    assert AnomalyDetector(replace(PURE_NC, threshold=2.5)).detect(norms).flagged == []


def test_two_infected_classes_are_both_flagged():
    detection = AnomalyDetector(PURE_NC).detect([4.0, 60.0, 58.0, 62.0, 6.0, 59.0, 61.0, 60.0])
    assert detection.flagged == [0, 4]


def test_tight_cluster_with_a_naturally_easy_class_is_not_flagged_with_the_mad_floor():
    # Measured shape of a clean MNIST model: most classes within a few percent, one at 60%.
    norms = [104.0, 117.0, 96.0, 105.0, 107.0, 104.0, 103.0, 62.0, 105.0, 102.0]
    assert AnomalyDetector(PURE_NC).detect(norms).flagged == [2, 7]  # a MAD of 1.5 makes 96 an outlier too
    assert AnomalyDetector(DetectionConfig()).detect(norms).flagged == []


def test_mad_floor_keeps_a_real_backdoor_flagged():
    norms = [104.0, 117.0, 96.0, 105.0, 9.0, 104.0, 103.0, 98.0, 105.0, 102.0]
    detection = AnomalyDetector(DetectionConfig()).detect(norms)
    assert detection.flagged == [4]
    assert detection.mad == pytest.approx(DetectionConfig().min_relative_mad)  # log units


def test_raw_scale_mad_floor_is_a_share_of_the_median():
    norms = [104.0, 117.0, 96.0, 105.0, 9.0, 104.0, 103.0, 98.0, 105.0, 102.0]
    assert AnomalyDetector(RAW_FLOORED).detect(norms).mad == pytest.approx(0.2 * 103.5)


def spread(classes: int, low: float, high: float) -> list[float]:
    """Natural per-class trigger sizes spread evenly (in log) from ``low`` to ``high``."""
    return [low * (high / low) ** (k / (classes - 1)) for k in range(classes)]


@pytest.mark.parametrize("classes", [10, 43])
def test_a_seven_times_small_class_is_flagged_despite_a_threefold_natural_spread(classes):
    # The user's checkerboard model: other classes 26-87, the target 7.6x under the median.
    norms = spread(classes - 1, 26.0, 87.0)
    median = sorted(norms)[len(norms) // 2]
    norms.insert(3, median / 7.0)
    detection = AnomalyDetector(DetectionConfig()).detect(norms)
    assert detection.flagged == [3]
    assert detection.anomaly_index > DetectionConfig().threshold


@pytest.mark.parametrize("classes", [10, 43])
def test_the_raw_floored_test_misses_that_class(classes):
    # Why the default moved off raw L1: the spread of the other classes swamps the raw MAD.
    norms = spread(classes - 1, 26.0, 87.0)
    norms.insert(3, sorted(norms)[len(norms) // 2] / 7.0)
    assert AnomalyDetector(RAW_FLOORED).detect(norms).flagged == []


@pytest.mark.parametrize("classes", [10, 43])
def test_a_threefold_natural_spread_alone_is_not_flagged(classes):
    assert AnomalyDetector(DetectionConfig()).detect(spread(classes, 26.0, 87.0)).flagged == []


def test_the_default_spread_ignores_how_large_the_larger_half_is():
    # The class schedule stops the larger half early, so their sizes are upper bounds.
    norms = [10.0, 40.0, 45.0, 50.0, 55.0, 60.0, 70.0, 80.0, 90.0]
    inflated = [*norms[:5], 600.0, 700.0, 800.0, 900.0]
    assert AnomalyDetector(DetectionConfig()).detect(norms).indices[0] == pytest.approx(
        AnomalyDetector(DetectionConfig()).detect(inflated).indices[0]
    )
    both = DetectionConfig(spread="both")
    assert AnomalyDetector(both).detect(inflated).indices[0] < AnomalyDetector(both).detect(norms).indices[0]


def test_unknown_spread_is_an_error():
    with pytest.raises(ValueError, match="spread"):
        AnomalyDetector(DetectionConfig(spread="upper"))


def test_log_scale_needs_positive_norms():
    with pytest.raises(ValueError, match="positive"):
        AnomalyDetector(DetectionConfig()).detect([0.0, 5.0, 6.0])


def test_unknown_scale_is_an_error():
    with pytest.raises(ValueError, match="scale"):
        AnomalyDetector(DetectionConfig(scale="sqrt"))


def test_flag_below_is_the_threshold_as_a_norm():
    norms = [40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]
    detection = AnomalyDetector(DetectionConfig()).detect(norms)
    just_under = AnomalyDetector(DetectionConfig()).detect([detection.flag_below * 0.999, *norms[1:]])
    just_over = AnomalyDetector(DetectionConfig()).detect([detection.flag_below * 1.001, *norms[1:]])
    assert just_under.flagged == [0] and just_over.flagged == []


def test_zero_mad_gives_a_finite_huge_index_to_the_odd_one_out():
    indices, _, _ = anomaly_indices([5.0, 5.0, 5.0, 1.0, 5.0])
    assert indices[3] > 1e100 and indices[0] == 0.0


def test_fewer_than_three_classes_is_an_error():
    with pytest.raises(ValueError, match="at least 3"):
        anomaly_indices([1.0, 2.0])


def test_non_finite_norms_are_an_error():
    with pytest.raises(ValueError, match="finite"):
        anomaly_indices([1.0, float("nan"), 2.0])


def test_unit_weights_give_the_unweighted_test_exactly():
    norms = [*spread(9, 26.0, 87.0), 5.0]
    plain = AnomalyDetector(DetectionConfig()).detect(norms)
    weighted = AnomalyDetector(DetectionConfig()).detect(norms, [1.0] * 10)
    assert weighted == plain


@pytest.mark.parametrize("centre", ["lower", "mid"])
@pytest.mark.parametrize("spread_", ["lower", "both"])
def test_a_weight_counts_a_size_that_many_times(centre, spread_):
    norms = [5.0, 30.0, 40.0, 60.0, 90.0]
    weights = [1.0, 2.0, 3.0, 1.0, 2.0]
    repeated = [n for n, w in zip(norms, weights) for _ in range(int(w))]
    kwargs = {"scale": "log", "spread": spread_, "centre": centre, "min_relative_mad": 0.0}
    indices, middle, mad = anomaly_indices(norms, weights=weights, **kwargs)
    _, middle_repeated, mad_repeated = anomaly_indices(repeated, **kwargs)
    assert middle == pytest.approx(middle_repeated) and mad == pytest.approx(mad_repeated)


def test_a_class_of_weight_zero_gets_an_index_but_moves_neither_median_nor_mad():
    norms = [5.0, 30.0, 40.0, 60.0, 90.0]
    _, middle, mad = anomaly_indices(norms, scale="log", spread="lower", centre="lower")
    indices, middle_with, mad_with = anomaly_indices(
        [*norms, 1.0], scale="log", spread="lower", centre="lower", weights=[1.0] * 5 + [0.0]
    )
    assert (middle_with, mad_with) == (middle, mad) and indices[-1] > indices[0]


@pytest.mark.parametrize("weights", [[1.0, 1.0, -1.0, 1.0], [1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
def test_weights_must_be_one_non_negative_number_per_class_with_three_that_count(weights):
    with pytest.raises(ValueError, match="weight"):
        anomaly_indices([1.0, 2.0, 3.0, 4.0], weights=weights)
