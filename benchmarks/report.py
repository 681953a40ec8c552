"""BENCHMARKS.md from the raw results: provenance first, then the tables, then the references."""

from __future__ import annotations

from typing import Any

from benchmarks.aggregate import (
    Run, count, group, mean, mib, num, ok_runs, pct, pct2, secs, spread, values,
)  # fmt: skip
from benchmarks.cases import CASES

DEFENCE_NAMES = {"baerase": "BAERASE", "nc_unlearning": "NC unlearning", "fine_tuning": "fine-tuning"}

# The paper's claim and the reference numbers of ../shared/DESIGN.md ("References with numbers"), quoted.
REFERENCES = """\
- **The paper's claim** (Liu et al. 2022, BAERASE): averaged over three attacks and four datasets, the
  attack success rate falls by **~99%**, with 5% (or less) of the training data as the clean set, and it
  beats fine-tuning and pruning defences.
- **BackdoorBench**, CIFAR-10 PreAct-ResNet18, clean acc / ASR %, defences with 5% clean data:
  BadNets none 91.32/95.03, NC 89.05/1.27, FT 89.96/1.48, ANP 84.17/0.73;
  Blended none 93.47/99.92, NC 93.47/99.92 (not detected, model left unchanged), ANP 86.58/2.19.
- **I-BAU** (ICLR 2022), CIFAR-10 BadNets: acc 84.94 -> 83.08, ASR 97.64 -> 9.36 after one round.
- **Neural Cleanse**: about 10 minutes to examine all 43 labels of a GTSRB model on a GPU (2019).
- **ART's NeuralCleanse** (Keras only), its MNIST notebook: about 70 s per class; unlearning took
  ASR 100% -> 5.19% but clean accuracy 96.47% -> 54.14%.
- **BackdoorBench's Neural Cleanse on a 2-core CPU** (default config, MNIST CNNs, 3,000 clean images):
  5-8 minutes to reverse-engineer all 10 classes plus 1.5 minutes of unlearning per model; right class
  each time, but anomaly indices of only 2.21 and 2.47 (random-position checkerboard, blended), and
  3.2% ASR left on the blended one.
- **Our targets** (DESIGN.md) on such MNIST models: scan plus erase under 60 s, wider margins than NC,
  ASR under 1%, accuracy drop under 1 point."""


