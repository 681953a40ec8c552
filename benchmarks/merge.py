"""Merge shards: every run of the zoo lands in one BENCHMARKS.json, keyed by its run key
(dataset/arch/case/seed). A re-run of a cell replaces that cell's run, never duplicates it,
but keeps the peer's scan of the same model that it did not repeat; every other run, and every
shard's provenance (command, machine, commit, times), is kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.cases import CASES
from benchmarks.suite import run_key


class MergeError(ValueError):
    """Two result files that cannot share a table (different profiles)."""


def sort_runs(runs: list[dict[str, Any]], dataset_order: list[str], arch_order: list[str]) -> list[dict[str, Any]]:
    """Dataset, architecture, case (CASES order), seed: the table's order, whatever order shards ran in."""
    cases = list(CASES)

    def pos(order: list[str], value: str) -> int:
        return order.index(value) if value in order else len(order)

    return sorted(
        runs,
        key=lambda r: (pos(dataset_order, r["dataset"]), pos(arch_order, r["arch"]), pos(cases, r["case"]), r["seed"]),
    )


def merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new``'s runs over ``old``'s: same key replaced, the rest kept; shards' meta appended."""
    if old is None:
        return new
    if old["meta"]["profile"] != new["meta"]["profile"]:
        raise MergeError(
            f"cannot merge a {new['meta']['profile']!r} run into a {old['meta']['profile']!r} table; pass another --out"
        )
    runs = {run_key(r): r for r in old["runs"]}
    replaced = [run_key(r) for r in new["runs"] if run_key(r) in runs]
    runs.update({run_key(r): keep_unrepeated_scans(runs.get(run_key(r)), r) for r in new["runs"]})
    # A shard's own file holds one shard; a merged file brings all of its shards along.
    *earlier, last = new["meta"]["shards"]
    meta = {**new["meta"], "shards": [*old["meta"]["shards"], *earlier, {**last, "replaced": replaced}]}
    dataset_order = list(dict.fromkeys([*old["meta"].get("dataset_order", []), *new["meta"].get("dataset_order", [])]))
    arch_order = list(dict.fromkeys([*old["meta"].get("arch_order", []), *new["meta"].get("arch_order", [])]))
    meta.update(dataset_order=dataset_order, arch_order=arch_order)
    # What is not a run (the cost against classes of benchmarks.cost) comes along; the newer wins.
    extra = {k: v for part in (old, new) for k, v in part.items() if k not in ("meta", "runs")}
    return {**extra, "meta": meta, "runs": sort_runs(list(runs.values()), dataset_order, arch_order)}


def keep_unrepeated_scans(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new``, with the scans of ``old`` it did not run again (the peer's, added by a ``--peer-only``
    shard) when both examined the same model (its cache key) on the same clean set: such a scan
    depends on nothing the re-run changed. Anything else of ``old`` is replaced."""
    if old is None or "scans" not in new or "scans" not in old:
        return new
    key = (new.get("lab") or {}).get("cache_key")
    if key is None or (old.get("lab") or {}).get("cache_key") != key or old.get("clean_set") != new.get("clean_set"):
        return new
    kept = {name: scan for name, scan in old["scans"].items() if name not in new["scans"]}
    return {**new, "scans": {**new["scans"], **kept}} if kept else new


def load_results(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return json.loads(path.read_text())
