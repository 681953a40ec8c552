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
from pipelines.common import entry_point_options, job_settings, run  # noqa: E402

MODES = ("main", "scan", "erase")


@click.command()
@click.option("--mode", type=click.Choice(MODES), default="main")
@entry_point_options("main")  # the scan and erase entry points pass a subset of main's parameters
def main(mode: str, fail_on_backdoor: bool, **options) -> int:
    from baerase_mlops.registry.job import run_job
    from baerase_mlops.registry.report import print_outcome
    from baerase_mlops.report.console import progress_bars

    settings = job_settings(options)
    with progress_bars() as progress:
        outcome = run_job(settings, mode, progress)
    print_outcome(outcome)
    return ExitCode.BACKDOOR if fail_on_backdoor and outcome.backdoor else ExitCode.PASSED


if __name__ == "__main__":
    run(main)