def render(results: dict[str, Any], json_name: str, plot_name: str | None) -> str:
    runs = results["runs"]
    done = ok_runs(runs)
    parts = [
        header(results, json_name),
        headline(done, results["meta"]["defences"]),
        "## Claims and reference numbers\n\nNext to ours (above and below):\n\n" + REFERENCES,
        lab_table(done),
        detection_table(done),
        erasure_table(done, results["meta"]["defences"]),
        timing_table(done, results["meta"]["defences"]),
        scan_speed_table(results.get("scan_speed")),
        plot_section(plot_name),
        reading_notes(results),
        failures(runs),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def table_head(title: str, note: str, columns: list[str]) -> list[str]:
    """A section's heading, its explanation, and the header rows of its markdown table."""
    return [f"## {title}", "", note, "", md_row(columns), "|" + "---|" * len(columns)]


def md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def header(results: dict[str, Any], json_name: str) -> str:
    meta = results["meta"]
    m = meta["machine"]
    git = meta["git"]
    commit = f"`{git['commit']}`" + (" (with uncommitted changes)" if git.get("dirty") else "") if git.get("commit") else "unknown"
    machine = (
        f"{m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads, OMP_WAIT_POLICY={m.get('omp_wait_policy')}), "
        f"{m['ram_gib']:.1f} GiB RAM, {m['os']}"
    )
    device = m["device"] + (f" ({m['gpu']}, CUDA {m['cuda']})" if m.get("gpu") else "")
    failed = sum(1 for r in results["runs"] if r.get("error"))
    rows = [
        ("command", f"`{meta['command']}`"),
        ("date (UTC)", f"{meta['started_at']} to {meta['finished_at']}"),
        ("wall time", f"{meta['wall_s']:.0f} s ({meta['wall_s'] / 60:.1f} min)"),
        ("commit", commit),
        ("machine", machine),
        ("software", f"Python {m['python']}, torch {m['torch']}"),
        ("device", device),
        ("load average (1/5/15 min)", f"start {meta['load_average_start']}, end {meta['load_average_end']} (other jobs shared the machine when above the core count)"),
        ("profile", f"`{meta['profile']}`: {meta['summary']}"),
        ("defence settings", meta["shortened"] or "the product's defaults (`ScanConfig()`, `UnlearningConfig()`), seeded per run"),
        ("lab models", "; ".join(f"{d['name']}: {d['lab_text']}" for d in meta["datasets"])),
        ("raw numbers", f"[{json_name}]({json_name}): {len(results['runs'])} runs, {failed} failed, every one listed"),
    ]
    lines = ["# Benchmarks: BAERASE vs Neural-Cleanse unlearning vs fine-tuning", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def _asr_reduction(r: Run, defence: str) -> float | None:
    d = r["defences"][defence]
    return (d["asr_before"] - d["asr_after"]) / d["asr_before"] if d["asr_before"] > 0 else None


def _drop(r: Run, defence: str) -> float:
    d = r["defences"][defence]
    return d["accuracy_before"] - d["accuracy_after"]


def headline(runs: list[Run], defences: list[str]) -> str:
    lines = table_head(
        "Headline (per dataset, all attacks together)",
        "Detection: backdoored models flagged with the attacker's target among the flagged classes; "
        "false positives: clean models flagged. ASR is the real attack success rate (the attacker's own "
        "trigger on the lab test split); a missed backdoor counts with the model left as it was.",
        ["dataset", "backdoors detected (right class)", "clean models flagged", "defence", "real ASR before → after, %", "ASR reduction, %", "accuracy drop, points"],
    )
    for (dataset,), rs in group(runs, "dataset").items():
        bad = [r for r in rs if r["backdoored"]]
        clean = [r for r in rs if not r["backdoored"]]
        detected = count(bad, lambda r: r["scan"]["right_class"]) if bad else "—"
        fp = count(clean, lambda r: r["scan"]["backdoor"]) if clean else "—"
        for i, defence in enumerate(defences):
            before = values(bad, lambda r: r["defences"][defence]["asr_before"])
            after = values(bad, lambda r: r["defences"][defence]["asr_after"])
            reduction = values(bad, lambda r: _asr_reduction(r, defence))
            drop = values(bad, lambda r: _drop(r, defence))
            asr = f"{pct(mean(before))} → {pct2(mean(after))} (max {pct2(max(after))})" if after else "—"
            first = [dataset, detected, fp] if i == 0 else ["", "", ""]
            lines.append(md_row([*first, DEFENCE_NAMES[defence], asr, spread(reduction, pct), spread(drop, pct2)]))
    return "\n".join(lines)


def lab_table(runs: list[Run]) -> str:
    lines = table_head(
        "Lab models (the attacks themselves)",
        "Clean accuracy and real ASR of each trained model on its lab test split (20% of the dataset's "
        "training file, held out); mean (min–max) over seeds. An attack whose ASR stays under 90% did not take.",
        ["dataset", "attack", "models", "clean accuracy, %", "ASR, %", "attack took (ASR ≥ 90%)", "training, s"],
    )
    for (dataset, case), rs in group(runs, "dataset", "case").items():
        backdoored = rs[0]["backdoored"]
        asr = spread(values(rs, lambda r: r["lab"]["asr"]), pct) if backdoored else "— (no trigger)"
        took = count(rs, lambda r: r["lab"]["asr"] >= 0.9) if backdoored else "—"
        cached = sum(1 for r in rs if r["lab"]["cached"])
        train = spread(values(rs, lambda r: r["lab"]["train_s"]), secs) + (f" ({cached} cached)" if cached else "")
        accuracy = spread(values(rs, lambda r: r["lab"]["accuracy"]), pct)
        lines.append(md_row([dataset, CASES[case][1], str(len(rs)), accuracy, asr, took, train]))
    return "\n".join(lines)


def detection_table(runs: list[Run]) -> str:
    lines = table_head(
        "Detection (one BAERASE scan per model, 5% of the training split as the clean set)",
        "Anomaly index: of the class with the smallest recovered trigger (the model's index); target's index: "
        "that of the attacker's class. Threshold 2.0. For clean models, \"flagged\" is a false positive.",
        ["dataset", "attack", "models", "flagged", "right class flagged", "other classes flagged", "anomaly index", "target's anomaly index"],
    )
    for (dataset, case), rs in group(runs, "dataset", "case").items():
        backdoored = rs[0]["backdoored"]
        right = count(rs, lambda r: r["scan"]["right_class"]) if backdoored else "—"
        others = count(rs, lambda r: bool(r["scan"]["other_flagged"]))
        target_ai = spread(values(rs, lambda r: r["scan"]["target_anomaly_index"]), num) if backdoored else "—"
        flagged = count(rs, lambda r: r["scan"]["backdoor"]) + ("" if backdoored else " (false positives)")
        index = spread(values(rs, lambda r: r["scan"]["anomaly_index"]), num)
        lines.append(md_row([dataset, CASES[case][1], str(len(rs)), flagged, right, others, index, target_ai]))
    return "\n".join(lines)


def erasure_table(runs: list[Run], defences: list[str]) -> str:
    lines = table_head(
        "Erasure per attack and defence (all from the same scan)",
        "Accuracy and real ASR on the lab test split, before and after, mean (min–max) over seeds. "
        "\"reached\": the defender's own stopping target (recovered-trigger ASR ≤ 1% on held-out clean images, "
        "accuracy within 2 points) was met. Where nothing was flagged the model is unchanged (shown as is). "
        "Clean models have no trigger: their rows show what a false positive costs in accuracy.",
        ["dataset", "attack", "defence", "accuracy before, %", "accuracy after, %", "drop, points", "real ASR before, %", "real ASR after, %", "reached"],
    )
    for (dataset, case), rs in group(runs, "dataset", "case").items():
        backdoored = rs[0]["backdoored"]
        for defence in defences:
            d = lambda r, k: r["defences"][defence][k]  # noqa: E731
            asr_b = spread(values(rs, lambda r: d(r, "asr_before")), pct) if backdoored else "—"
            asr_a = spread(values(rs, lambda r: d(r, "asr_after")), pct2) if backdoored else "—"
            ran = [r for r in rs if d(r, "changed")]
            reached = count(ran, lambda r: d(r, "reached_target")) if ran else "not run"
            accuracy = [spread(values(rs, lambda r: d(r, k)), pct) for k in ("accuracy_before", "accuracy_after")]
            drop = spread(values(rs, lambda r: _drop(r, defence)), pct2)
            lines.append(md_row([dataset, CASES[case][1], DEFENCE_NAMES[defence], *accuracy, drop, asr_b, asr_a, reached]))
    return "\n".join(lines)


def timing_table(runs: list[Run], defences: list[str]) -> str:
    lines = table_head(
        "Time and memory",
        "Per model, mean (min–max). Core: trigger recovery for every class (scan) or the unlearning loop with its "
        "stopping-rule measurements (defences; only where something was flagged). Whole phase: the scan with its "
        "held-out evaluation, or `run_erase` with the accuracy and ASR measured before and after on the lab test "
        "split; its CPU time (all threads) says how much of a slow wall time was other people's load. Peak memory: "
        "the process's resident set (high-water mark reset at the start of each phase, so it includes the loaded "
        "data and model) and CUDA max allocated on a GPU.",
        ["dataset", "phase", "runs", "core wall time, s", "steps", "whole phase: wall / CPU, s", "peak RSS, MiB", "CUDA peak, MiB"],
    )
    for (dataset,), rs in group(runs, "dataset").items():
        lines.append(_timing_row(dataset, "scan (BAERASE recovery)", [r["scan"] for r in rs], "recovery_s", "recovery_steps"))
        for defence in defences:
            ran = [r["defences"][defence] for r in rs if r["defences"][defence]["changed"]]
            lines.append(_timing_row("", f"unlearning: {DEFENCE_NAMES[defence]}", ran, "unlearning_s", "unlearning_steps"))
        both = [r["scan"]["recovery_s"] + r["defences"]["baerase"]["unlearning_s"] for r in rs if r["defences"].get("baerase", {}).get("changed")]
        lines.append(f"|  | scan + BAERASE unlearning | {len(both)} | {spread(both, secs)} | — | — | — | — |")
    return "\n".join(lines)


def _timing_row(dataset: str, phase: str, items: list[dict[str, Any]], core_key: str, steps_key: str) -> str:
    if not items:
        return f"| {dataset} | {phase} | 0 | — | — | — | — | — |"
    steps = spread(values(items, lambda i: i[steps_key]), lambda v: f"{v:.0f}")
    whole = f"{spread(values(items, lambda i: i['wall_s']), secs)} / {spread(values(items, lambda i: i.get('cpu_s')), secs)}"
    rss = spread(values(items, lambda i: (i["memory"] or {}).get("rss_peak_mib")), mib)
    cuda = spread(values(items, lambda i: (i["memory"] or {}).get("cuda_peak_mib")), mib)
    return f"| {dataset} | {phase} | {len(items)} | {spread(values(items, lambda i: i[core_key]), secs)} | {steps} | {whole} | {rss} | {cuda} |"


def scan_speed_table(speed: dict[str, Any] | None) -> str:
    if not speed:
        return ""
    if speed.get("error"):
        return f"## Batched vs sequential scan\n\nFAILED: {speed['error']}"
    lines = table_head(
        "Batched vs sequential scan (issue 3)",
        f"The same recovery on the {speed['dataset']} BadNets lab model (`{speed['model']}`, target {speed['target']}): "
        f"{speed['steps_per_group']} optimiser steps per group with early stopping off, all classes in one batched "
        "optimisation (`class_chunk=0`) or one class at a time (`class_chunk=1`).",
        ["mode", "groups", "optimiser steps", "recovery, s", "peak RSS, MiB", "CUDA peak, MiB", "flagged"],
    )
    for row in speed["rows"]:
        mem = row["memory"] or {}
        cuda = mib(mem["cuda_peak_mib"]) if mem.get("cuda_peak_mib") is not None else "—"
        lines.append(
            f"| {row['mode']} (class_chunk={row['class_chunk']}) | {row['groups']} | {row['steps']} | {secs(row['recovery_s'])} "
            f"| {mib(mem.get('rss_peak_mib', float('nan')))} | {cuda} | {row['flagged']} |"
        )
    lines += ["", f"**Speed-up of batched over sequential: {speed['speedup']:.2f}x** (sequential time / batched time)."]
    return "\n".join(lines)


def plot_section(plot_name: str | None) -> str:
    if not plot_name:
        return ""
    return (
        "## ASR after vs accuracy drop\n\n"
        f"One point per backdoored model and defence (all datasets); the box marks DESIGN.md's targets "
        f"(ASR under 1%, accuracy drop under 1 point).\n\n![ASR after erasure vs accuracy drop]({plot_name})"
    )


def reading_notes(results: dict[str, Any]) -> str:
    meta = results["meta"]
    return "\n".join([
        "## How these numbers were made",
        "",
        "- Each lab model is trained by `baerase_mlops.lab` on the dataset's training file; 20% of it "
        "(stratified, seeded) is held out as the lab test split, on which every accuracy and real ASR here is measured.",
        "- The defender's clean set is 5% of the lab model's training split (`jobs.prepare_clean_data`); the "
        "scan keeps 20% of it out of trigger recovery, for recovered-trigger ASR and the unlearning's stopping rule.",
        "- One scan per model (`jobs.run_scan`), then every defence from that scan (`jobs.run_erase`): BAERASE, "
        "Neural-Cleanse unlearning and fine-tuning share the loop, the clean data and the stopping rule; nothing "
        "the defence decides uses the attacker's trigger.",
        "- Seeds: the seed sets the target class, the trigger's position and pixels, the lab's split and training, "
        "the clean subset, the scan and the unlearning.",
        f"- Scan configuration: `{meta['scan_config']}`.",
        f"- Unlearning configuration: `{meta['unlearning_config']}`.",
    ])  # fmt: skip


def failures(runs: list[Run]) -> str:
    failed = [r for r in runs if r.get("error")]
    if not failed:
        return ""
    lines = ["## Failed runs (in the JSON with their tracebacks; not averaged above)", ""]
    lines += [f"- {r['dataset']} {r['case']} seed {r['seed']}: {r['error']}" for r in failed]
    return "\n".join(lines)
