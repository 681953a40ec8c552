"""Replay UnlearningConfig's stopping rule on traced unlearning runs (trace.py).

A traced run unlearns for 200 steps without stopping and records, every 10 steps, what the
defender measures (clean accuracy on every clean image, recovered-trigger ASR on the stopping
set) and what the lab knows (the attacker's real ASR and the accuracy on the lab test split).
Training does not depend on the stopping rule (its measurements draw from their own generator),
so any rule can be replayed on the trace: which checkpoint it keeps, and when it stops. This is
core.unlearning.may_stop and better, written again over the trace's dictionaries.

    python simulate.py trace-lab.jsonl trace-zoo-lenet5.jsonl trace-zoo-small_cnn-conv_bn.jsonl --per-run > simulate.md
"""

from __future__ import annotations

import json
import statistics
import sys

VARIANTS = {
    "settle at once (before)": {"min_steps": 0},
    "min_steps 40": {"min_steps": 40},
    "min_steps 50": {"min_steps": 50},
    "min_steps 60 (now)": {"min_steps": 60},
    "min_steps 70": {"min_steps": 70},
    "min_steps 80": {"min_steps": 80},
    "min_steps 100": {"min_steps": 100},
    "settle 5": {"min_steps": 0, "settle": 5},
    "min_steps 60, settle 5": {"min_steps": 60, "settle": 5},
}


def replay(trace, *, target=0.01, settle=3, within=0.005, max_drop=0.02, min_steps=0):
    """(kept checkpoint, step it stopped at or None) under the rule with these settings."""
    before = trace[0]
    best, history, settled = before, [before], 0
    for point in trace[1:]:
        history.append(point)
        settled = settled + 1 if point["rec"] <= target else 0
        keepable = point["step"] >= min_steps and point["clean_acc"] >= before["clean_acc"] - max_drop - 1e-9
        if keepable and (point["rec"], -point["clean_acc"]) <= (best["rec"], -best["clean_acc"]):
            best = point
        repaired = best["clean_acc"] >= before["clean_acc"] - within - 1e-9 or all(
            q["step"] != best["step"] for q in history[-settle:]
        )
        if point["step"] >= min_steps and settled >= settle and best["rec"] <= target and repaired:
            return best, point["step"]
    return best, None


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
