"""The PNG linked from BENCHMARKS.md: real ASR after erasure against accuracy drop, per defence."""

from __future__ import annotations

from pathlib import Path

from benchmarks.aggregate import Run, ok_runs
from benchmarks.report import DEFENCE_NAMES

MARKERS = {"mnist": "o", "cifar10": "s", "gtsrb": "^"}
COLOURS = {"baerase": "tab:green", "nc_unlearning": "tab:blue", "fine_tuning": "tab:orange"}


def plot_asr_vs_accuracy(runs: list[Run], defences: list[str], path: Path) -> Path:
    """One point per backdoored model and defence; the DESIGN.md target box (ASR < 1%, drop < 1 point) shaded."""
    import matplotlib

    matplotlib.use("Agg")  # no display on CI or servers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    ax.fill_between([-100, 1.0], 0, 1.0, color="tab:green", alpha=0.12, label="target: ASR < 1%, drop < 1 point")
    backdoored = [r for r in ok_runs(runs) if r["backdoored"]]
    datasets = list(dict.fromkeys(r["dataset"] for r in backdoored))  # in the order they ran
    for defence in defences:
        for dataset in datasets:
            rs = [r["defences"][defence] for r in backdoored if r["dataset"] == dataset]
            if not rs:
                continue
            drops = [100 * (d["accuracy_before"] - d["accuracy_after"]) for d in rs]
            asrs = [100 * d["asr_after"] for d in rs]
            ax.scatter(drops, asrs, marker=MARKERS.get(dataset, "x"), color=COLOURS.get(defence), alpha=0.75, edgecolors="black", linewidths=0.4,
                       label=f"{DEFENCE_NAMES[defence]}, {dataset}")  # fmt: skip
    ax.set_xlabel("clean accuracy drop, points (lab test split)")
    ax.set_ylabel("real ASR after, % (attacker's trigger, lab test split)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(-0.1, 105)
    lows = [100 * (r["defences"][d]["accuracy_before"] - r["defences"][d]["accuracy_after"]) for r in backdoored for d in defences]
    ax.set_xlim(min([-0.5, *lows]) - 0.5, max([2.0, *lows]) + 0.5)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set_title("Backdoor erasure: ASR left vs accuracy lost (one point per model)")
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
