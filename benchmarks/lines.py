"""One JSON line per result, for the probes (``rescan``, ``reerase``): to the terminal, and
appended to a file when one is given, so that a long probe keeps what it has done."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def emit(record: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(record)
    click.echo(text)
    if out:
        with out.open("a") as f:
            f.write(text + "\n")
