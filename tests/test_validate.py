"""Clean-set validation with Great Expectations: a good MNIST clean set passes, and each
defect a defender's data can have fails its own expectation, named in the error with the
offending values. Real digits only (builtin:mnist, builtin:digits), defects crafted on top."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from baerase_mlops.cli import main
from baerase_mlops.config import ValidationConfig
from baerase_mlops.core.contract import InputContract
from baerase_mlops.data import ImageSet, clean_subset, from_arrays, load_images
from baerase_mlops.data.sources import read_images
from baerase_mlops.data.validate import DataValidationError, validate_clean_set
from baerase_mlops.errors import DataError, ExitCode

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
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_distinct_values_to_contain_set",
        "expect_column_proportion_of_unique_values_to_be_between",
    }


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


def test_colour_images_for_a_grayscale_model_fail_the_channels_expectation(clean200):
    x, y = _arrays(clean200)
    failed, message = _failures(_as_loaded(np.repeat(x, 3, axis=1), y))
    assert failed == ["channels"]
    assert "expect_column_values_to_be_in_set(column='channels', value_set=[1])" in message
    assert "these are 3x28x28" in message


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
    assert (
        "expect_column_values_to_be_between(column='count', min_value=2) on classes: 1 of 10 rows fail: label 4 "
        "(count=1)" in message
    )


def test_the_minimum_per_class_comes_from_the_config(clean200):
    failed, message = _failures(clean200, ValidationConfig(min_per_class=21))
    assert failed == ["min_per_class"] and "min_value=21" in message and "10 of 10 rows fail" in message


def test_a_class_above_the_share_limit_fails_max_class_share(clean200):
    x, y = _arrays(clean200)
    y[:130] = 0  # relabelled: class 0 now holds at least 65% of the set
    failed, message = _failures(_as_loaded(x, y))
    assert failed == ["max_class_share"]
    assert (
        "expect_column_values_to_be_between(column='share', max_value=0.5) on classes: 1 of 10 rows fail: label 0 "
        "(share=" in message
    )


def test_exact_duplicates_beyond_the_limit_fail_duplicates(clean200):
    x, y = _arrays(clean200)
    fives = np.flatnonzero(y == 5)
    x[fives[1:16]] = x[fives[0]]  # 15 copies of one digit: 7.5% of the set
    failed, message = _failures(_as_loaded(x, y))
    assert failed == ["duplicates"]
    assert (
        "expect_column_proportion_of_unique_values_to_be_between(column='hash', min_value=0.95) on clean_set: "
        "observed 0.925" in message
    )
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


# --- wired into the jobs and the CLI -------------------------------------------------------


@pytest.fixture
def lopsided_npz(tmp_path, clean200):
    """MNIST digits with 130 of 200 labelled 0: fails only max_class_share."""
    x, y = _arrays(clean200)
    y[:130] = 0
    np.savez(tmp_path / "lopsided.npz", x=x, y=y)
    return str(tmp_path / "lopsided.npz")


def test_a_lab_model_clean_set_is_validated_against_the_model_contract(untrained_lab_model):
    from baerase_mlops.engine import load_local_model, prepare_clean_data

    data = prepare_clean_data(None, load_local_model(untrained_lab_model))
    assert data.validation is not None and data.validation.success
    assert (data.validation.loaded_images, data.validation.clean_images) == (5000, 200)
    assert data.validation_record()["status"] == "passed"
    assert "validation: 11/11 data expectations passed" in data.description


def test_skip_validation_lets_a_set_through_and_is_recorded(untrained_lab_model, lopsided_npz):
    from baerase_mlops.engine import load_local_model, prepare_clean_data

    mut = load_local_model(untrained_lab_model)
    with pytest.raises(DataValidationError, match="max_value=0.5"):
        prepare_clean_data(lopsided_npz, mut)
    data = prepare_clean_data(lopsided_npz, mut, skip_validation=True)
    assert data.validation is None and data.validation_record() == {"status": "skipped"}
    assert data.description.endswith("validation skipped")


def test_skip_validation_still_refuses_pixels_outside_the_contract(untrained_lab_model, tmp_path, clean200):
    from baerase_mlops.engine import load_local_model, prepare_clean_data

    x, y = _arrays(clean200)
    np.savez(tmp_path / "floats255.npz", x=x * 255, y=y)
    with pytest.raises(DataError, match="divide by 255"):
        prepare_clean_data(str(tmp_path / "floats255.npz"), load_local_model(untrained_lab_model), skip_validation=True)


def test_cli_scan_refuses_a_bad_clean_set_with_exit_2_naming_the_expectation(
    untrained_lab_model, lopsided_npz, tmp_path
):
    result = CliRunner().invoke(
        main, ["scan", "--model", str(untrained_lab_model), "--data", lopsided_npz, "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2, result.output
    assert "failed 1 of 11 data expectations" in result.output
    assert "expect_column_values_to_be_between(column='share', max_value=0.5)" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("flag", "status"), [([], "passed"), (["--skip-validation"], "skipped")])
def test_cli_scan_records_the_validation_in_the_report(untrained_lab_model, tmp_path, flag, status):
    args = [
        "scan",
        "--model",
        str(untrained_lab_model),
        "--out",
        str(tmp_path / "r"),
        "--method",
        "neural_cleanse",
        "--steps",
        "10",
        "--quiet",
    ]
    result = CliRunner().invoke(main, args + flag)
    assert result.exit_code in (0, 1), result.output
    validation = json.loads((tmp_path / "r" / "verdict.json").read_text())["clean_images"]["validation"]
    assert validation["status"] == status
    if status == "passed":
        assert validation["clean_images"] == 200 and len(validation["outcomes"]) == 11


@pytest.mark.slow
def test_cli_erase_accepts_skip_validation_and_records_it(untrained_lab_model, tmp_path):
    args = [
        "erase",
        "--model",
        str(untrained_lab_model),
        "--out",
        str(tmp_path / "clean.pt"),
        "--method",
        "neural_cleanse",
        "--steps",
        "10",
        "--quiet",
        "--skip-validation",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (0, 1), result.output
    verdict = json.loads((tmp_path / "clean_report" / "verdict.json").read_text())
    assert verdict["clean_images"]["validation"] == {"status": "skipped"}


def test_load_images_keeps_refusing_bad_values_for_every_other_caller(tmp_path, clean200):
    x, y = _arrays(clean200)
    np.savez(tmp_path / "floats255.npz", x=x * 255, y=y)
    with pytest.raises(DataError, match="divide by 255"):
        load_images(str(tmp_path / "floats255.npz"))
