"""``baerase audit``: what the registry records about each version, read back, judged, never changed.

A version with no ``baerase.verdict`` tag was never scanned (or a scan stopped half-way) and
is reported as such, never as clean. A verdict written by another tool version or with other
settings is shown, marked stale.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from baerase_mlops.config import GatePolicy
from baerase_mlops.errors import ExitCode, NothingToScanError, RegistryError, UsageError
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.gate import Decision, evaluate
from baerase_mlops.registry.job import JobSettings
from baerase_mlops.registry.versions import (
    VersionInfo,
    is_current,
    model_versions,
    settings_for,
    version_info,
    walk_registry,
)

NOT_SCANNED = "not scanned"
DEFAULT_POLICY = GatePolicy()
_WHOLE_MODEL = re.compile(r"^models:/(?P<name>[^/@]+)/?$")

# The audit's findings (the non-None findings of registry.gate.JUDGING), from worst to mildest:
# id: (SARIF level, what it means).
FINDINGS = {
    "backdoor": ("error", "carries a backdoor and no cleaned version of it is registered"),
    "backdoor-cleaned": ("warning", "carries a backdoor; a cleaned version is registered: promote that one"),
    "cleaned-outside-bounds": ("warning", "a cleaned version whose ASR or accuracy loss is outside the gate's bounds"),
    "cleaned-unverified": (
        "warning",
        "a cleaned version whose ASR was not measured by an independent re-scan (asr_kind is not verified)",
    ),
    "scan-error": ("warning", "the scan could not judge the model"),
    "unknown-verdict": ("warning", "the baerase.verdict tag holds no verdict this tool knows"),
    "not-scanned": ("warning", "never scanned: nothing is known about a backdoor"),
    "stale": ("note", "the verdict was written by another tool version or with other settings"),
}


@dataclass(frozen=True)
class AuditRow:
    info: VersionInfo
    current: bool  # the verdict is current for this tool version and the audit's settings
    successor: str | None  # the cleaned version, when it is registered
    policy: GatePolicy = DEFAULT_POLICY  # what an alias holder must pass

    @property
    def verdict(self) -> str:
        return self.info.recorded.verdict or NOT_SCANNED

    @property
    def decision(self) -> Decision:
        """The gate's judgement of this version (the one judging table)."""
        return evaluate(self.info, self.current, self.policy, self.successor)

    @property
    def finding(self) -> str | None:
        """The worst thing to say about this version, or None when there is nothing to say."""
        return self.decision.finding

    @property
    def backdoor(self) -> bool:
        """The version's own verdict is backdoor, cleaned successor or not."""
        return self.info.recorded.verdict == "backdoor"

    @property
    def unguarded_alias(self) -> bool:
        """An alias points at this version although it has not passed the gate."""
        return bool(self.info.aliases) and not self.decision.passed

    def number(self, tag: str) -> float | None:
        return self.info.recorded.number(tag)

    def flagged_classes(self) -> list[int]:
        try:
            return list(json.loads(self.info.tags.get(T.FLAGGED_CLASSES, "[]")))
        except ValueError:
            return []


def audit_versions(
    client,
    target: str | None,
    registry: bool,
    base: JobSettings,
    filter_string: str | None = None,
    data_override: str | None = None,
    page_size: int = 100,
    policy: GatePolicy = DEFAULT_POLICY,
) -> list[AuditRow]:
    """Rows for ``target`` (``models:/name`` for every version, or one version's URI), or for
    the whole registry (``registry``, optionally filtered)."""
    if registry == (target is not None):
        raise UsageError(
            "give a model URI or --registry, not both"
            if registry
            else "give a model URI (models:/name, models:/name/N, models:/name@alias) or --registry"
        )
    if filter_string and not registry:
        raise UsageError("--filter selects registered models: use it with --registry")
    versions = walk_registry(client, filter_string, page_size) if registry else _target_versions(client, target)
    if not versions:
        raise NothingToScanError(
            f"nothing to audit: {'no version matches ' + repr(filter_string) if filter_string else 'no model versions'}"
        )
    known = {(v.name, v.version) for v in versions}
    return [
        AuditRow(v, is_current(settings_for(base, v, data_override), v), _successor(client, v, known), policy)
        for v in versions
    ]


def is_one_version(target: str | None) -> bool:
    """``target`` names one version (models:/name/N, @alias, /latest), not a whole model or the registry."""
    return target is not None and not _WHOLE_MODEL.match(target.strip())


def audit_exit_code(rows: list[AuditRow], strict: bool = False, *, one_version: bool = False) -> ExitCode:
    """1 (the CI answer "not safe") when:

    - one version was asked about (``one_version``) and its own verdict is backdoor, whether or
      not a cleaned version exists (the cleaned version is the one to ask about);
    - an alias points at a version that has not passed the gate;
    - a version carries a backdoor with no cleaned version;
    - ``strict``: any finding but a stale verdict (never scanned, a failed scan, a backdoored
      version even with a cleaned successor, a cleaned version outside the bounds).
    Else 0."""
    failing = any(
        (one_version and row.backdoor)
        or row.unguarded_alias
        or row.finding == "backdoor"
        or (strict and row.finding not in (None, "stale"))
        for row in rows
    )
    return ExitCode.BACKDOOR if failing else ExitCode.PASSED


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

    from baerase_mlops.registry.resolve import is_not_found

    try:
        client.get_model_version(info.name, cleaned)
    except MlflowException as exc:
        if is_not_found(exc):
            return None  # deleted since
        message = f"registry error looking up the cleaned version {cleaned} of {info.name!r}: {exc.message}"
        raise RegistryError(message) from exc
    return cleaned
