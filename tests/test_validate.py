"""Clean-set validation with Great Expectations: a good MNIST clean set passes, and each
defect a defender's data can have fails its own expectation, named in the error with the
offending values. Real digits only (builtin:mnist, builtin:digits), defects crafted on top."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from baerase_mlops.config import ValidationConfig
from baerase_mlops.core.contract import InputContract
from baerase_mlops.data import ImageSet, clean_subset, from_arrays
from baerase_mlops.data.sources import read_images
from baerase_mlops.data.validate import DataValidationError, validate_clean_set
from baerase_mlops.errors import ExitCode

CLASSES = tuple(str(i) for i in range(10))
MNIST_CONTRACT = InputContract((1, 28, 28), CLASSES)


@pytest.fixture(scope="module")
def clean200(mnist) -> ImageSet:
    """200 MNIST digits, 20 per class: the size of a lab model's 5% clean set."""
    return clean_subset(mnist, 0.04, seed=0)


def _as_loaded(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, source: str = "crafted.npz") -> ImageSet:
    """Arrays as a data source hands them to validation: layout checked, values not."""
    return from_arrays(x, y, source=source, classes=CLASSES, checked=False)


def _arrays(data: ImageSet) -> tuple[np.ndarray, np.ndarray]:
    return data.x.numpy().copy(), data.y.numpy().copy()


def _failures(data: ImageSet, config: ValidationConfig = ValidationConfig()) -> tuple[list[str], str]:
    """(names of the failed checks, the error message)."""
    with pytest.raises(DataValidationError) as info:
        validate_clean_set(data, MNIST_CONTRACT, config)
    return [o.check for o in info.value.result.failures], str(info.value)


def test_a_200_image_mnist_clean_set_passes_every_expectation(clean200):
    result = validate_clean_set(clean200, MNIST_CONTRACT)
    assert result.success and len(result.outcomes) == 11
    assert result.class_counts == [20] * 10 and result.duplicate_share == 0.0
    record = json.loads(json.dumps(result.to_json()))
    assert record["status"] == "passed" and record["summary"] == "11/11 data expectations passed"
    assert {o["expectation"] for o in record["outcomes"]} >= {
        "expect_column_values_to_be_between", "expect_column_values_to_be_in_set",
        "expect_column_distinct_values_to_contain_set", "expect_column_proportion_of_unique_values_to_be_between",
    }  # fmt: skip


def test_every_loaded_image_is_checked_and_the_clean_subset_as_a_set(mnist, clean200):
    result = validate_clean_set(mnist, MNIST_CONTRACT, clean=clean200)
    assert (result.loaded_images, result.clean_images) == (5000, 200)
    assert len(result.samples) == 5000 and result.class_counts == [20] * 10


def test_a_label_outside_the_model_classes_fails_label_range(clean200):
    x, y = _arrays(clean200)
    y[7] = 10
    failed, message = _failures(_as_loaded(x, y))
    assert "label_range" in failed
    assert "expect_column_values_to_be_between(column='label', min_value=0, max_value=9) on samples" in message
    assert "index 7 (label=10)" in message


def test_normalised_pixels_below_zero_fail_pixel_min(clean200):
    x, y = _arrays(clean200)
    x = (x - 0.1307) / 0.3081  # MNIST normalisation applied outside the model
    failed, message = _failures(_as_loaded(x, y))
    assert failed == ["pixel_min", "pixel_max"]
    assert "expect_column_values_to_be_between(column='min', min_value=0)" in message
    assert "undo any normalisation" in message


def test_0_255_images_stored_as_floats_are_caught_with_advice_to_divide_by_255(tmp_path, clean200):
    x, y = _arrays(clean200)
    np.savez(tmp_path / "floats255.npz", x=np.round(x * 255).astype(np.float32), y=y)
    failed, message = _failures(read_images(str(tmp_path / "floats255.npz")))
    assert failed == ["pixel_max"]
    assert "expect_column_values_to_be_between(column='max', max_value=1) on samples: 200 of 200 rows fail" in message
    assert "look like 0-255 images stored as floats; divide them by 255" in message


