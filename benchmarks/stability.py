"""``python -m benchmarks.stability TABLE.json --seeds 1000,2000 --out FILE.jsonl``: does a model's
verdict flip with the scan's seed? (issue "Detection", item 2: the flip rate over 3 seeds.)

Every completed run of the table (``--archs``/``--cases`` narrow it) is scanned again at each extra
seed, on the very model it was run on (its cache file) and the same clean images, with the product's
default scan (``--method`` for the NC mode). The table's own scan is the first seed: it was made by
its shard's code and settings (recorded in the table), so on a table of an older engine or of a
shortened profile a "flip" can be that difference, not the seed. One JSON line per rescan goes to
``--out`` (appended, so a stopped probe keeps what it did; a model, method and seed already there is
not scanned again); then a summary table is printed.

A model's verdict is what the gate acts on: for a backdoored model whether the attacker's class is
flagged, for a clean one whether anything is. It flips when its seeds do not all agree. Models whose
attack did not take are left out, as in the table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from benchmarks.aggregate import Run, counted, group, rate
from benchmarks.cases import CASES
from benchmarks.lines import emit
from benchmarks.rescan import rescan


def verdict(scan: dict[str, Any], target: int | None) -> bool:
    """The gate's outcome: the attacker's class flagged (backdoored model), or anything flagged (clean)."""
    return target in scan["flagged"] if target is not None else bool(scan["flagged"])


def done_before(out: Path | None, method: str) -> dict[tuple[str, int], dict[str, Any]]:
    """The rescans of ``method`` already in ``out``, by (model file, seed); lines of other
    settings (a ``benchmarks.rescan`` line with more than a seed changed) are not this probe's."""
    if out is None or not out.is_file():
        return {}
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {
        (line["model"], line["recovery"]["seed"]): line
        for line in lines
        if line.get("method") == method and set(line.get("recovery", {})) == {"seed"}
    }


def flips(runs: list[Run], rescans: dict[tuple[str, int], dict[str, Any]], method: str, seeds: list[int]) -> list[Run]:
    """Per run: its verdict at its own seed and at each extra one (None where a rescan is missing)."""
    rows = []
    for r in runs:
        target = r["target"] if r["backdoored"] else None
        verdicts = [verdict(r["scans"][method], target)]
        verdicts += [
            verdict(rescans[(r["lab"]["model_file"], s)], target) if (r["lab"]["model_file"], s) in rescans else None
            for s in seeds
        ]
        rows.append({**r, "verdicts": verdicts})
    return rows


def summary(rows: list[Run], seeds: list[int], method: str) -> str:
    """Flip rate per dataset × architecture × attack, and over all, with Wilson intervals."""
    complete = [r for r in rows if None not in r["verdicts"]]
    lines = [
        f"Verdict stability of the {method} scan: its own seed and {', '.join(map(str, seeds))} "
        f"({len(complete)} of {len(rows)} models scanned at every seed)",
        "",
        "| dataset | arch | attack | models | verdicts (1 = flagged right / anything, per seed) | flipped |",
        "|---|---|---|---|---|---|",
    ]
    for (dataset, arch, case), cell in group(complete, "dataset", "arch", "case").items():
        shown = " ".join("".join(str(int(v)) for v in r["verdicts"]) for r in cell)
        flipped = sum(1 for r in cell if len(set(r["verdicts"])) > 1)
        lines.append(f"| {dataset} | {arch} | {CASES[case][1]} | {len(cell)} | {shown} | {flipped}/{len(cell)} |")
    flipped = sum(1 for r in complete if len(set(r["verdicts"])) > 1)
    lines += ["", f"Flip rate: {rate(flipped, len(complete))} of models."]
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("table", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seeds", required=True, help="Extra scan seeds (comma-separated integers).")
@click.option("--method", type=click.Choice(["baerase", "neural_cleanse"]), default="baerase", show_default=True)
@click.option("--archs", default=None, help="Only these architectures (comma-separated).")
@click.option("--cases", default=None, help="Only these cases (comma-separated).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="JSON lines of the rescans (appended).")
def main(
    table: Path, seeds: str, method: str, archs: str | None, cases: str | None, device: str, out: Path | None
) -> None:
    try:
        extra = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {seeds!r}", param_hint="--seeds") from None
    runs = [
        r
        for r in counted(json.loads(table.read_text())["runs"])
        if (not archs or r["arch"] in archs.split(","))
        and (not cases or r["case"] in cases.split(","))
        and method in r["scans"]
    ]
    rescans = done_before(out, method)
    for r in runs:
        path = r["lab"]["model_file"]
        for seed in extra:
            if (path, seed) in rescans:
                continue
            if not Path(path).is_file():
                click.echo(f"{path}: not in the cache, skipped", err=True)
                break
            line = rescan(Path(path), {"seed": seed}, method, device)
            emit(line, out)
            rescans[(path, seed)] = line
    click.echo(summary(flips(runs, rescans, method, extra), extra, method))


if __name__ == "__main__":
    main()
