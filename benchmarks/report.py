"""BENCHMARKS.md from the merged runs: provenance, the headline, then per dataset x attack x
architecture tables, the cost of each phase, what did not take, and the references."""

from __future__ import annotations

import statistics
from typing import Any

from baerase_mlops.engine import erasure_refusal
from benchmarks.aggregate import (
    REMOVED_ASR,
    Run,
    counted,
    group,
    med_worst,
    median,
    mib,
    num,
    ok_runs,
    pct,
    pct2,
    rate,
    secs,
    spread,
    values,
)
from benchmarks.cases import CASES
from benchmarks.peer import PEER_SCAN
from benchmarks.profiles import SCAN_METHODS
from benchmarks.statistics import table as statistics_table
from benchmarks.statistics import usable_runs

DEFENCE_NAMES = {
    "baerase": "BAERASE (defaults)",
    "neural_cleanse": "Neural Cleanse mode",
    "fine_tuning": "fine-tuning",
}
SCAN_NAMES = {"baerase": "BAERASE scan", "neural_cleanse": "NC scan", PEER_SCAN: "BackdoorBench NC (peer)"}

# The paper's claim and the reference numbers of ../shared/DESIGN.md ("References with numbers"), quoted.
REFERENCES = """\
- **The paper's claim** (Liu et al. 2022, BAERASE): averaged over three attacks and four datasets, the
  attack success rate falls by **~99%**, with 5% (or less) of the training data as the clean set.
- **BackdoorBench**, CIFAR-10 PreAct-ResNet18, clean acc / ASR %, 5% clean data: BadNets none 91.32/95.03,
  NC 89.05/1.27, FT 89.96/1.48; Blended NC 93.47/99.92 (not detected); WaNet none 91.2/89.7, NC 91.8/7.5;
  SIG (5%) NC 93.7/97.1 (missed); GTSRB BadNets NC 97.5/0.0, Blended NC 97.8/8.0.
- **BackdoorBench's Neural Cleanse on a 2-core CPU** (MNIST CNNs, 3,000 clean images): 5-8 minutes to
  reverse-engineer all 10 classes plus 1.5 minutes of unlearning per model; anomaly indices 2.21 and 2.47
  on a random-position checkerboard and a blend; 3.2% ASR left on the blend.
- **Our targets** (DESIGN.md) on such MNIST models: scan plus erase under 60 s, ASR under 1%, accuracy
  drop under 1 point; thresholds calibrated for a false-positive rate of at most 5%."""


def dvals(runs: list[Run], defence: str, key: str) -> list[float]:
    """``key`` of each run's ``defence`` record."""
    return values(runs, lambda r: r["defences"][defence].get(key))


def svals(runs: list[Run], scan: str, key: str) -> list[float]:
    """``key`` of each run's ``scan`` record."""
    return values(runs, lambda r: r["scans"][scan].get(key))


def drops(runs: list[Run], defence: str) -> list[float]:
    return values(runs, lambda r: _drop(r, defence))


def defences_of(results: dict[str, Any]) -> list[str]:
    names = list(results["meta"]["defences"])
    for r in ok_runs(results["runs"]):
        names += [d for d in r["defences"] if d not in names]
    return names


def _order(results: dict[str, Any]) -> dict[str, list[str]]:
    return {"dataset": results["meta"].get("dataset_order", []), "arch": results["meta"].get("arch_order", [])}


