"""Entry point of the MLflow project (see MLproject): one script, one mode per entry point.

MLflow jobs exit 0 when the job completed, whatever the verdict (it is in the run and the
tags); non-zero on error; 1 on a backdoor only with --fail-on-backdoor true.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run from a checkout (mlflow run copies none of the package into its environment).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402

from baerase_mlops.errors import BaeraseError, ExitCode  # noqa: E402


def _optional(value: str) -> str | None:
    return value.strip() or None


def _floats(value: str, name: str) -> tuple[float, ...] | None:
    from baerase_mlops.errors import UsageError

    value = value.strip()
    try:
        return tuple(float(v) for v in value.split(",")) if value else None
    except ValueError:
        raise UsageError(f"{name} must be comma-separated numbers, got {value!r}") from None


@click.command()
@click.option("--mode", type=click.Choice(["main", "scan", "erase"]), default="main")
@click.option("--model-uri", required=True)
@click.option("--data-uri", default="")
@click.option("--threshold", type=float, default=2.0)
@click.option("--clean-fraction", type=float, default=0.0, help="0: 5% of a lab model's training split, else all of the data.")
@click.option("--target-asr", type=float, default=0.01)
@click.option("--max-accuracy-drop", type=float, default=0.02)
@click.option("--method", type=click.Choice(["baerase", "neural_cleanse"]), default="baerase")
@click.option("--recovery-steps", type=float, default=400)
@click.option("--unlearning", type=click.Choice(["baerase", "nc_unlearning", "fine_tuning"]), default="baerase")
@click.option("--device", default="auto")
@click.option("--seed", type=float, default=0)
@click.option("--register", type=bool, default=True)
@click.option("--force", type=bool, default=False)
@click.option("--fail-on-backdoor", type=bool, default=False)
@click.option("--trust-pickle", type=bool, default=False)
@click.option("--mean", default="")
@click.option("--std", default="")
@click.option("--registered-model-name", default="")
@click.option("--skip-validation", type=bool, default=False)
def main(mode, model_uri, data_uri, threshold, clean_fraction, target_asr, max_accuracy_drop, method, recovery_steps, unlearning, device, seed, register, force, fail_on_backdoor, trust_pickle, mean, std, registered_model_name, skip_validation) -> None:
    from baerase_mlops.registry.job import JobSettings, run_job
    from baerase_mlops.registry.report import print_outcome
    from baerase_mlops.report.console import progress_bars

    try:
        settings = JobSettings(
            model_uri=model_uri, data_uri=_optional(data_uri), threshold=threshold, clean_fraction=clean_fraction or None,
            target_asr=target_asr, max_accuracy_drop=max_accuracy_drop, method=method, recovery_steps=int(recovery_steps), unlearning=unlearning, device=device,
            seed=int(seed), register=register, force=force, trust_pickle=trust_pickle, mean=_floats(mean, "mean"), std=_floats(std, "std"),
            registered_model_name=_optional(registered_model_name), skip_validation=skip_validation,
        )  # fmt: skip
        with progress_bars() as progress:
            outcome = run_job(settings, mode, progress)
    except BaeraseError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    print_outcome(outcome)
    sys.exit(ExitCode.BACKDOOR if fail_on_backdoor and outcome.backdoor else ExitCode.PASSED)


if __name__ == "__main__":
    main()
