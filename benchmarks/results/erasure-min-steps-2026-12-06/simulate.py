"""Replay UnlearningConfig's stopping rule on traced unlearning runs (trace.py).

A traced run unlearns for 200 steps without stopping and records, every 10 steps, what the
defender measures (clean accuracy on every clean image, recovered-trigger ASR on the stopping
set) and what the lab knows (the attacker's real ASR and the accuracy on the lab test split).
Training does not depend on the stopping rule (its measurements draw from their own generator),
so any rule can be replayed on the trace: which checkpoint it keeps, and when it stops, by the
product's own core.unlearning.better and may_stop.

    PYTHONPATH=../../.. python simulate.py --per-run \
        trace-lab.jsonl trace-zoo-lenet5.jsonl trace-zoo-small_cnn-conv_bn.jsonl > simulate.md
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import replace

from baerase_mlops.config import UnlearningConfig
from baerase_mlops.core.unlearning import Checkpoint, better, may_stop

VARIANTS = {
    "settle at once (before)": {"min_steps": 0},
    "min_steps 40": {"min_steps": 40},
    "min_steps 50": {"min_steps": 50},
    "min_steps 60 (now)": {"min_steps": 60},
    "min_steps 70": {"min_steps": 70},
    "min_steps 80": {"min_steps": 80},
    "min_steps 100": {"min_steps": 100},
    "settle 5": {"min_steps": 0, "settle_evals": 5},
    "min_steps 60, settle 5": {"min_steps": 60, "settle_evals": 5},
}


def replay(trace, **rule):
    """(kept point, step it stopped at or None) under UnlearningConfig with ``rule``, decided by
    the product's own core.unlearning.better and may_stop on the trace's measurements."""
    config = replace(UnlearningConfig(), **rule)
    points = [Checkpoint(p["step"], p["clean_acc"], p["rec"]) for p in trace]
    before, best = points[0], 0
    for i, point in enumerate(points[1:], start=1):
        if better(point, points[best], before, config):
            best = i
        if may_stop(points[best], before, points[: i + 1], config):
            return trace[best], point.step
    return trace[best], None


def outcomes(runs, **rule):
    """Per run: (name, unlearning seed, kept step, stop step, real ASR %, test-split drop in points)."""
    out = []
    for run in runs:
        best, stop = replay(run["trace"], **rule)
        drop = (run["test_acc_before"] - best["test_acc"]) * 100
        out.append(
            (
                f"{run['architecture']} {run['model'].split('/')[-1][:24]}",
                run["seed"],
                best["step"],
                stop,
                best["real"] * 100,
                drop,
            )
        )
    return out


def main(paths: list[str], per_run: bool) -> None:
    runs = [json.loads(line) for path in paths for line in open(path)]
    print(f"{len(runs)} traced runs\n")
    print("| rule | median real ASR | worst | > 1% | > 2% | mean drop (worst), points | drops > 1 | mean stop step |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rule in VARIANTS.items():
        res = outcomes(runs, **rule)
        asr, drop = [r[4] for r in res], [r[5] for r in res]
        stops = [r[3] or 200 for r in res]
        print(
            f"| {name} | {statistics.median(asr):.2f}% | {max(asr):.2f}% | {sum(a > 1 for a in asr)} | "
            f"{sum(a > 2 for a in asr)} | {statistics.mean(drop):.2f} ({max(drop):.2f}) | {sum(d > 1 for d in drop)} | "
            f"{statistics.mean(stops):.0f} |"
        )
    if per_run:
        before, now = outcomes(runs, min_steps=0), outcomes(runs, min_steps=60)
        print("\n| model | seed | before: step, real ASR, drop | now: step, real ASR, drop |\n|---|---|---|---|")
        for b, n in zip(before, now):
            print(f"| {b[0]} | {b[1]} | {b[2]}, {b[4]:.2f}%, {b[5]:.2f} | {n[2]}, {n[4]:.2f}%, {n[5]:.2f} |")


if __name__ == "__main__":
    main([a for a in sys.argv[1:] if not a.startswith("--")], "--per-run" in sys.argv)
