"""Validate the defender's clean set with Great Expectations before a scan uses it.

A wrong pixel range (0-255 where the model takes 0-1 is the most common cause of false
results that Neural Cleanse users report), a wrong shape, missing classes or a lopsided
label distribution must stop the job with a message that says what to fix.

The expectations run on three small tables built from the images *as loaded*, before the
value checks of :func:`.imageset.check_values` would stop at the first problem:

* ``samples``: one row per loaded image (``index`` = its position in the source) with its
  label, min/max/mean over its finite pixels, whether all are finite, C/H/W and a content
  hash. Per-image expectations: label in [0, classes), min/max within the model's input
  range, no NaN/inf, C x H x W equal to the model's.
* ``clean_set``: the same for the images the scan uses (all of them, or a lab model's
  clean subset). Expectations: every class present, exact duplicates within a share.
* ``classes``: one row per model class with its count and share of the clean set.
  Expectations: at least ``min_per_class`` images, at most ``max_class_share``.

Great Expectations runs in an ephemeral context (nothing written to disk) with its
progress bars and logging kept out of the terminal.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from baerase_mlops.config import ValidationConfig
from baerase_mlops.contract import InputContract
from baerase_mlops.data.imageset import ImageSet, looks_like_0_255
from baerase_mlops.errors import DataError
from baerase_mlops.jsonable import json_safe

SAMPLES, CLEAN_SET, CLASSES = "samples", "clean_set", "classes"
TABLE_KEYS = {SAMPLES: "index", CLEAN_SET: "index", CLASSES: "label"}  # the column that names an offending row
EXAMPLES = 10  # offending rows kept per expectation in the result
SHOWN = 5  # of which the error message shows these


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, in plain values."""

    check: str  # our short name, e.g. "pixel_max"
    expectation: str  # Great Expectations' name, e.g. "expect_column_values_to_be_between"
    table: str  # SAMPLES, CLEAN_SET or CLASSES
    kwargs: dict[str, Any]  # column and bounds / value set
    success: bool
    observed: Any  # the aggregate value, or the number of offending rows
    rows: int | None  # rows checked (per-row expectations)
    unexpected: list[dict[str, Any]]  # the first offending rows (key column and value)
    hint: str | None = None  # what to do about a failure

    def describe(self) -> str:
        """One line for the error message: the expectation, what was found, the fix."""
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.kwargs.items())
        line = f"{self.expectation}({args}) on {self.table}: {self._finding()}"
        return f"{line}; {self.hint}" if self.hint else line

    def _finding(self) -> str:
        if not self.unexpected:
            return f"observed {_short(self.observed)}"
        key, column = TABLE_KEYS[self.table], self.kwargs["column"]
        first = ", ".join(f"{key} {r[key]} ({column}={_short(r[column])})" for r in self.unexpected[:SHOWN])
        more = ", ..." if self.observed > SHOWN else ""
        return f"{self.observed} of {self.rows} rows fail: {first}{more}"


@dataclass(frozen=True)
class ValidationResult:
    """The validation of a clean set: what was checked, on what, and each outcome.

    ``samples`` is the per-image summary of the loaded images (not part of the JSON; log
    it as a table, e.g. ``mlflow.log_table(result.samples, "validation_samples.json")``,
    where a person may want to look up an index).
    """

    source: str
    input_shape: tuple[int, int, int]
    num_classes: int
    value_range: tuple[float, float]
    loaded_images: int
    clean_images: int
    class_counts: list[int]  # in the clean set, per model class
    duplicate_share: float  # of the clean set: images that exactly copy another one
    config: ValidationConfig
    outcomes: tuple[ExpectationOutcome, ...]
    engine: str  # "great_expectations <version>"
    samples: pd.DataFrame = field(repr=False, compare=False)

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> str:
        passed = sum(o.success for o in self.outcomes)
        return f"{passed}/{len(self.outcomes)} data expectations passed"

    def error_message(self) -> str:
        lines = [
            f"{self.source}: the clean set failed {len(self.failures)} of {len(self.outcomes)} data expectations "
            f"({self.engine}):"
        ]
        return "\n".join(lines + [f"  - {o.describe()}" for o in self.failures])

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: status, what was validated, the limits, and every outcome."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"}
        data.update(config=asdict(self.config), outcomes=[asdict(o) for o in self.outcomes])
        data["status"] = "passed" if self.success else "failed"
        data["summary"] = self.summary()
        return json_safe(data)


