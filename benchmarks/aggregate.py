"""Group the raw runs into table cells: mean with min-max over seeds, and counts."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks.cases import CASES

Run = dict[str, Any]


def ok_runs(runs: Iterable[Run]) -> list[Run]:
    """The runs that completed (failed ones are listed separately, never averaged)."""
    return [r for r in runs if not r.get("error")]


def group(runs: Iterable[Run], *keys: str) -> dict[tuple, list[Run]]:
    """Runs grouped by the values of ``keys``, in the order the datasets and CASES were run."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    case_order = list(CASES)
    return dict(sorted(groups.items(), key=lambda kv: tuple(case_order.index(v) if v in case_order else 0 for v in kv[0])))


def values(runs: Iterable[Run], get: Callable[[Run], float | None]) -> list[float]:
    out = []
    for r in runs:
        v = get(r)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            out.append(float(v))
    return out


def spread(vals: list[float], fmt: Callable[[float], str]) -> str:
    """``mean (min-max)``; just the value for one run; an em dash for none."""
    if not vals:
        return "—"
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return fmt(mean)
    return f"{fmt(mean)} ({fmt(min(vals))}–{fmt(max(vals))})"


def pct(v: float) -> str:
    return f"{100 * v:.1f}"


def pct2(v: float) -> str:
    """Two decimals: ASR left after erasure and accuracy drops are often under one point."""
    return f"{100 * v:.2f}"


def secs(v: float) -> str:
    return f"{v:.1f}"


def mib(v: float) -> str:
    return f"{v:.0f}"


def num(v: float) -> str:
    return f"{v:.2f}"


def count(runs: list[Run], test: Callable[[Run], bool | None]) -> str:
    hits = sum(1 for r in runs if test(r))
    return f"{hits}/{len(runs)}"


def mean(vals: list[float]) -> float | None:
    return sum(vals) / len(vals) if vals else None