def render(results: dict[str, Any], json_name: str, plot_name: str | None) -> str:
    runs = results["runs"]
    defences = defences_of(results)
    order = _order(results)
    parts = [
        header(results, json_name),
        headline(runs, defences),
        lab_table(runs, order),
        detection_table(runs, order),
        evidence_table(runs, order),
        recomputed_detection(runs),
        false_positive_table(runs, order),
        plot_section(plot_name),
        erasure_table(runs, defences, order, results["meta"].get("unlearning_config") or {}),
        timing_table(runs, defences, order),
        cost_table(runs, order),
        cost_by_classes(results.get("cost") or []),
        not_taken(runs),
        reading_notes(results),
        "## Claims and reference numbers\n\n" + REFERENCES,
        failures(runs),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def table_head(title: str, note: str, columns: list[str]) -> list[str]:
    return [f"## {title}", "", note, "", md_row(columns), "|" + "---|" * len(columns)]


def md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def header(results: dict[str, Any], json_name: str) -> str:
    meta = results["meta"]
    shards = meta["shards"]
    failed = sum(1 for r in results["runs"] if r.get("error"))
    lines = [
        "# Benchmarks: BAERASE vs the product's Neural-Cleanse mode vs fine-tuning, on a zoo of lab backdoors",
        "",
        f"Profile `{meta['profile']}`: {meta['summary']}. Defence settings: "
        + (meta["shortened"] or "the product's defaults (`ScanConfig()`, `UnlearningConfig()`), seeded per run")
        + f". Raw numbers: [{json_name}]({json_name}), {len(results['runs'])} runs ({failed} failed), "
        "every one listed; the tables below are computed from it and nothing else.",
        "",
        "Built in shards (each row one command; a later shard's re-run of a cell replaced the earlier one):",
        "",
        "| command | date (UTC) | models | wall | commit | machine | load average start → end |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in shards:
        m = s["machine"]
        git = s.get("git") or {}
        commit = f"`{(git.get('commit') or 'unknown')[:10]}`" + (" (dirty)" if git.get("dirty") else "")
        machine = f"{m['cpu']}, {m['cores']} cores, {m['device']}" + (f" ({m['gpu']})" if m.get("gpu") else "")
        wall = f"{s.get('wall_s', 0) / 60:.1f} min"
        done = f"{s.get('runs', 0)} of {s['models']}"
        lines.append(
            f"| `{s['command']}` | {s['started_at']} – {s.get('finished_at', '?')} | {done} | {wall} | {commit} | "
            f"{machine} | {s.get('load_average_start')} → {s.get('load_average_end')} |"
        )
    return "\n".join(lines)


def _removed(r: Run, defence: str) -> bool:
    return r["defences"][defence]["asr_after"] <= REMOVED_ASR


def _drop(r: Run, defence: str) -> float:
    d = r["defences"][defence]
    return d["accuracy_before"] - d["accuracy_after"]


def _scan_of(r: Run, defence: str) -> dict[str, Any]:
    return r["scans"][r["defences"][defence]["scan"]]


def headline(runs: list[Run], defences: list[str]) -> str:
    done = counted(runs)
    bad = [r for r in done if r["backdoored"]]
    clean = [r for r in done if not r["backdoored"]]
    untaken = [r for r in ok_runs(runs) if r["backdoored"] and not r.get("took")]
    lines = table_head(
        "Headline (every dataset, attack and architecture run so far)",
        f"Backdoored models count when their attack took (real ASR ≥ 90%; {len(untaken)} did not and are listed below, "
        f"not counted). Detected: the attacker's target is among the flagged classes. Removed: real ASR after the "
        f"defence ≤ {100 * REMOVED_ASR:.0f}% (the gate's `--max-asr`), misses counted as not removed. "
        "Rates with 95% Wilson intervals. Time: the defence's scan plus its unlearning, median per model.",
        [
            "defence",
            "backdoors detected, right class",
            "clean models flagged (FPR)",
            "backdoors removed",
            "real ASR after, median (worst), %",
            "accuracy drop, median (worst), points",
            "time per model, s",
        ],
    )
    for defence in defences:
        have = [r for r in bad if defence in r["defences"]]
        have_clean = [r for r in clean if defence in r["defences"]]
        if not have and not have_clean:
            continue
        detected = (
            sum(1 for r in have if _scan_of(r, defence)["right_class"])
            if "scan" in (have or have_clean)[0]["defences"][defence]
            else None
        )
        fp = sum(1 for r in have_clean if r["defences"][defence]["changed"])
        removed = sum(1 for r in have if _removed(r, defence))
        lines.append(
            md_row(
                [
                    DEFENCE_NAMES.get(defence, defence),
                    rate(detected, len(have)) if detected is not None else "—",
                    rate(fp, len(have_clean)),
                    rate(removed, len(have)),
                    med_worst(dvals(have, defence, "asr_after"), pct2),
                    med_worst(drops(have, defence), pct2),
                    spread(dvals(have + have_clean, defence, "total_s"), secs),
                ]
            )
        )
    # Scans-only runs (detection shards): their scans count for detection, with no erasure.
    for scan in SCAN_METHODS:
        row = _detection_only_row(
            f"{SCAN_NAMES.get(scan, scan)} alone (scans-only runs)",
            "— (no unlearning run)",
            scan,
            [r for r in bad if not r["defences"]],
            [r for r in clean if not r["defences"]],
        )
        lines += [row] if row else []
    # The external peer (--peer-dir) runs its detection only, on every model it was run on.
    row = _detection_only_row(
        f"{SCAN_NAMES[PEER_SCAN]}, detection only", "— (its unlearning is not run)", PEER_SCAN, bad, clean
    )
    lines += [row] if row else []
    return "\n".join(lines)


def _detection_only_row(label: str, removal: str, scan: str, bad: list[Run], clean: list[Run]) -> str | None:
    """A headline row for a scan with no unlearning: detection and FPR over the runs that have it."""
    have = [r for r in bad if scan in r["scans"]]
    have_clean = [r for r in clean if scan in r["scans"]]
    if not have and not have_clean:
        return None
    return md_row(
        [
            label,
            rate(sum(1 for r in have if r["scans"][scan]["right_class"]), len(have)),
            rate(sum(1 for r in have_clean if r["scans"][scan]["backdoor"]), len(have_clean)),
            removal,
            "—",
            "—",
            spread(values(have + have_clean, lambda r: r["scans"][scan]["wall_s"]), secs),
        ]
    )


def lab_table(runs: list[Run], order: dict[str, list[str]]) -> str:
    lines = table_head(
        "Lab models (the attacks themselves)",
        "Clean accuracy and real ASR of each trained model on its lab test split (20% of the dataset's training file, "
        "held out), median (min–max) over seeds. A backdoor whose ASR stayed under 90% did not take.",
        ["dataset", "arch", "attack", "models", "clean accuracy, %", "ASR, %", "took (ASR ≥ 90%)", "training, s"],
    )
    for (dataset, arch, case), rs in group(ok_runs(runs), "dataset", "arch", "case", order=order).items():
        backdoored = rs[0]["backdoored"]
        asr = spread(values(rs, lambda r: r["lab"]["asr"]), pct) if backdoored else "— (no trigger)"
        took = f"{sum(1 for r in rs if r.get('took'))}/{len(rs)}" if backdoored else "—"
        cached = sum(1 for r in rs if r["lab"]["cached"])
        train = spread(values(rs, lambda r: r["lab"]["train_s"]), secs) + (f" ({cached} cached)" if cached else "")
        lines.append(
            md_row(
                [
                    dataset,
                    arch,
                    CASES.get(case, ("", case))[1],
                    str(len(rs)),
                    spread(values(rs, lambda r: r["lab"]["accuracy"]), pct),
                    asr,
                    took,
                    train,
                ]
            )
        )
    return "\n".join(lines)


def _max_clean_index(runs: list[Run], scan: str) -> float | None:
    vals = svals([r for r in runs if not r["backdoored"] and scan in r["scans"]], scan, "anomaly_index")
    return max(vals) if vals else None


def detection_table(runs: list[Run], order: dict[str, list[str]]) -> str:
    done = counted(runs)
    scans = list(dict.fromkeys(s for r in done for s in r["scans"]))
    columns = ["dataset", "arch", "attack", "models"]
    for s in scans:
        columns += [
            f"{SCAN_NAMES.get(s, s)}: detected, right class",
            f"{SCAN_NAMES.get(s, s)}: target's index, median (min) / largest clean",
        ]
    lines = table_head(
        "Detection per dataset × attack × architecture",
        "Models whose attack took. Target's index: the anomaly index of the attacker's class, median (min) over seeds, "
        "next to the largest anomaly index any clean model of the same dataset and architecture reached (a detector "
        "separates them when the first is above the second). A scan's index is its size test's (both lines of "
        "evidence: next table); thresholds as recorded in each run's config.",
        columns,
    )
    for (dataset, arch), rs in group(done, "dataset", "arch", order=order).items():
        for (case,), cell in group([r for r in rs if r["backdoored"]], "case").items():
            row = [dataset, arch, CASES.get(case, ("", case))[1], str(len(cell))]
            for s in scans:
                have = [r for r in cell if s in r["scans"]]
                hits = sum(1 for r in have if r["scans"][s]["right_class"])
                target = med_worst(svals(have, s, "target_anomaly_index"), num, worst=min)
                clean_max = _max_clean_index(rs, s)
                row += [rate(hits, len(have)), f"{target} / {num(clean_max) if clean_max is not None else '—'}"]
            lines.append(md_row(row))
    return "\n".join(lines)


def _target_by(r: Run, scan: str, evidence: str) -> bool:
    flagged_by = r["scans"][scan].get("flagged_by") or []
    return evidence in (flagged_by[r["target"]] if r["target"] < len(flagged_by) else "")


def _target_index(r: Run, scan: str, key: str) -> float | None:
    indices = r["scans"][scan].get(key)
    return indices[r["target"]] if indices and indices[r["target"]] is not None else None


def _max_clean(runs: list[Run], scan: str, key: str) -> float | None:
    vals = [
        max((v for v in r["scans"][scan][key] if v is not None), default=None)
        for r in runs
        if not r["backdoored"] and scan in r["scans"] and r["scans"][scan].get(key)
    ]
    vals = [v for v in vals if v is not None]  # an inconclusive warp test has no index
    return max(vals) if vals else None


def _warp_test_ran(r: Run, scan: str) -> bool:
    """Whether the run's scan had the warp test (its timing: runs from before it have none)."""
    return bool((r["scans"][scan].get("timings") or {}).get("warps_s"))


def _or_dash(value: float | None) -> str:
    return num(value) if value is not None else "—"


def evidence_table(runs: list[Run], order: dict[str, list[str]], scan: str = "baerase") -> str:
    """Which line of evidence found the attacker's class, for the default scan: the trigger-size
    test, the maximum-margin test, the warp test, any of them (the verdict)."""
    done = [r for r in counted(runs) if scan in r["scans"]]
    if not any(r["scans"][scan].get("margin_indices") for r in done):
        return ""
    lines = table_head(
        f"Lines of evidence ({SCAN_NAMES.get(scan, scan)})",
        "Models whose attack took: how many had the attacker's class flagged by the trigger-size test, by the "
        "maximum-margin test (core/margins.py: the largest logit margin any input reaches for the class, MADs "
        "above the median in log margins), by the warp test (core/warps.py: the smallest smooth warp that sends "
        "other classes' images to the class, MADs below the median in log pixels; runs from before 2026-12-07 "
        "have none: —, and runs from its first shard recorded no warp index), and by any (the verdict). Indices: "
        "the attacker's class's, median (min) over seeds, next to the largest any clean model of the same dataset "
        "and architecture reached.",
        [
            "dataset",
            "arch",
            "attack",
            "models",
            "size test",
            "margin test",
            "warp test",
            "any",
            "target's margin index, median (min) / largest clean",
            "target's warp index, median (min) / largest clean",
        ],
    )
    for (dataset, arch), rs in group(done, "dataset", "arch", order=order).items():
        clean_margin = _max_clean(rs, scan, "margin_indices")
        clean_warp = _max_clean(rs, scan, "warp_indices")
        for (case,), cell in group([r for r in rs if r["backdoored"]], "case").items():
            margins = [v for v in (_target_index(r, scan, "margin_indices") for r in cell) if v is not None]
            warped = [r for r in cell if _warp_test_ran(r, scan)]
            warps = [v for v in (_target_index(r, scan, "warp_indices") for r in warped) if v is not None]
            lines.append(
                md_row(
                    [
                        dataset,
                        arch,
                        CASES.get(case, ("", case))[1],
                        str(len(cell)),
                        rate(sum(1 for r in cell if _target_by(r, scan, "size")), len(cell)),
                        rate(sum(1 for r in cell if _target_by(r, scan, "margin")), len(cell)),
                        rate(sum(1 for r in warped if _target_by(r, scan, "warp")), len(warped)) if warped else "—",
                        rate(sum(1 for r in cell if r["scans"][scan]["right_class"]), len(cell)),
                        f"{med_worst(margins, num, worst=min)} / {_or_dash(clean_margin)}",
                        f"{med_worst(warps, num, worst=min)} / {_or_dash(clean_warp)}" if warps else "—",
                    ]
                )
            )
    return "\n".join(lines)


def recomputed_detection(runs: list[Run]) -> str:
    """Today's defaults and the candidates they were chosen among, decided afresh from each run's
    recorded sizes and margins (shards that ran with earlier settings are judged as they are now)."""
    usable = usable_runs(runs, "baerase")
    if not usable:
        return ""
    return "\n".join(
        [
            "## Detection statistics, decided afresh from the recorded sizes and margins",
            "",
            "Every run's verdict above is the one its shard's code reached. Here each candidate statistic "
            "(`benchmarks/statistics.py`) decides again from the per-class trigger sizes and maximum margins the "
            "runs recorded (BAERASE scan), so shards run under earlier settings are judged by today's defaults. The "
            "defaults were chosen on these same clean models: their false-positive count is in-sample.",
            "",
            statistics_table(usable),
        ]
    )


def false_positive_table(runs: list[Run], order: dict[str, list[str]]) -> str:
    done = [r for r in ok_runs(runs) if not r["backdoored"]]
    scans = list(dict.fromkeys(s for r in done for s in r["scans"]))
    columns = ["dataset", "arch", "clean models"]
    for s in scans:
        columns += [f"{SCAN_NAMES.get(s, s)}: flagged (FPR)", f"{SCAN_NAMES.get(s, s)}: anomaly index, median (max)"]
    lines = table_head(
        "False positives (clean models)",
        "A clean model with any class flagged is a false positive; rates with 95% Wilson intervals. Per dataset, "
        "then all architectures together.",
        columns,
    )
    for (dataset,), rs in group(done, "dataset", order=order).items():
        cells = [((dataset, arch), cell) for (arch,), cell in group(rs, "arch", order=order).items()] + [
            ((dataset, "**all**"), rs)
        ]
        for (d, arch), cell in cells:
            row = [d, arch, str(len(cell))]
            for s in scans:
                have = [r for r in cell if s in r["scans"]]
                row += [
                    rate(sum(1 for r in have if r["scans"][s]["backdoor"]), len(have)),
                    med_worst(svals(have, s, "anomaly_index"), num),
                ]
            lines.append(md_row(row))
    return "\n".join(lines)


def erasure_table(runs: list[Run], defences: list[str], order: dict[str, list[str]], unlearning: dict[str, Any]) -> str:
    lines = table_head(
        "Erasure per dataset × attack × architecture",
        "Real ASR (the attacker's trigger) and clean accuracy on the lab test split after each defence, median (worst) "
        "over seeds; a backdoor the defence's scan missed is left as it was and counts with its ASR. Removed: real ASR "
        f"after ≤ {100 * REMOVED_ASR:.0f}%. Verified: the independent verification passed. Registered: the whole "
        "rule the registry job applies passed too (`engine.erasure_refusal`: verified, the recovered triggers brought "
        "to the unlearning's target, at most the allowed accuracy lost on the lab test split), so the product would "
        "register the candidate as cleaned with the verified ASR as its asr_after; over-claimed: it passed "
        "verification while the real ASR was more than 2 points above that number. Drop over its estimate: the real "
        "drop was above the upper end of the 95% interval the verification estimated on its own held-out images.",
        [
            "dataset",
            "arch",
            "attack",
            "defence",
            "ASR before, %",
            "ASR after, %",
            "removed",
            "accuracy after, %",
            "drop, points",
            "verified",
            "registered",
            "over-claimed",
            "drop over its estimate",
        ],
    )
    done = [r for r in counted(runs) if r["backdoored"]]
    for (dataset, arch, case), cell in group(done, "dataset", "arch", "case", order=order).items():
        for defence in defences:
            have = [r for r in cell if defence in r["defences"]]
            if not have:
                continue
            lines.append(
                md_row(
                    [
                        dataset,
                        arch,
                        CASES.get(case, ("", case))[1],
                        DEFENCE_NAMES.get(defence, defence),
                        spread(dvals(have, defence, "asr_before"), pct),
                        med_worst(dvals(have, defence, "asr_after"), pct2),
                        f"{sum(1 for r in have if _removed(r, defence))}/{len(have)}",
                        med_worst(dvals(have, defence, "accuracy_after"), pct, worst=min),
                        med_worst(drops(have, defence), pct2),
                        _verified_count(have, defence),
                        _registered_count(have, defence, unlearning),
                        _over_claimed_count(have, defence),
                        _drop_over_estimate_count(have, defence),
                    ]
                )
            )
    return "\n".join(lines)


def _checked(runs: list[Run], defence: str) -> list[dict[str, Any]]:
    """The records of ``defence`` whose erasure was verified (a changed model with a verification)."""
    records = (r["defences"][defence] for r in runs)
    return [d for d in records if d.get("changed") and d.get("verified") is not None]


def _verified_count(runs: list[Run], defence: str) -> str:
    checked = _checked(runs, defence)
    return f"{sum(1 for d in checked if d['verified'])}/{len(checked)}" if checked else "—"


def _registered_count(runs: list[Run], defence: str, unlearning: dict[str, Any]) -> str:
    """Changed models the registry job would register as cleaned, by its own rule on the recorded
    numbers and the table's unlearning settings (its target ASR and accuracy bound: the latest
    product shard's, applied to every run; the zoo's shards all run the product defaults)."""
    checked = _checked(runs, defence)
    if not checked or "max_accuracy_drop" not in unlearning:
        return "—"
    registered = [
        d
        for d in checked
        if erasure_refusal(
            verified=d["verified"],
            reasons=d.get("verification_reasons") or [],
            reached_target=bool(d.get("reached_target")),
            accuracy_drop=d["accuracy_before"] - d["accuracy_after"],
            accuracy_on=d.get("accuracy_on", ""),
            target_asr=unlearning["target_asr"],
            max_accuracy_drop=unlearning["max_accuracy_drop"],
        )
        is None
    ]
    return f"{len(registered)}/{len(checked)}"


def _over_claimed_count(runs: list[Run], defence: str) -> str:
    """Passed verification although the real ASR (known for lab models only) is over 2 points
    above the verified number."""
    passed = [d for d in _checked(runs, defence) if d["verified"] and d["asr_kind"] == "real"]
    if not passed:
        return "—"
    return f"{sum(1 for d in passed if d['asr_after'] > d['verified_asr'] + 0.02)}/{len(passed)}"


def _drop_over_estimate_count(runs: list[Run], defence: str) -> str:
    """Changed models whose real accuracy drop (lab test split) exceeds the upper end of the
    verification's 95% interval of it (from before the estimate was recorded: not counted)."""
    have = [
        (d, d["accuracy_before"] - d["accuracy_after"])
        for d in _checked(runs, defence)
        if d.get("verification_accuracy_drop_interval")
    ]
    if not have:
        return "—"
    return f"{sum(1 for d, real in have if real > d['verification_accuracy_drop_interval'][1])}/{len(have)}"


def timing_table(runs: list[Run], defences: list[str], order: dict[str, list[str]]) -> str:
    done = ok_runs(runs)
    scans = ["baerase", "neural_cleanse"] + ([PEER_SCAN] if any(PEER_SCAN in r["scans"] for r in done) else [])
    lines = table_head(
        "Time and memory per phase (cost per model, for sizing shards)",
        "Per model, median (max) wall seconds on the machine of the shard that ran it (see its load average above), "
        "and peak resident memory of the phase (high-water mark reset at its start; it includes the loaded data and "
        "model). Unlearning: `run_erase`, with the accuracy and ASR measured before and after on the lab test split; "
        "it is 0 where nothing was flagged. Whole model: training (when not cached) plus every defence.",
        [
            "dataset",
            "arch",
            "models",
            "training",
            *[SCAN_NAMES[s] for s in scans],
            *[f"unlearning: {DEFENCE_NAMES.get(d, d)}" for d in defences],
            "whole model",
            "peak RSS, MiB (train / scan / unlearn)",
        ],
    )
    for (dataset, arch), rs in group(done, "dataset", "arch", order=order).items():
        train = med_worst(values(rs, lambda r: r["lab"]["train_s"]), secs)
        scan = [med_worst(values(rs, lambda r, s=s: (r["scans"].get(s) or {}).get("wall_s")), secs) for s in scans]
        unlearn = [
            med_worst(values(rs, lambda r, d=d: (r["defences"].get(d) or {}).get("wall_s")), secs) for d in defences
        ]
        whole = med_worst(values(rs, lambda r: r.get("wall_s")), secs)
        rss_train = values(rs, lambda r: r["lab"].get("train_rss_peak_mib"))
        rss_scan = values(
            rs, lambda r: max(((s.get("memory") or {}).get("rss_peak_mib") or 0) for s in r["scans"].values())
        )
        rss_unlearn = values(
            rs,
            lambda r: max(
                (((d.get("memory") or {}).get("rss_peak_mib") or 0) for d in r["defences"].values()), default=None
            ),
        )
        rss = " / ".join(mib(max(v)) if v else "—" for v in (rss_train, rss_scan, rss_unlearn))
        lines.append(md_row([dataset, arch, str(len(rs)), train, *scan, *unlearn, whole, rss]))
    return "\n".join(lines)


def cost_table(runs: list[Run], order: dict[str, list[str]]) -> str:
    """Scan cost against the number of classes, from the runs that recorded the class schedule."""
    done = [r for r in ok_runs(runs) if (r["scans"].get("baerase") or {}).get("class_steps")]
    if not done:
        return ""
    lines = table_head(
        "Scan cost against the number of classes (BAERASE scan, the class schedule)",
        "Per dataset and architecture, median (max) over its models, on the machine of the shard that ran it. "
        "Class-steps: recovery steps summed over the classes, as a share of every class getting the whole budget "
        "(what the cost was before the schedule).",
        ["dataset", "arch", "classes", "models", "scan wall", "recovery", "class-steps used", "peak RSS, MiB"],
    )
    for (dataset, arch), rs in group(done, "dataset", "arch", order=order).items():
        scans = [r["scans"]["baerase"] for r in rs]
        classes = len(scans[0]["class_steps"])
        share = [sum(s["class_steps"]) / (len(s["class_steps"]) * s["recovery_budget"]) for s in scans]
        rss = [(s.get("memory") or {}).get("rss_peak_mib") for s in scans]
        lines.append(
            md_row(
                [
                    dataset,
                    arch,
                    str(classes),
                    str(len(rs)),
                    med_worst([s["wall_s"] for s in scans], secs),
                    med_worst([s["recovery_s"] for s in scans], secs),
                    f"{statistics.median(share):.0%} ({max(share):.0%})",
                    mib(max(v for v in rss if v is not None)) if any(v is not None for v in rss) else "—",
                ]
            )
        )
    return "\n".join(lines)


def cost_by_classes(records: list[dict[str, Any]]) -> str:
    """The table of ``python -m benchmarks.cost`` (one model per class count, scanned twice in one run)."""
    if not records:
        return ""
    from benchmarks.cost import table  # the one table, written by the tool and here

    machine = records[0].get("machine") or {}
    units = (("cpu", ""), ("cores", " cores"), ("torch_threads", " threads"))
    where = ", ".join(f"{machine[k]}{unit}" for k, unit in units if machine.get(k))
    return (
        "## Scan cost against the number of classes, one model each (`python -m benchmarks.cost`)\n\n"
        "A random-position checkerboard model per class count, scanned with the defaults and, right after in "
        "the same process, with the class schedule before its panel (`screen_panel=0`), on "
        f"{where or 'the machine in the JSON'} ({records[0]['finished_at'][:10]}). Wall: the whole scan "
        "(recovery, maximum margins, held-out evaluation).\n\n" + table(records)
    )


def not_taken(runs: list[Run]) -> str:
    missed = [r for r in ok_runs(runs) if r["backdoored"] and not r.get("took")]
    if not missed:
        return "## Attacks that did not take\n\nNone: every backdoored model reached a real ASR of at least 90%."
    lines = [
        "## Attacks that did not take (real ASR < 90%: in the JSON, not counted above)",
        "",
        "| dataset | arch | attack | seed | clean accuracy, % | ASR, % |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['dataset']} | {r['arch']} | {r['label']} | {r['seed']} | {pct(r['lab']['accuracy'])} | "
        f"{pct(r['lab']['asr'])} |"
        for r in missed
    ]
    return "\n".join(lines)


def plot_section(plot_name: str | None) -> str:
    if not plot_name:
        return ""
    return (
        "## Anomaly indices and erasure, pictured\n\n"
        "Left: per scan method, the anomaly index of the attacker's class on each backdoored model (by attack) next to "
        "the largest index of each clean model, with the threshold(s) the runs were decided with. Right: real ASR "
        "left against accuracy lost, one point per backdoored model and defence; the box marks DESIGN.md's target.\n\n"
        f"![anomaly indices and erasure]({plot_name})"
    )


def reading_notes(results: dict[str, Any]) -> str:
    meta = results["meta"]
    return "\n".join(
        [
            "## How these numbers were made",
            "",
            (
                "- Each lab model is trained by `baerase_mlops.lab` on the dataset's training file; 20% of it "
                "(stratified, seeded) is held out as the lab test split, "
                "on which every accuracy and real ASR here is measured."
            ),
            (
                "- The defender's clean set is 5% of the lab model's training split (`jobs.prepare_clean_data`); "
                "each scan keeps 20% of it out of trigger recovery, "
                "for recovered-trigger ASR and the unlearning's stopping rule."
            ),
            (
                "- Per model: a BAERASE scan (`jobs.run_scan`, product defaults) from which BAERASE unlearning and "
                "fine-tuning run, and a Neural-Cleanse scan (`method=neural_cleanse`) from which NC unlearning runs; "
                "nothing a defence decides uses the attacker's trigger. All phases of a model run in the same "
                "process, one after another, so their times compare."
            ),
            (
                "- Seeds: the seed sets the target class, the trigger's position, pixels and (WaNet) field, the blend "
                "ratio, the lab's split, initialisation and data order, the clean subset, the scans and the unlearning."
            ),
            f"- BAERASE scan (the latest shard's settings): `{meta['scan_config']}`.",
            scheduled_note(results["runs"]),
            f"- Unlearning: `{meta['unlearning_config']}`.",
        ]
    )


def scheduled_note(runs: list[Run]) -> str:
    """How many BAERASE scans ran under the class schedule (their classes got unequal steps):
    shards ran with different defaults, and each record keeps its own steps."""
    scans = [r["scans"]["baerase"] for r in ok_runs(runs) if "baerase" in r.get("scans", {})]
    scheduled = sum(1 for s in scans if len(set(s.get("class_steps") or [0])) > 1)
    return (
        f"- {scheduled} of {len(scans)} BAERASE scans ran under the class schedule (`screen_steps=100`, classes "
        "stopped early: unequal steps per class in the JSON); the rest gave every class the whole budget."
    )


def failures(runs: list[Run]) -> str:
    failed = [r for r in runs if r.get("error")]
    if not failed:
        return ""
    lines = ["## Failed runs (in the JSON with their tracebacks; not counted above)", ""]
    lines += [f"- {r['key']}: {r['error']}" for r in failed]
    return "\n".join(lines)


__all__ = ["DEFENCE_NAMES", "median", "render"]
