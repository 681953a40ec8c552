"""``python -m benchmarks.schedules TRACES.jsonl ...``: what a class schedule would have decided,
from scans that gave every class the whole budget.

A trace line (``benchmarks.rescan --recovery '{"screen_steps": 400, "early_stop_rounds": 1000}'``)
holds each class's size after every round. A class the schedule stops at the screen keeps its
size there; one it keeps goes on to the end: every class's optimisation is its own (batched,
not coupled), so the trace says what each would have reached. This replays, with the product's
own screen (``core.recovery.optimise.screened_out``) and size test, on every line:

* the whole budget for every class (what the schedules approximate);
* the smaller half (``screen_panel=0``, the schedule before its panel);
* the defaults (the panel, on many classes), over ``--draws`` seeds of the panel's draw.

It prints the target's anomaly index (a clean model's largest) under each, and the share of
class-steps each spends. The maximum-margin test, which does not depend on the schedule, is
left out: these are the size test's numbers alone.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import torch

from baerase_mlops.config import DetectionConfig, RecoveryConfig
from baerase_mlops.core.detection import AnomalyDetector
from baerase_mlops.core.recovery.optimise import screened_out


def replay(trace: list[list[float]], config: RecoveryConfig, seed: int) -> tuple[list[float], list[float], float]:
    """(sizes, weights, share of class-steps) had ``config``'s screen run on this trace."""
    rounds, n = len(trace), len(trace[0])
    at = config.screen_steps // config.round_steps
    if config.screen_steps == 0 or at >= rounds:
        return list(trace[-1]), [1.0] * n, 1.0
    screen = torch.tensor(trace[at - 1])
    out, weights = screened_out(
        screen, screen, config.screen_candidates, config.screen_panel, torch.Generator().manual_seed(seed)
    )
    sizes = [trace[at - 1][k] if out[k] else trace[-1][k] for k in range(n)]
    kept = int((~out).sum())
    return sizes, weights.tolist(), (n * at + kept * (rounds - at)) / (n * rounds)


def index_of(sizes: list[float], weights: list[float], target: int | None) -> float:
    """The target's size index, or a clean model's largest on the small side."""
    d = AnomalyDetector(DetectionConfig()).detect(sizes, weights)
    if target is not None:
        return d.indices[target]
    return max(i for i, s in zip(d.indices, sizes) if s < d.median)


def evaluate(line: dict[str, Any], draws: int) -> dict[str, Any]:
    trace = line["trace"]
    # Lines written before the zoo cache's clean models lost their placeholder target still carry it.
    target = line["target"] if line.get("attack") not in (None, "none") else None
    defaults = RecoveryConfig()
    half = replace(defaults, screen_panel=0)
    panel = [replay(trace, defaults, seed) for seed in range(draws)]
    return {
        "model": Path(line["model"]).name,
        "classes": len(trace[0]),
        "target": target,
        "whole": index_of(trace[-1], [1.0] * len(trace[0]), target),
        "half": index_of(*replay(trace, half, 0)[:2], target),
        "half_share": replay(trace, half, 0)[2],
        "panel": [index_of(s, w, target) for s, w, _ in panel],
        "panel_share": panel[0][2],
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("traces", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--draws", type=click.IntRange(min=1), default=40, show_default=True, help="Seeds of the panel's draw.")
def main(traces: tuple[Path, ...], draws: int) -> None:
    threshold = DetectionConfig().threshold
    rows = [evaluate(json.loads(text), draws) for path in traces for text in path.read_text().splitlines() if text]
    click.echo(
        "| model | classes | target | whole budget | smaller half | defaults: median [min, max] over draws "
        "| draws flagged | class-steps: half / defaults |"
    )
    click.echo("|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["panel"]
        flagged = sum(v > threshold for v in p)
        click.echo(
            f"| {r['model']} | {r['classes']} | {'-' if r['target'] is None else r['target']} | {r['whole']:.2f} "
            f"| {r['half']:.2f} | {statistics.median(p):.2f} [{min(p):.2f}, {max(p):.2f}] | {flagged}/{len(p)} "
            f"| {r['half_share']:.0%} / {r['panel_share']:.0%} |"
        )


if __name__ == "__main__":
    main()
