"""The PNG linked from BENCHMARKS.md: (left) the anomaly index of each backdoor's target class
next to the largest index of each clean model, per scan method and attack; (right) real ASR
after erasure against accuracy drop, per defence."""

from __future__ import annotations

from pathlib import Path

from benchmarks.aggregate import Run, counted
from benchmarks.cases import CASES, CLEAN

SCAN_COLOURS = {"baerase": "tab:green", "neural_cleanse": "tab:blue"}
DEFENCE_COLOURS = {"baerase": "tab:green", "neural_cleanse": "tab:blue", "fine_tuning": "tab:orange"}
MARKERS = {"mnist": "o", "cifar10": "s", "gtsrb": "^", "builtin-mnist": "D"}


def plot_results(runs: list[Run], defences: list[str], path: Path) -> bool:
    """Write the figure; False (and no file) when there is nothing to plot."""
    done = counted(runs)
    if not any(r["scans"] for r in done):
        return False
    import matplotlib

    matplotlib.use("Agg")  # no display on CI or servers
    import matplotlib.pyplot as plt

    from benchmarks.report import DEFENCE_NAMES, SCAN_NAMES

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), dpi=110, gridspec_kw={"width_ratios": [1.4, 1]})
    cases = [c for c in [CLEAN, *[c for c in CASES if c != CLEAN]] if any(r["case"] == c for r in done)]
    scans = list(dict.fromkeys(s for r in done for s in r["scans"]))
    width = 0.8 / max(1, len(scans))
    for j, scan in enumerate(scans):
        for i, case in enumerate(cases):
            rs = [r for r in done if r["case"] == case and scan in r["scans"]]
            key = "anomaly_index" if case == CLEAN else "target_anomaly_index"
            ys = [r["scans"][scan][key] for r in rs if r["scans"][scan][key] is not None]
            xs = [i + (j - (len(scans) - 1) / 2) * width + (k % 5 - 2) * width / 8 for k in range(len(ys))]
            left.scatter(
                xs,
                ys,
                s=18,
                color=SCAN_COLOURS.get(scan, "grey"),
                alpha=0.75,
                edgecolors="black",
                linewidths=0.3,
                label=SCAN_NAMES.get(scan, scan) if i == 0 else None,
            )
    # The thresholds the runs were decided with (a shard records its own; older shards used 2.0).
    for t in sorted({s["threshold"] for r in runs for s in r.get("scans", {}).values() if "threshold" in s}):
        left.axhline(t, color="red", linewidth=0.8, linestyle="--", label=f"threshold {t:g}")
    left.set_xlim(-0.6, len(cases) - 0.4)
    left.set_xticks(range(len(cases)))
    left.set_xticklabels(
        ["clean (largest index)" if c == CLEAN else CASES[c][1] for c in cases], rotation=30, ha="right", fontsize=8
    )
    left.set_ylabel("anomaly index")
    left.set_title("Target class's anomaly index vs clean models' largest")
    left.legend(fontsize=7)

    right.fill_between([-100, 1.0], 0, 1.0, color="tab:green", alpha=0.12, label="target: ASR < 1%, drop < 1 point")
    bad = [r for r in done if r["backdoored"]]
    drops_all = []
    for defence in defences:
        for dataset in dict.fromkeys(r["dataset"] for r in bad):
            ds = [r["defences"][defence] for r in bad if r["dataset"] == dataset and defence in r["defences"]]
            if not ds:
                continue
            drops = [100 * (d["accuracy_before"] - d["accuracy_after"]) for d in ds]
            drops_all += drops
            right.scatter(
                drops,
                [100 * d["asr_after"] for d in ds],
                marker=MARKERS.get(dataset, "P"),
                color=DEFENCE_COLOURS.get(defence, "grey"),
                alpha=0.7,
                edgecolors="black",
                linewidths=0.3,
                label=f"{DEFENCE_NAMES.get(defence, defence)}, {dataset}",
            )
    right.set_xlabel("clean accuracy drop, points (lab test split)")
    right.set_ylabel("real ASR after, %")
    right.set_yscale("symlog", linthresh=1.0)
    right.set_ylim(-0.1, 105)
    right.set_xlim(min([-0.5, *drops_all]) - 0.5, max([2.0, *drops_all]) + 0.5)
    right.set_title("Erasure: ASR left vs accuracy lost")
    right.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True
