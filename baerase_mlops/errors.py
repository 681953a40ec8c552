"""Errors the user can act on, each tied to the exit code of DESIGN.md.

Every failure that is the user's to fix (a wrong path, data that do not fit the
model, a registry version that does not exist) is raised as a ``BaeraseError``
subclass with a message that names the problem; the CLI prints the message and
exits with ``exit_code``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

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
