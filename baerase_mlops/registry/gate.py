"""The promotion gate: an alias goes only on a version that passed.

Passed means a current verdict (this tool version, these settings) of ``clean``, or
``cleaned`` with the recorded ASR and accuracy drop within the policy's bounds. A version
without a current verdict is scanned first; a refusal leaves the alias where it was.
The same ``judge`` decides for ``baerase gate`` and for the webhook receiver's protected aliases.
"""

from __future__ import annotations

from dataclasses import dataclass

from baerase_mlops.config import GatePolicy
from baerase_mlops.core.runtime import Progress, no_progress
from baerase_mlops.errors import RegistryError, UsageError
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.job import JobOutcome, JobSettings
from baerase_mlops.registry.versions import VersionInfo, is_current, settings_for, version_info

# The one judging table. Every recorded state a version can be in, whether it passes the gate,
# and the audit's finding (None: nothing to say). The gate, the webhook's protected aliases and
# the audit all judge through ``evaluate``, so "passed" and "nothing to report" cannot disagree.
# States are checked in this order: a backdoor is reported even when its verdict is stale.
JUDGING: dict[str, tuple[bool, str | None]] = {
    "not-scanned": (False, "not-scanned"),
    "backdoor": (False, "backdoor"),  # and no cleaned version is registered
    "backdoor-cleaned": (False, "backdoor-cleaned"),  # a cleaned version is registered: promote that one
    "scan-error": (False, "scan-error"),
    "stale": (False, "stale"),  # by another tool version or with other settings
    "unknown-verdict": (False, "unknown-verdict"),
    "clean": (True, None),
    "cleaned": (True, None),  # within the policy's bounds
    "cleaned-outside-bounds": (False, "cleaned-outside-bounds"),
    "cleaned-unverified": (False, "cleaned-unverified"),  # its asr_after is not an independent re-scan's
}


@dataclass(frozen=True)
class Decision:
    passed: bool
    reason: str
    state: str  # the JUDGING row that decided

    @property
    def finding(self) -> str | None:
        return JUDGING[self.state][1]


@dataclass
class GateResult:
    model: str  # models:/name/N
    alias: str
    decision: Decision
    promoted: bool
    previous: str | None  # the version the alias pointed to before
    scan: JobOutcome | None = None  # the scan the gate ran first, if it had to


def _decided(state: str, reason: str) -> Decision:
    return Decision(JUDGING[state][0], reason, state)


def evaluate(info: VersionInfo, current: bool, policy: GatePolicy, successor: str | None = None) -> Decision:
    """Whether ``info``'s recorded verdict lets it through, why (or why not), and its JUDGING state.
    ``successor`` is its cleaned version where the caller checked it is registered (the audit);
    by default, the one its tag names."""
    verdict, tag = info.recorded.verdict, info.tags.get
    if verdict is None:
        return _decided("not-scanned", f"{info.uri} was never scanned")
    if verdict == "backdoor":
        cleaned = successor or info.tags.get(T.CLEANED_VERSION)
        hint = (
            f"; its cleaned version is models:/{info.name}/{cleaned}: gate that one"
            if cleaned
            else "; no cleaned version was registered"
        )
        found = (
            f"{info.uri} carries a backdoor (flagged classes {tag(T.FLAGGED_CLASSES, '?')}, "
            f"anomaly index {tag(T.ANOMALY_INDEX, '?')})"
        )
        return _decided("backdoor-cleaned" if cleaned else "backdoor", found + hint)
    if verdict == "error":
        return _decided("scan-error", f"the scan of {info.uri} failed: {info.tags.get(T.ERROR, 'no reason recorded')}")
    if not current:
        by = f"by baerase {tag(T.TOOL_VERSION, '?')} with other settings"
        return _decided("stale", f"{info.uri} has a stale verdict ({verdict}, {by}): scan it again")
    if verdict == "clean":
        advisory = f"; {info.tags[T.ADVISORY]}" if T.ADVISORY in info.tags else ""
        return _decided(
            "clean", f"no backdoor found in {info.uri} (anomaly index {tag(T.ANOMALY_INDEX, '?')}{advisory})"
        )
    if verdict == "cleaned":
        return _within_bounds(info, policy)
    return _decided("unknown-verdict", f"{info.uri} has an unknown verdict {verdict!r}")


