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

from baerase_mlops.errors import ExitCode  # noqa: E402
from pipelines.common import job_settings, optional, run_or_exit, settings_options  # noqa: E402


@click.command()
@click.option("--mode", type=click.Choice(["main", "scan", "erase"]), default="main")
@click.option("--model-uri", required=True)
@settings_options
@click.option("--register", type=bool, default=True)
@click.option("--force", type=bool, default=False)
@click.option("--fail-on-backdoor", type=bool, default=False)
@click.option("--registered-model-name", default="")
def main(mode, model_uri, register, force, fail_on_backdoor, registered_model_name, **options) -> None:
    from baerase_mlops.registry.job import run_job
    from baerase_mlops.registry.report import print_outcome
    from baerase_mlops.report.console import progress_bars

    def work() -> int:
        settings = job_settings(model_uri, options, register=register, force=force, registered_model_name=optional(registered_model_name))
        with progress_bars() as progress:
            outcome = run_job(settings, mode, progress)
        print_outcome(outcome)
        return ExitCode.BACKDOOR if fail_on_backdoor and outcome.backdoor else ExitCode.PASSED

    run_or_exit(work)


if __name__ == "__main__":
    main()