def test_nan_and_infinite_pixels_fail_finite(clean200):
    x, y = _arrays(clean200)
    x[4, 0, 10, 10] = np.nan
    x[11, 0, 0, 0] = np.inf
    failed, message = _failures(_as_loaded(x, y))
    assert failed == ["finite"]  # min/max are taken over the finite pixels: no double report
    assert "expect_column_values_to_be_in_set(column='finite', value_set=[True])" in message
    assert "index 4 (finite=False), index 11 (finite=False)" in message


def test_images_of_another_size_fail_the_shape_expectations():
    digits = read_images("builtin:digits")  # 1 x 8 x 8
    failed, message = _failures(digits)
    assert failed == ["height", "width"]
    assert "expect_column_values_to_be_in_set(column='height', value_set=[28])" in message
    assert "the model takes 1x28x28 (C x H x W) images; these are 1x8x8" in message


def test_a_missing_class_fails_all_classes(clean200):
    keep = clean200.y != 3
    failed, message = _failures(_as_loaded(clean200.x[keep], clean200.y[keep]))
    assert "all_classes" in failed
    assert "expect_column_distinct_values_to_contain_set(column='label'" in message
    assert "{'missing': [3]}" in message


def test_a_class_with_fewer_images_than_the_minimum_fails_min_per_class(clean200):
    fours = torch.nonzero(clean200.y == 4).flatten()
    keep = torch.ones(len(clean200), dtype=torch.bool)
    keep[fours[1:]] = False  # one image of class 4 left
    failed, message = _failures(_as_loaded(clean200.x[keep], clean200.y[keep]))
    assert failed == ["min_per_class"]
    assert "expect_column_values_to_be_between(column='count', min_value=2) on classes: 1 of 10 rows fail: label 4 (count=1)" in message


def test_the_minimum_per_class_comes_from_the_config(clean200):
    failed, message = _failures(clean200, ValidationConfig(min_per_class=21))
    assert failed == ["min_per_class"] and "min_value=21" in message and "10 of 10 rows fail" in message


def test_a_class_above_the_share_limit_fails_max_class_share(clean200):
    x, y = _arrays(clean200)
    y[:130] = 0  # relabelled: class 0 now holds at least 65% of the set
    failed, message = _failures(_as_loaded(x, y))
    assert failed == ["max_class_share"]
    assert "expect_column_values_to_be_between(column='share', max_value=0.5) on classes: 1 of 10 rows fail: label 0 (share=" in message


def test_exact_duplicates_beyond_the_limit_fail_duplicates(clean200):
    x, y = _arrays(clean200)
    fives = np.flatnonzero(y == 5)
    x[fives[1:16]] = x[fives[0]]  # 15 copies of one digit: 7.5% of the set
    failed, message = _failures(_as_loaded(x, y))
    assert failed == ["duplicates"]
    assert "expect_column_proportion_of_unique_values_to_be_between(column='hash', min_value=0.95) on clean_set: observed 0.925" in message
    assert f"identical images at indices [{fives[:5].tolist()}]" in message


def test_a_few_duplicates_within_the_limit_pass(clean200):
    x, y = _arrays(clean200)
    x[1:6] = x[0]  # 2.5% copies, under the 5% default
    result = validate_clean_set(_as_loaded(x, y), MNIST_CONTRACT)
    assert result.success and result.duplicate_share == pytest.approx(0.025)


def test_every_failed_expectation_is_reported_at_once_and_exits_2(clean200):
    x, y = _arrays(clean200)
    y[0] = -1
    x[1, 0, 0, 0] = np.nan
    with pytest.raises(DataValidationError) as info:
        validate_clean_set(_as_loaded(x, y), MNIST_CONTRACT)
    assert {"label_range", "finite"} <= {o.check for o in info.value.result.failures}
    assert info.value.exit_code == ExitCode.ERROR
    assert info.value.result.to_json()["status"] == "failed"


def test_great_expectations_prints_and_logs_nothing(clean200, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    validate_clean_set(clean200, MNIST_CONTRACT)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no progress bars
    assert not [r for r in caplog.records if r.name.startswith("great_expectations")]
