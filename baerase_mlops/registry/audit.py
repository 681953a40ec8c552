"""``baerase audit``: what the registry records about each version, read back, judged, never changed.

A version with no ``baerase.verdict`` tag was never scanned (or a scan stopped half-way) and
is reported as such, never as clean. A verdict written by another tool version or with other
settings is shown, marked stale.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from baerase_mlops.errors import ExitCode, NothingToScanError, UsageError
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.job import JobSettings
from baerase_mlops.registry.versions import VersionInfo, is_current, model_versions, settings_for, version_info, walk_registry

NOT_SCANNED = "not scanned"
_WHOLE_MODEL = re.compile(r"^models:/(?P<name>[^/@]+)/?$")

# Findings, from worst to mildest: (id, SARIF level, what it means)
FINDINGS = {
    "backdoor": ("error", "carries a backdoor and no cleaned version of it is registered"),
    "backdoor-cleaned": ("warning", "carries a backdoor; a cleaned version is registered: promote that one"),
    "scan-error": ("warning", "the scan could not judge the model"),
    "not-scanned": ("warning", "never scanned: nothing is known about a backdoor"),
    "stale": ("note", "the verdict was written by another tool version or with other settings"),
}


@dataclass(frozen=True)
class AuditRow:
    info: VersionInfo
    current: bool  # the verdict is current for this tool version and the audit's settings
    successor: str | None  # the cleaned version, when it is registered

    @property
    def verdict(self) -> str:
        return self.info.recorded.verdict or NOT_SCANNED

    @property
    def finding(self) -> str | None:
        """The worst thing to say about this version, or None when there is nothing to say."""
        verdict = self.info.recorded.verdict
        if verdict is None:
            return "not-scanned"
        if verdict == "backdoor":
            return "backdoor-cleaned" if self.successor else "backdoor"
        if verdict == "error":
            return "scan-error"
        return None if self.current else "stale"

    def number(self, tag: str) -> float | None:
        return self.info.recorded.number(tag)

    def flagged_classes(self) -> list[int]:
        try:
            return list(json.loads(self.info.tags.get(T.FLAGGED_CLASSES, "[]")))
        except ValueError:
            return []


def audit_versions(client, target: str | None, registry: bool, base: JobSettings, filter_string: str | None = None, data_override: str | None = None, page_size: int = 100) -> list[AuditRow]:
    """Rows for ``target`` (``models:/name`` for every version, or one version's URI), or for
    the whole registry (``registry``, optionally filtered)."""
    if registry == (target is not None):
        raise UsageError("give a model URI or --registry, not both" if registry else "give a model URI (models:/name, models:/name/N, models:/name@alias) or --registry")
    if filter_string and not registry:
        raise UsageError("--filter selects registered models: use it with --registry")
    versions = walk_registry(client, filter_string, page_size) if registry else _target_versions(client, target)
    if not versions:
        raise NothingToScanError(f"nothing to audit: {'no version matches ' + repr(filter_string) if filter_string else 'no model versions'}")
    known = {(v.name, v.version) for v in versions}
    return [AuditRow(v, is_current(settings_for(base, v, data_override), v), _successor(client, v, known)) for v in versions]


def audit_exit_code(rows: list[AuditRow], strict: bool = False) -> ExitCode:
    """1 when a version carries a backdoor with no cleaned successor (``strict``: any finding
    but a stale verdict, i.e. also never scanned or failed scans), else 0."""
    findings = {row.finding for row in rows}
    failing = {"backdoor"} | ({"backdoor-cleaned", "scan-error", "not-scanned"} if strict else set())
    return ExitCode.BACKDOOR if findings & failing else ExitCode.PASSED


def _target_versions(client, target: str) -> list[VersionInfo]:
    from baerase_mlops.registry.resolve import resolve_model_uri

    whole = _WHOLE_MODEL.match(target.strip())
    if whole:
        return model_versions(client, whole["name"])
    ref = resolve_model_uri(target, client)
    if not ref.registered:
        raise UsageError(f"{target}: audit reads registry versions (models:/...), not {ref.kind} models")
    return [version_info(client, ref.name, ref.version)]


def _successor(client, info: VersionInfo, known: set[tuple[str, str]]) -> str | None:
    """The cleaned version this one points to, if it is (still) registered."""
    cleaned = info.tags.get(T.CLEANED_VERSION)
    if not cleaned:
        return None
    if (info.name, cleaned) in known:
        return cleaned
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(info.name, cleaned)
    except MlflowException:
        return None
    return cleaned
