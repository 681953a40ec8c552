"""Errors the user can act on, each tied to the exit code of DESIGN.md, and the boundary that
turns any failure into an exit code and one line.

Every failure that is the user's to fix (a wrong path, data that do not fit the model, a
registry version that does not exist) is raised as a ``BaeraseError`` subclass with a message
that names the problem. ``at_boundary`` prints that message and returns its exit code; it also
reads the core's ``ValueError`` as a usage error and an MLflow failure as a registry error. No
failure ever exits 1, which means "backdoor found" (a crash of Python itself would).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``baerase`` CLI (DESIGN.md, "Contracts")."""

    PASSED = 0
    BACKDOOR = 1  # backdoor found, or the gate refused
    ERROR = 2
    NOTHING_TO_SCAN = 3
    USAGE = 4


class BaeraseError(Exception):
    """A failure with a message meant for the user."""

    exit_code: ExitCode = ExitCode.ERROR


class DataError(BaeraseError):
    """The clean reference data cannot be read or does not fit the contract."""


class ModelError(BaeraseError):
    """The model cannot be loaded, or is not an image classifier we can examine."""


class RegistryError(BaeraseError):
    """The registry, a URI or a version is wrong or unreachable."""


class UsageError(BaeraseError):
    """The command line asks for something inconsistent."""

    exit_code = ExitCode.USAGE


class NothingToScanError(BaeraseError):
    """The selection matched no model version."""

    exit_code = ExitCode.NOTHING_TO_SCAN


def say(message: str) -> None:
    """One line on stderr."""
    print(message, file=sys.stderr, flush=True)


def at_boundary(work: Callable[[], int | None], on_error: Callable[[int, str], None] | None = None) -> int:
    """Run ``work`` (an entry point's whole job) and return its exit code; a failure prints one
    line naming the problem and returns 2 (error) or 4 (usage), never 1. ``on_error`` also
    gets the code and the line (an MLflow job records them on its run)."""
    try:
        return int(work() or 0)
    except Exception as exc:  # noqa: BLE001 - the boundary: no failure may exit 1 (Python's own code for a crash)
        code, message = _classify(exc)
        say(message)
        if on_error is not None:
            on_error(code, message)
        return code


def _classify(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line for a failure."""
    if isinstance(exc, BaeraseError):
        return exc.exit_code, f"error: {exc}"
    if isinstance(exc, ValueError):  # the core refusing a value it was given: the user's to fix
        return ExitCode.USAGE, f"error: {exc}"
    if isinstance(exc, OSError):  # a file that cannot be read or written, a connection refused
        return ExitCode.ERROR, f"error: {exc}"
    message = _mlflow_message(exc)
    if message is not None:
        return ExitCode.ERROR, f"error: registry error: {message}"
    traceback.print_exception(exc)  # a bug: its traceback is what a report needs
    return ExitCode.ERROR, f"error: internal error ({type(exc).__name__}); please report it with the traceback above"


def _mlflow_message(exc: Exception) -> str | None:
    """The message of an ``MlflowException`` (without importing MLflow when it was never loaded)."""
    mlflow_exceptions = sys.modules.get("mlflow.exceptions")
    if mlflow_exceptions is not None and isinstance(exc, mlflow_exceptions.MlflowException):
        return str(exc.message)
    return None