class DataValidationError(DataError):
    """The clean set failed validation; ``result`` holds every outcome (to log it)."""

    def __init__(self, result: ValidationResult) -> None:
        super().__init__(result.error_message())
        self.result = result


def validate_clean_set(
    loaded: ImageSet,
    contract: InputContract,
    config: ValidationConfig = ValidationConfig(),
    clean: ImageSet | None = None,
) -> ValidationResult:
    """Validate ``loaded`` (the images as read, values unchecked) image by image, and
    ``clean`` (the part the scan uses; default all of ``loaded``) as a set, against the
    model's ``contract``. Raises :class:`DataValidationError` naming every failed
    expectation and its offending values; returns the result when all pass."""
    clean = loaded if clean is None else clean
    samples = summarise_images(loaded)
    clean_rows = samples if clean is loaded else summarise_images(clean)
    classes = class_table(clean, contract)
    tables = {SAMPLES: samples, CLEAN_SET: clean_rows, CLASSES: classes}
    with quiet_great_expectations():
        checks = build_checks(contract, config, samples, clean_rows)
        outcomes, engine = run_great_expectations(tables, checks)
    result = ValidationResult(
        source=loaded.source,
        input_shape=tuple(contract.input_shape),
        num_classes=contract.num_classes,
        value_range=tuple(contract.value_range),
        loaded_images=len(loaded),
        clean_images=len(clean),
        class_counts=classes["count"].tolist(),
        duplicate_share=duplicate_share(clean_rows),
        config=config,
        outcomes=outcomes,
        engine=engine,
        samples=samples,
    )
    if not result.success:
        raise DataValidationError(result)
    return result


def summarise_images(data: ImageSet) -> pd.DataFrame:
    """One row per image: index, label, min/max/mean over its finite pixels, whether all
    are finite, channels/height/width and a content hash (equal images, equal hash)."""
    x = np.ascontiguousarray(data.x.numpy(), dtype=np.float32)
    flat = x.reshape(len(x), -1)
    finite = np.isfinite(flat)
    values = np.where(finite, flat, np.nan)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # an image with no finite pixel
        lo, hi, mean = np.nanmin(values, axis=1), np.nanmax(values, axis=1), np.nanmean(values, axis=1)
    channels, height, width = x.shape[1:]
    return pd.DataFrame(
        {
            "index": np.arange(len(x)),
            "label": data.y.numpy().astype(np.int64),
            "min": lo.astype(np.float64),
            "max": hi.astype(np.float64),
            "mean": mean.astype(np.float64),
            "finite": finite.all(axis=1),
            "channels": channels,
            "height": height,
            "width": width,
            "hash": [hashlib.blake2b(row.tobytes(), digest_size=8).hexdigest() for row in flat],
        }
    )


def class_table(clean: ImageSet, contract: InputContract) -> pd.DataFrame:
    """One row per model class: label, name, count and share in the clean set."""
    labels = clean.y.numpy()
    counts = np.bincount(labels[(labels >= 0) & (labels < contract.num_classes)], minlength=contract.num_classes)
    return pd.DataFrame(
        {
            "label": np.arange(contract.num_classes),
            "name": list(contract.classes),
            "count": counts,
            "share": counts / max(len(labels), 1),
        }
    )


