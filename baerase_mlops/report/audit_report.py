"""An audit, rendered: a rich table, JSON, Markdown, or SARIF 2.1.0 for CI systems."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from baerase_mlops import __version__
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.audit import FINDINGS, AuditRow
from baerase_mlops.report.console import percent
from baerase_mlops.report.tables import markdown_table

FORMATS = ("table", "json", "sarif", "markdown")
HEADERS = ("version", "aliases", "verdict", "anomaly index", "flagged", "ASR", "accuracy", "lineage", "scanned at")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _pair(row: AuditRow, before: str, after: str) -> str:
    first, second = row.number(before), row.number(after)
    if first is None and second is None:
        return ""
    return percent(first) if second is None else f"{percent(first)} -> {percent(second)}"


def _lineage(row: AuditRow) -> str:
    parts = []
    if row.info.tags.get(T.SOURCE_VERSION):
        parts.append(f"from v{row.info.tags[T.SOURCE_VERSION]}")
    if row.info.tags.get(T.CLEANED_VERSION):
        parts.append(f"cleaned: v{row.info.tags[T.CLEANED_VERSION]}" + ("" if row.successor else " (deleted)"))
    return "; ".join(parts)


def _cells(row: AuditRow) -> list[str]:
    scanned = row.info.recorded.verdict is not None
    index = row.number(T.ANOMALY_INDEX)
    verdict = row.verdict + ("" if row.current or not scanned else " (stale)")
    if row.verdict == "error":
        verdict += f": {row.info.tags.get(T.ERROR, '')}"
    return [
        f"{row.info.name}/{row.info.version}",
        ", ".join(row.info.aliases),
        verdict,
        "" if index is None else f"{index:.2f}",
        ", ".join(str(c) for c in row.flagged_classes()),
        _pair(row, T.ASR_BEFORE, T.ASR_AFTER),
        _pair(row, T.ACCURACY_BEFORE, T.ACCURACY_AFTER),
        _lineage(row),
        row.info.tags.get(T.SCANNED_AT, "")[:16].replace("T", " ") if scanned else "",
    ]


def audit_table(rows: list[AuditRow]) -> Table:
    table = Table(title=f"baerase audit ({len(rows)} versions)", title_justify="left")
    for header in HEADERS:
        table.add_column(header)
    styles = {"backdoor": "bold red", "not-scanned": "dim", "stale": "dim"}
    for row in rows:
        table.add_row(*_cells(row), style=styles.get(row.finding or "", "yellow" if row.finding else None))
    return table


def audit_json(rows: list[AuditRow]) -> str:
    return json.dumps({"tool_version": __version__, "versions": [_json_row(row) for row in rows]}, indent=2) + "\n"


def _json_row(row: AuditRow) -> dict[str, Any]:
    return {
        "model": row.info.name,
        "version": row.info.version,
        "uri": row.info.uri,
        "aliases": list(row.info.aliases),
        "verdict": row.verdict,
        "current": row.current,
        "finding": row.finding,
        "successor": row.successor,
        "anomaly_index": row.number(T.ANOMALY_INDEX),
        "flagged_classes": row.flagged_classes(),
        "asr_before": row.number(T.ASR_BEFORE),
        "asr_after": row.number(T.ASR_AFTER),
        "accuracy_before": row.number(T.ACCURACY_BEFORE),
        "accuracy_after": row.number(T.ACCURACY_AFTER),
        "tags": row.info.recorded.tags,
    }


def audit_markdown(rows: list[AuditRow]) -> str:
    return f"# baerase audit\n\n{len(rows)} versions, tool version {__version__}\n\n" + markdown_table(
        HEADERS, [_cells(row) for row in rows]
    )


def audit_sarif(rows: list[AuditRow]) -> str:
    """SARIF 2.1.0: one rule per kind of finding, one result per version with a finding.
    A version is located by its registry URI (a logical location, and as the artifact URI)."""
    rule_ids = list(FINDINGS)
    rules = [
        {
            "id": f"baerase/{rule}",
            "name": rule.title().replace("-", ""),
            "shortDescription": {"text": text},
            "defaultConfiguration": {"level": level},
        }
        for rule, (level, text) in FINDINGS.items()
    ]
    results = [_sarif_result(row, rule_ids) for row in rows if row.finding is not None]
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "baerase", "version": __version__, "rules": rules}}, "results": results}],
    }
    return json.dumps(log, indent=2) + "\n"


def _sarif_result(row: AuditRow, rule_ids: list[str]) -> dict[str, Any]:
    finding = row.finding
    level, text = FINDINGS[finding]
    detail = {
        "backdoor": (
            f"flagged class(es) {row.flagged_classes()}, anomaly index {row.info.tags.get(T.ANOMALY_INDEX, '?')}"
        ),
        "backdoor-cleaned": f"flagged class(es) {row.flagged_classes()}; cleaned version {row.successor}",
        "scan-error": row.info.tags.get(T.ERROR, ""),
        "not-scanned": "no baerase.verdict tag",
        "stale": (
            f"verdict {row.verdict} by baerase {row.info.tags.get(T.TOOL_VERSION, '?')}, "
            f"settings {row.info.tags.get(T.CONFIG_HASH, '?')}"
        ),
    }.get(finding, row.decision.reason)
    return {
        "ruleId": f"baerase/{finding}",
        "ruleIndex": rule_ids.index(finding),
        "level": level,
        "message": {"text": f"{row.info.uri} {text} ({detail})"},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": row.info.uri}},
                "logicalLocations": [
                    {
                        "name": f"{row.info.name}/{row.info.version}",
                        "fullyQualifiedName": row.info.uri,
                        "kind": "module",
                    }
                ],
            }
        ],
        "partialFingerprints": {"registryVersion/v1": row.info.uri},
        "properties": {"verdict": row.verdict, "current": row.current, "aliases": list(row.info.aliases)},
    }


def render_audit(rows: list[AuditRow], fmt: str) -> str | Table:
    """The audit in ``fmt``: a rich Table for ``table``, text for the others."""
    renderers = {"table": audit_table, "json": audit_json, "sarif": audit_sarif, "markdown": audit_markdown}
    return renderers[fmt](rows)
