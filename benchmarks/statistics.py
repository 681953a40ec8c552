"""``python -m benchmarks.statistics RESULTS.json ...``: the detection statistics weighed on recorded scans.

Every benchmark run records each class's smallest trigger size (``norms``) and, since the
margin test, its maximum logit margin (``margins``). This recomputes, from those numbers alone,
the candidates the default was chosen among, so the choice can be checked and redone without
scanning anything again:

- ``raw, floor 0.2, t=2``: the earlier default (raw-L1 MAD, floor 20% of the median);
- ``raw, t=2``: Neural Cleanse as published;
- ``log, floor 0.15, t=3``: log sizes (ratios to the median), a lower floor and threshold;
- ``log, floor 0.2, t=3, MAD of every class``: the default until the class schedule;
- ``log, floor 0.2, t=3, MAD of the lower half, mean of the middle two``: the default until the
  lower median (the schedule stops the larger half early);
- ``..., lower median``: the default (a class the schedule stopped cannot move the centre);
- ``margin, floor 0.1`` and ``margin, floor 0.25`` (the default), t=3: the maximum-margin test alone;
- ``log + margin``: the default verdict (either flags).

A MAD of every class needs every class optimised in full: it is not weighed on scans whose
class schedule stopped some classes early (their sizes are upper bounds).

Per candidate: backdoors whose attacker's class is flagged (attacks that took), clean models
with any class flagged, and the separation (the smallest target index against the largest
clean one). Markdown on stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from baerase_mlops.config import DetectionConfig, MarginConfig
from baerase_mlops.core.detection import AnomalyDetector
from baerase_mlops.core.margins import margin_indices

Run = dict[str, Any]
# name -> (flagged classes, index per class) from a scan record
Candidate = Callable[[dict[str, Any]], tuple[list[int], list[float]] | None]


def size_test(config: DetectionConfig) -> Candidate:
    def flag(scan: dict[str, Any]) -> tuple[list[int], list[float]] | None:
        steps = scan.get("class_steps") or []
        if config.spread == "both" and len(set(steps)) > 1:
            return None  # the class schedule stopped the larger half early: their sizes are upper bounds
        d = AnomalyDetector(config).detect(scan["norms"], scan.get("weights"))
        below = [v < d.median for v in scan["norms"]]  # signed: the test is one-sided
        return d.flagged, [i if b else -i for i, b in zip(d.indices, below)]

    return flag


def margin_test(config: MarginConfig = MarginConfig(), threshold: float = DetectionConfig.threshold) -> Candidate:
    def flag(scan: dict[str, Any]) -> tuple[list[int], list[float]] | None:
        margins = scan.get("margins")
        if not margins or any(m is None for m in margins):
            return None
        indices, _, _ = margin_indices(margins, config.consistency, config.min_mad)
        return [k for k, v in enumerate(indices) if v > threshold], indices

    return flag


def either(a: Candidate, b: Candidate) -> Candidate:
    def flag(scan: dict[str, Any]) -> tuple[list[int], list[float]] | None:
        fa, fb = a(scan), b(scan)
        if fa is None or fb is None:
            return None
        return sorted(set(fa[0]) | set(fb[0])), [max(x, y) for x, y in zip(fa[1], fb[1])]

    return flag


_SIZE, _MARGIN = DetectionConfig(), MarginConfig()  # the defaults, named by their values below
CANDIDATES: dict[str, Candidate] = {
    "raw, floor 0.2, t=2": size_test(
        DetectionConfig(threshold=2.0, scale="raw", spread="both", min_relative_mad=0.2, centre="mid")
    ),
    "raw, t=2": size_test(
        DetectionConfig(threshold=2.0, scale="raw", spread="both", min_relative_mad=0.0, centre="mid")
    ),
    "log, floor 0.15, t=3": size_test(
        DetectionConfig(threshold=3.0, spread="both", min_relative_mad=0.15, centre="mid")
    ),
    "log, floor 0.2, t=3, MAD of every class": size_test(DetectionConfig(threshold=3.0, spread="both", centre="mid")),
    "log, floor 0.2, t=3, MAD of the lower half, mean of the middle two": size_test(replace(_SIZE, centre="mid")),
    f"log, floor {_SIZE.min_relative_mad:g}, t={_SIZE.threshold:g}, MAD of the lower half, lower median "
    "(size default)": size_test(_SIZE),
    "margin, floor 0.1, t=3": margin_test(MarginConfig(min_mad=0.1), threshold=3.0),
    f"margin, floor {_MARGIN.min_mad:g}, t={_SIZE.threshold:g} (margin default)": margin_test(_MARGIN),
    "log + margin (the default verdict)": either(size_test(_SIZE), margin_test(_MARGIN)),
}


def load_runs(paths: list[Path], scan: str) -> list[Run]:
    """Runs with a ``scan`` record whose attack took (or clean), the latest per key within a file
    (files hold different models: the earlier cpu profile trained 1 epoch where the zoo trains 2)."""
    runs: list[Run] = []
    for path in paths:
        runs += usable_runs(json.loads(path.read_text())["runs"], scan, prefix=path.name + ":")
    return runs


def usable_runs(records: list[Run], scan: str, prefix: str = "") -> list[Run]:
    """The runs of one result file the candidates can be weighed on (no error, a ``scan`` record
    with its sizes, the attack took or the model is clean), each with that record as ``_scan``;
    the latest per key."""
    runs: dict[str, Run] = {}
    for r in records:
        record = (r.get("scans") or {}).get(scan) or (r.get("scan") if scan == "baerase" else None)
        if r.get("error") or not record or not record.get("norms") or (r["backdoored"] and r.get("took") is False):
            continue
        key = r.get("key") or f"{r['dataset']}/{r.get('arch', 'small_cnn')}/{r['case']}/seed{r['seed']}"
        runs[prefix + key] = {**r, "_scan": record}
    return list(runs.values())


def evaluate(runs: list[Run], candidate: Candidate) -> dict[str, Any]:
    hits = clean_flagged = bad = clean = 0
    target_min, clean_max = float("inf"), float("-inf")
    for r in runs:
        result = candidate(r["_scan"])
        if result is None:
            continue
        flagged, indices = result
        if r["backdoored"]:
            bad += 1
            hits += r["target"] in flagged
            target_min = min(target_min, indices[r["target"]])
        else:
            clean += 1
            clean_flagged += bool(flagged)
            clean_max = max(clean_max, max(indices))
    return {
        "hits": hits,
        "bad": bad,
        "fp": clean_flagged,
        "clean": clean,
        "target_min": target_min,
        "clean_max": clean_max,
    }


def table(runs: list[Run]) -> str:
    columns = ["statistic", "backdoors flagged, right class", "clean models flagged", "smallest target index"]
    lines = ["| " + " | ".join([*columns, "largest clean index"]) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, candidate in CANDIDATES.items():
        e = evaluate(runs, candidate)
        if not e["bad"] and not e["clean"]:
            lines.append(f"| {name} | (not recorded, or not applicable to these scans) | | | |")
            continue
        cells = [name, f"{e['hits']}/{e['bad']}", f"{e['fp']}/{e['clean']}", f"{e['target_min']:.2f}"]
        lines.append("| " + " | ".join([*cells, f"{e['clean_max']:.2f}"]) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 0 if argv else 4
    missing = [a for a in argv if not Path(a).is_file()]
    if missing:
        print(f"error: no such results file: {', '.join(missing)}", file=sys.stderr)
        return 4
    runs = load_runs([Path(a) for a in argv], "baerase")
    datasets = sorted({r["dataset"] for r in runs})
    print(f"{len(runs)} runs ({', '.join(datasets)}) from {', '.join(argv)}\n")
    print(table(runs))
    for dataset in datasets:
        print(f"\n{dataset}:\n")
        print(table([r for r in runs if r["dataset"] == dataset]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
