"""What the MLflow project's entry-point scripts share: their options, generated from the one
settings schema (config.SETTINGS, config.MLPROJECT) with the MLproject's spelling (``--<name>``,
every value a string as MLflow passes it, an empty one meaning "not given"), and the error
boundary of the ``baerase`` CLI (one line, exit 2 or 4, never a traceback).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from baerase_mlops.cli import run_command, setting_options
from baerase_mlops.config import MLPROJECT


def entry_point_options(entry_point: str) -> Callable:
    """The options of MLproject entry point ``entry_point``: exactly its parameters."""
    names, _ = MLPROJECT[entry_point]
    return setting_options(names, mlproject=True)


def job_settings(options: dict, **fields):
    """JobSettings from an entry point's options (its non-job options are ignored)."""
    from baerase_mlops.registry.job import JobSettings

    return JobSettings.from_options(options, **fields)


def run(command: click.Command) -> None:
    """Run an entry point's click command behind the error boundary and exit with its code.
    Under `mlflow run` (which exits 1 on any failure) the code and the error line also go on
    the run as tags ``baerase.exit_code`` and ``baerase.error``; MLflow's HTTP retries are
    bounded first, so a dead tracking server fails the job in seconds, not minutes."""
    from baerase_mlops.registry.tracking import bounded_http_retries, record_exit

    bounded_http_retries()
    failure: list[tuple[int, str]] = []
    code = run_command(command, prog_name=f"python {sys.argv[0]}", on_error=lambda c, m: failure.append((c, m)))
    record_exit(code, failure[-1][1].removeprefix("error: ") if failure else None)
    sys.exit(code)