def _within_bounds(info: VersionInfo, policy: GatePolicy) -> Decision:
    recorded = info.recorded
    asr, before, after = (
        recorded.number(T.ASR_AFTER),
        recorded.number(T.ACCURACY_BEFORE),
        recorded.number(T.ACCURACY_AFTER),
    )
    outside = "cleaned-outside-bounds"
    if asr is None or before is None or after is None:
        return _decided(outside, f"{info.uri} is a cleaned version without its ASR and accuracy tags")
    if info.tags.get(T.ASR_KIND) != "verified":
        return _decided(
            "cleaned-unverified", f"{info.uri} is a cleaned version whose ASR was not verified by an independent scan"
        )
    if asr > policy.max_asr:
        return _decided(outside, f"{info.uri} was cleaned, but its ASR {asr:.2%} exceeds {policy.max_asr:.2%}")
    if before - after > policy.max_accuracy_drop + 1e-9:
        lost = f"lost {before - after:.2%} accuracy (at most {policy.max_accuracy_drop:.2%})"
        return _decided(outside, f"{info.uri} was cleaned, but {lost}")
    source = info.tags.get(T.SOURCE_VERSION, "?")
    return _decided(
        "cleaned", f"{info.uri} was cleaned from version {source}: ASR {asr:.2%}, accuracy {before:.2%} -> {after:.2%}"
    )


def judge(info: VersionInfo, base: JobSettings, policy: GatePolicy, data_override: str | None = None) -> Decision:
    """``evaluate`` with the currency of the verdict under ``base`` (data URI resolved per version)."""
    return evaluate(info, is_current(settings_for(base, info, data_override), info), policy)


def check_alias(alias: str) -> None:
    """Refuse an alias the registry would refuse, before any scan."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_alias_name, _validate_model_alias_name_reserved

    try:
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
    except MlflowException as exc:
        raise UsageError(f"--alias {alias!r}: {exc.message}") from None


def run_gate(
    client,
    model_uri: str,
    alias: str,
    base: JobSettings,
    policy: GatePolicy = GatePolicy(),
    data_override: str | None = None,
    erase: bool = True,
    progress: Progress = no_progress,
) -> GateResult:
    """Scan ``model_uri`` if its verdict is not current (erasing a found backdoor when ``erase``),
    then set ``alias`` on it if it passed; otherwise leave the alias alone."""
    from baerase_mlops.registry.job import run_job
    from baerase_mlops.registry.resolve import resolve_model_uri

    check_alias(alias)
    ref = resolve_model_uri(model_uri, client)
    if not ref.registered:
        raise UsageError(
            f"{model_uri}: the gate promotes registry versions (models:/name/N or models:/name@alias), "
            f"not {ref.kind} models"
        )
    info = version_info(client, ref.name, ref.version)
    settings = settings_for(base, info, data_override)
    scan = None
    if not is_current(settings, info):
        scan = run_job(settings, "main" if erase else "scan", progress)
        info = version_info(client, ref.name, ref.version)
    decision = evaluate(info, is_current(settings, info), policy)
    previous = _alias_holder(client, ref.name, alias)
    if decision.passed and previous != ref.version:
        client.set_registered_model_alias(ref.name, alias, ref.version)
    return GateResult(info.uri, alias, decision, decision.passed, previous, scan)


def _alias_holder(client, name: str, alias: str) -> str | None:
    """The version ``alias`` points to, None when it points nowhere; an outage is a RegistryError, not "no alias"."""
    from mlflow.exceptions import MlflowException

    from baerase_mlops.registry.resolve import is_not_found

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise RegistryError(f"registry error reading alias {alias!r} of {name!r}: {exc.message}") from exc
