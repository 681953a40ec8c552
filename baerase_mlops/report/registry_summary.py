"""The summary of a registry scan: JSON for machines, Markdown and HTML for people."""

from __future__ import annotations

import json
from pathlib import Path

from baerase_mlops import __version__
from baerase_mlops.report.tables import html_page, markdown_table

HEADERS = ("version", "action", "verdict", "cleaned version", "seconds", "summary")


def summary_rows(result) -> list[dict[str, object]]:
    """One row per matched version: scanned now, or skipped and why."""
    rows = [
        {
            "version": r.model,
            "action": r.action,
            "verdict": r.verdict or "",
            "cleaned_version": r.new_version or "",
            "seconds": round(r.seconds, 1),
            "summary": r.summary,
        }
        for r in result.results
    ]
    rows += [
        {
            "version": v.uri,
            "action": "skipped",
            "verdict": v.recorded.verdict or "",
            "cleaned_version": v.tags.get("baerase.cleaned_version", ""),
            "seconds": 0,
            "summary": "verdict is current for this tool version and settings",
        }
        for v in result.plan.current
    ]
    rows += [
        {
            "version": v.uri,
            "action": "skipped",
            "verdict": "",
            "cleaned_version": "",
            "seconds": 0,
            "summary": f"status {v.status}: not READY",
        }
        for v in result.plan.not_ready
    ]
    return sorted(rows, key=lambda row: str(row["version"]))


def write_registry_summary(result, out_dir: Path) -> dict[str, Path]:
    """``summary.json``, ``summary.md`` and ``summary.html`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(result)
    counts = result.counts()
    document = {
        "tool_version": __version__,
        "filter": result.filter,
        "executor": result.executor,
        "started_at": result.started_at,
        "seconds": round(result.seconds, 1),
        "run_id": result.run_id,
        "counts": counts,
        "open_backdoors": result.open_backdoors(),
        "versions": rows,
    }
    intro = (
        f"filter {result.filter or '(all models)'}, executor {result.executor}, started {result.started_at}, "
        f"{result.seconds:.0f} s; " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    table = [
        [row["version"], row["action"], row["verdict"], row["cleaned_version"], row["seconds"], row["summary"]]
        for row in rows
    ]
    files = {"json": out_dir / "summary.json", "markdown": out_dir / "summary.md", "html": out_dir / "summary.html"}
    files["json"].write_text(json.dumps(document, indent=2) + "\n")
    files["markdown"].write_text(f"# baerase registry scan\n\n{intro}\n\n" + markdown_table(HEADERS, table))
    files["html"].write_text(html_page("baerase registry scan", intro, HEADERS, table))
    return files
