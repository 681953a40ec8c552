"""Tables for the terminal: a scan verdict, an erasure's before and after."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from baerase_mlops.core.scan import Verdict
from baerase_mlops.report.console import percent


def verdict_table(verdict: Verdict) -> Table:
    table = Table(title=f"recovered triggers ({verdict.method}, {verdict.device})", title_justify="left")
    # With many classes the screen keeps a panel whose sizes stand for the stopped classes'
    weighted = any(c.weight != 1 for c in verdict.classes)
    for name, justify in [
        ("class", "right"),
        ("name", "left"),
        ("trigger size (L1)", "right"),
        ("steps", "right"),  # the class schedule's: a class stopped early has an upper-bound size
        *([("weight in size test", "right")] if weighted else []),
        ("anomaly index", "right"),
        ("held-out ASR", "right"),
        # Value and index in one column each, so that the table keeps to a terminal's width.
        ("max margin (index)", "right"),
        ("smallest warp, px (index)", "right"),
        ("", "left"),
    ]:
        table.add_column(name, justify=justify)
    for c in verdict.classes:
        style = "bold red" if c.flagged else None
        if c.flagged:
            note = f"FLAGGED by {c.flagged_by or 'size'}"
        else:
            note = "" if c.reached else "no trigger reached the success threshold"
        table.add_row(
            str(c.label),
            c.name,
            f"{c.norm:.1f}",
            str(c.steps) if c.steps else "-",
            *([f"{c.weight:.2f}"] if weighted else []),
            f"{c.anomaly_index:.2f}",
            percent(c.holdout_asr),
            _with_index(c.margin, 1, c.margin_index),
            _with_index(c.warp, 2, c.warp_index),
            note,
            style=style,
        )
    return table


def _number(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _with_index(value: float, digits: int, index: float) -> str:
    """``12.3 (4.56)``: a line of evidence's value and its anomaly index ("-" where not measured)."""
    if math.isnan(value):
        return "-"
    return f"{value:.{digits}f} ({_number(index, 2)})"


def erasure_table(metrics: dict[str, Any]) -> Table:
    table = Table(title="erasure", title_justify="left")
    table.add_column("")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    rows = [
        ("clean accuracy", "accuracy"),
        ("recovered-trigger ASR (the triggers unlearnt: 0 by construction)", "recovered_asr"),
        ("real ASR (lab trigger; reported, never used to decide)", "real_asr"),
        ("clean accuracy, verification images", "verification_accuracy"),
    ]
    for label, key in rows:
        if f"{key}_before" in metrics:
            table.add_row(label, percent(metrics[f"{key}_before"]), percent(metrics[f"{key}_after"]))
    if "verified_asr" in metrics:
        table.add_row(
            f"verified ASR (fresh scan, {metrics['verified_asr_images']} held-out images; 95% upper bound)",
            "",
            f"{percent(metrics['verified_asr'])} (≤ {percent(metrics['verified_asr_upper'])})",
        )
        table.add_row("verification", "", "passed" if metrics["verification_passed"] else "FAILED")
    return table
