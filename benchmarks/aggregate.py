"""Group the raw runs into table cells: medians and worst cases over seeds, counts with Wilson intervals."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks.cases import CASES

Run = dict[str, Any]
REMOVED_ASR = 0.02  # a backdoor counts as removed when its real ASR after is at most this (the gate's --max-asr)


def ok_runs(runs: Iterable[Run]) -> list[Run]:
    """The runs that completed (failed ones are listed separately, never averaged)."""
    return [r for r in runs if not r.get("error")]


def counted(runs: Iterable[Run]) -> list[Run]:
    """Completed runs that count: clean models, and backdoored ones whose attack took (ASR >= 90%)."""
    return [r for r in ok_runs(runs) if not r["backdoored"] or r.get("took")]


def group(runs: Iterable[Run], *keys: str, order: dict[str, list[str]] | None = None) -> dict[tuple, list[Run]]:
    """Runs grouped by the values of ``keys``, in ``order`` (per key) and CASES order for cases."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    orders = {"case": list(CASES), **(order or {})}

    def rank(key: str, value: Any) -> tuple[int, str]:
        o = orders.get(key)
        return (o.index(value) if o and value in o else len(o or []), str(value))

    return dict(sorted(groups.items(), key=lambda kv: tuple(rank(k, v) for k, v in zip(keys, kv[0]))))


def values(runs: Iterable[Run], get: Callable[[Run], float | None]) -> list[float]:
    out = []
    for r in runs:
        v = get(r)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            out.append(float(v))
    return out


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (sound at 0/n and n/n, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(hits: int, n: int) -> str:
    """``k/n (p%, 95% CI lo-hi)``; an em dash for none."""
    if n == 0:
        return "—"
    lo, hi = wilson(hits, n)
    return f"{hits}/{n} ({100 * hits / n:.0f}%; {100 * lo:.0f}–{100 * hi:.0f})"


def median(vals: list[float]) -> float | None:
    if not vals:
        return None
    s = sorted(vals)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def med_worst(vals: list[float], fmt: Callable[[float], str], worst: Callable[[list[float]], float] = max) -> str:
    """``median (worst)``; just the value for one run; an em dash for none."""
    if not vals:
        return "—"
    m = median(vals)
    assert m is not None
    return fmt(m) if len(vals) == 1 else f"{fmt(m)} ({fmt(worst(vals))})"


def spread(vals: list[float], fmt: Callable[[float], str]) -> str:
    """``median (min-max)``; just the value for one run; an em dash for none."""
    if not vals:
        return "—"
    m = median(vals)
    assert m is not None
    if len(vals) == 1:
        return fmt(m)
    return f"{fmt(m)} ({fmt(min(vals))}–{fmt(max(vals))})"


def pct(v: float) -> str:
    return f"{100 * v:.1f}"


def pct2(v: float) -> str:
    """Two decimals: ASR left after erasure and accuracy drops are often under one point."""
    return f"{100 * v:.2f}"


def secs(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def mib(v: float) -> str:
    return f"{v:.0f}"


def num(v: float) -> str:
    return f"{v:.2f}"


def mean(vals: list[float]) -> float | None:
    return sum(vals) / len(vals) if vals else None
