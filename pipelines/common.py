"""What the MLflow project's entry-point scripts share: the job settings' options (MLproject
parameters arrive as strings; an empty one means "not given") and the exit-code mapping."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from baerase_mlops.errors import BaeraseError, UsageError


def optional(value: str) -> str | None:
    return value.strip() or None


def floats(value: str, name: str) -> tuple[float, ...] | None:
    value = value.strip()
    try:
        return tuple(float(v) for v in value.split(",")) if value else None
    except ValueError:
        raise UsageError(f"{name} must be comma-separated numbers, got {value!r}") from None


def settings_options(f: Callable) -> Callable:
    """The MLproject parameters that make up JobSettings (besides the model URI)."""
    for decorator in reversed([
        click.option("--data-uri", default=""),
        click.option("--threshold", type=float, default=2.0),
        click.option("--clean-fraction", type=float, default=0.0, help="0: 5% of a lab model's training split, else all of the data."),
        click.option("--target-asr", type=float, default=0.01),
        click.option("--max-accuracy-drop", type=float, default=0.02),
        click.option("--method", type=click.Choice(["baerase", "neural_cleanse"]), default="baerase"),
        click.option("--recovery-steps", type=float, default=400),
        click.option("--unlearning", type=click.Choice(["baerase", "nc_unlearning", "fine_tuning"]), default="baerase"),
        click.option("--device", default="auto"),
        click.option("--seed", type=float, default=0),
        click.option("--trust-pickle", type=bool, default=False),
        click.option("--mean", default=""),
        click.option("--std", default=""),
        click.option("--skip-validation", type=bool, default=False),
    ]):  # fmt: skip
        f = decorator(f)
    return f


def job_settings(model_uri: str, options: dict, **extra):
    """JobSettings from settings_options' values (and any further fields in ``extra``)."""
    from baerase_mlops.registry.job import JobSettings

    return JobSettings(
        model_uri=model_uri, data_uri=optional(options["data_uri"]), threshold=options["threshold"], clean_fraction=options["clean_fraction"] or None,
        target_asr=options["target_asr"], max_accuracy_drop=options["max_accuracy_drop"], method=options["method"],
        recovery_steps=int(options["recovery_steps"]), unlearning=options["unlearning"], device=options["device"], seed=int(options["seed"]),
        trust_pickle=options["trust_pickle"], mean=floats(options["mean"], "mean"), std=floats(options["std"], "std"),
        skip_validation=options["skip_validation"], **extra,
    )  # fmt: skip


def run_or_exit(work: Callable[[], int]) -> None:
    """Run the entry point's work; a user-facing error prints its message and exits with its code.
    Under `mlflow run` (which exits 1 on any failure) the code and error also go on the run as
    tags ``baerase.exit_code`` and ``baerase.error``."""
    from baerase_mlops.registry.tracking import bounded_http_retries, record_exit

    bounded_http_retries()
    try:
        code = work()
    except BaeraseError as exc:
        click.echo(f"error: {exc}", err=True)
        record_exit(exc.exit_code, str(exc))
        sys.exit(exc.exit_code)
    record_exit(code)
    sys.exit(code)
