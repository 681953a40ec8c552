"""What a person sees in the terminal: progress bars and tables (rich), on stderr/stdout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:  # a type only: the console never needs torch (a refused job never imports it)
    from baerase_mlops.core.runtime import Progress as ProgressCallback

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)
REPORT_WIDTH = 160  # of a table written to a file or a pipe


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[ProgressCallback]:
    """A progress callback that draws one bar per task name on stderr."""
    if not enabled:
        yield lambda what, done, total: None
        return
    bars = Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
    )
    tasks: dict[str, int] = {}

    def update(what: str, done: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = bars.add_task(what, total=total)
        bars.update(tasks[what], completed=done, total=total)

    with bars:
        yield update


def key_value_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def write_rendered(rendered, output=None) -> None:
    """A rich renderable or text, to stdout or to the file ``output``."""
    if output is None:
        if isinstance(rendered, str):
            stdout.out(rendered, end="", highlight=False)
        elif stdout.is_terminal:
            stdout.print(rendered)
        else:  # a CI log or a pipe: no terminal width to fit, so do not squeeze the table
            Console(width=max(stdout.width, REPORT_WIDTH), soft_wrap=True).print(rendered)
        return
    with open(output, "w") as handle:
        if isinstance(rendered, str):
            handle.write(rendered)
        else:
            Console(file=handle, width=REPORT_WIDTH, soft_wrap=True).print(rendered)
