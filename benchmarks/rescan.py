"""``python -m benchmarks.rescan MODEL.pt ... --recovery '{"steps": 100}'``: scan cached zoo models
again under other recovery settings, one JSON line per model, to weigh a setting without
training or unlearning anything.

The models are the zoo cache's (``~/.cache/baerase-mlops/zoo/DATASET/ARCH/CASE-seedS-KEY.pt``);
each is scanned as the benchmark scans it (its own seed, 5% of its lab training split as the
clean set). A line holds the verdict's per-class sizes, margins and steps, what was flagged, the
attacker's class and the timings, so a setting's detection can be set beside the recorded one; and
each class's size after every round (``trace``), so that a run with the whole budget for every
class tells what any class schedule would have kept.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from baerase_mlops.config import ScanConfig
from baerase_mlops.core.recovery import RECOVERY_METHODS
from baerase_mlops.engine import run_scan
from benchmarks.labcache import load_cached_model
from benchmarks.lines import emit


def rescan(path: Path, recovery: dict[str, Any], method: str, device: str) -> dict[str, Any]:
    cached = load_cached_model(path)
    base = ScanConfig(method=method)
    config = replace(base, recovery=replace(base.recovery, **{"seed": cached.seed, **recovery}))  # a given seed wins
    started = time.perf_counter()
    result = run_scan(cached.mut, cached.data, config, device)
    v = result.verdict
    return {
        **cached.identity,
        "method": method,
        "recovery": recovery,
        "wall_s": time.perf_counter() - started,
        "timings": v.timings,
        "flagged": v.flagged_classes,
        "anomaly_index": v.anomaly_index,
        "margin_index": v.margin_index,
        "norms": [c.norm for c in v.classes],
        "margins": [c.margin for c in v.classes],
        "steps": [c.steps for c in v.classes],
        "flagged_by": [c.flagged_by for c in v.classes],
        "reached": [c.reached for c in v.classes],
        "weights": [c.weight for c in v.classes],
        # each class's size after every round: what another class schedule would have kept
        "trace": [[float(f"{s:.5g}") for s in row] for row in result.recovery.trace.tolist()],
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--recovery", default="{}", show_default=True, help="RecoveryConfig overrides, as a JSON object.")
@click.option("--method", type=click.Choice(sorted(RECOVERY_METHODS)), default="baerase", show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Append the lines here too.")
def main(models: tuple[Path, ...], recovery: str, method: str, device: str, out: Path | None) -> None:
    try:
        overrides = json.loads(recovery)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--recovery") from exc
    if not isinstance(overrides, dict):
        raise click.BadParameter("a JSON object of RecoveryConfig fields", param_hint="--recovery")
    try:
        replace(ScanConfig().recovery, **overrides)
    except TypeError as exc:
        raise click.BadParameter(str(exc), param_hint="--recovery") from exc
    for path in models:
        emit(rescan(path, overrides, method, device), out)


if __name__ == "__main__":
    main()