def duplicate_share(rows: pd.DataFrame) -> float:
    """Share of the rows whose image exactly copies an earlier row's."""
    return float(1.0 - rows["hash"].nunique() / len(rows)) if len(rows) else 0.0


@dataclass(frozen=True)
class Check:
    """An expectation on one table, with our name for it and the advice on failure."""

    name: str
    table: str
    expectation: Any  # a great_expectations.expectations.Expectation, tagged meta={"check": name}
    hint: Callable[[dict[str, Any]], str]


def build_checks(
    contract: InputContract, config: ValidationConfig, samples: pd.DataFrame, clean_rows: pd.DataFrame
) -> list[Check]:
    """The expectations, in the order they are reported."""
    import great_expectations.expectations as gxe

    def check(name: str, table: str, expectation: type, hint: Callable[[dict[str, Any]], str], **kwargs: Any) -> Check:
        return Check(name, table, expectation(meta={"check": name}, **kwargs), hint)

    lo, hi = (float(v) for v in contract.value_range)
    c, h, w = (int(v) for v in contract.input_shape)
    n = contract.num_classes
    shape = f"the model takes {c}x{h}x{w} (C x H x W) images; these are {_shapes(samples)}"
    normalised = (
        f"the model takes pixel values in [{lo:g}, {hi:g}]; "
        "undo any normalisation (give the model's --mean/--std instead)"
    )
    between, in_set = gxe.ExpectColumnValuesToBeBetween, gxe.ExpectColumnValuesToBeInSet
    return [
        check(
            "label_range",
            SAMPLES,
            between,
            lambda r: f"the model has {n} classes: labels must lie in [0, {n})",
            column="label",
            min_value=0,
            max_value=n - 1,
        ),
        check("pixel_min", SAMPLES, between, lambda r: normalised, column="min", min_value=lo),
        check("pixel_max", SAMPLES, between, lambda r: _range_hint(samples, normalised), column="max", max_value=hi),
        check(
            "finite",
            SAMPLES,
            in_set,
            lambda r: "these images hold NaN or infinite pixels: fix or drop them",
            column="finite",
            value_set=[True],
        ),
        check("channels", SAMPLES, in_set, lambda r: shape, column="channels", value_set=[c]),
        check("height", SAMPLES, in_set, lambda r: shape, column="height", value_set=[h]),
        check("width", SAMPLES, in_set, lambda r: shape, column="width", value_set=[w]),
        check(
            "all_classes",
            CLEAN_SET,
            gxe.ExpectColumnDistinctValuesToContainSet,
            lambda r: "the scan needs clean images of every class",
            column="label",
            value_set=list(range(n)),
        ),
        check(
            "duplicates",
            CLEAN_SET,
            gxe.ExpectColumnProportionOfUniqueValuesToBeBetween,
            lambda r: _duplicate_hint(clean_rows, samples, config.max_duplicate_share),
            column="hash",
            min_value=1.0 - config.max_duplicate_share,
        ),
        check(
            "min_per_class",
            CLASSES,
            between,
            lambda r: (
                f"every class needs at least {config.min_per_class} clean images (ValidationConfig.min_per_class)"
            ),
            column="count",
            min_value=config.min_per_class,
        ),
        check(
            "max_class_share",
            CLASSES,
            between,
            lambda r: (
                f"no class may hold more than {config.max_class_share:.0%} of the clean set "
                "(ValidationConfig.max_class_share)"
            ),
            column="share",
            max_value=config.max_class_share,
        ),
    ]


