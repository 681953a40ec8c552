"""What a person sees in the terminal: progress bars and tables (rich), on stderr/stdout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from baerase_mlops.core.runtime import Progress as ProgressCallback

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


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
