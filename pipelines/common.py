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
    """Run an entry point's click command behind the error boundary and exit with its code."""
    sys.exit(run_command(command, prog_name=f"python {sys.argv[0]}"))