def run_great_expectations(
    tables: dict[str, pd.DataFrame], checks: list[Check]
) -> tuple[tuple[ExpectationOutcome, ...], str]:
    """Validate each table against its checks in an ephemeral context (call within
    :func:`quiet_great_expectations`); outcomes in ``checks`` order, and the engine."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("baerase")
    results: dict[str, Any] = {}
    for table, frame in tables.items():
        suite = gx.ExpectationSuite(name=f"baerase_{table}")
        for check in (c for c in checks if c.table == table):
            suite.add_expectation(check.expectation)
        if not suite.expectations:
            continue
        batch = (
            source.add_dataframe_asset(table)
            .add_batch_definition_whole_dataframe("all")
            .get_batch(batch_parameters={"dataframe": frame})
        )
        fmt = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": EXAMPLES,
            "unexpected_index_column_names": [TABLE_KEYS[table]],
        }
        for r in batch.validate(suite, result_format=fmt).results:
            results[r.expectation_config.meta["check"]] = r
    return tuple(_outcome(check, results[check.name]) for check in checks), f"great_expectations {gx.__version__}"


@contextmanager
def quiet_great_expectations() -> Iterator[None]:
    """Keep Great Expectations' logging and warnings out of the user's terminal (when the
    application logs at INFO, GE reports every temporary folder it makes); levels are
    restored afterwards. Import GE within this block: its import logs too."""
    saved: dict[str, int] = {}

    def silence(name: str) -> None:
        logger = logging.getLogger(name)
        saved.setdefault(name, logger.level)
        logger.setLevel(logging.ERROR)

    silence("great_expectations")  # covers the modules that leave their level unset
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import great_expectations  # noqa: F401

            # some GE modules set their own logger to INFO, which the parent cannot override
            for name, logger in list(logging.root.manager.loggerDict.items()):
                if name.startswith("great_expectations.") and isinstance(logger, logging.Logger) and logger.level:
                    silence(name)
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _outcome(check: Check, result: Any) -> ExpectationOutcome:
    if result.exception_info.get("raised_exception"):  # a bug on our side, not a data problem
        raise RuntimeError(
            f"Great Expectations could not evaluate {check.name}: {result.exception_info.get('exception_message')}"
        )
    details = result.result
    kwargs = {k: v for k, v in result.expectation_config.kwargs.items() if k not in ("batch_id",)}
    mapped = "unexpected_count" in details
    observed = details.get("unexpected_count") if mapped else details.get("observed_value")
    if observed is None and "partial_missing_list" in details:  # a value set: GE reports what is missing
        observed = {"missing": details["partial_missing_list"]}
    unexpected = [_plain(row) for row in details.get("partial_unexpected_index_list", [])[:EXAMPLES]] if mapped else []
    return ExpectationOutcome(
        check=check.name,
        expectation=result.expectation_config.type,
        table=check.table,
        kwargs=_plain(kwargs),
        success=bool(result.success),
        observed=_plain(observed),
        rows=details.get("element_count") if mapped else None,
        unexpected=unexpected,
        hint=None if result.success else check.hint(details),
    )


def _range_hint(samples: pd.DataFrame, otherwise: str) -> str:
    top, bottom = float(samples["max"].max()), float(samples["min"].min())
    if looks_like_0_255(bottom, top):
        return (
            f"pixel values reach {top:g}: these look like 0-255 images stored as floats; "
            "divide them by 255 (or store uint8)"
        )
    return otherwise


def _duplicate_hint(clean_rows: pd.DataFrame, samples: pd.DataFrame, limit: float) -> str:
    copied = clean_rows["hash"][clean_rows["hash"].duplicated()].unique()[:3]
    groups = [samples.loc[samples["hash"] == h, "index"].tolist()[:5] for h in copied]
    return (
        f"{duplicate_share(clean_rows):.1%} of the clean images copy another (limit {limit:.0%}); identical images at "
        f"indices {groups}"
    )


def _shapes(samples: pd.DataFrame) -> str:
    found = samples[["channels", "height", "width"]].drop_duplicates().itertuples(index=False)
    return ", ".join(f"{c}x{h}x{w}" for c, h, w in found)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 12:
        return f"[{_short(value[0])} .. {_short(value[-1])}]"
    return repr(value) if isinstance(value, str) else str(value)


def _plain(value: Any) -> Any:
    """numpy scalars and containers as plain Python values (for JSON and messages)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
