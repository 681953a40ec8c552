"""The ``baerase.*`` registry tags of DESIGN.md, and what makes a verdict current.

``baerase.verdict`` is written last on every version: a version carrying the other tags
but not the verdict (a crash half-way) reads as never scanned.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from baerase_mlops import __version__

PREFIX = "baerase."
VERDICT = PREFIX + "verdict"
VERDICTS = ("clean", "backdoor", "cleaned", "error")

# Tags written on a scanned version, then on a cleaned one (DESIGN.md, "Registry tags").
ANOMALY_INDEX = PREFIX + "anomaly_index"
FLAGGED_CLASSES = PREFIX + "flagged_classes"
ASR_BEFORE = PREFIX + "asr_before"
ASR_AFTER = PREFIX + "asr_after"
ACCURACY_BEFORE = PREFIX + "accuracy_before"
ACCURACY_AFTER = PREFIX + "accuracy_after"
SOURCE_VERSION = PREFIX + "source_version"
CLEANED_VERSION = PREFIX + "cleaned_version"
SCANNED_AT = PREFIX + "scanned_at"
TOOL_VERSION = PREFIX + "tool_version"
CONFIG_HASH = PREFIX + "config_hash"
# Beyond the contract: what a later gate or audit needs to read a verdict right.
# Of asr_after on a cleaned version: "verified" (the independent re-scan's number; the only kind
# the gate accepts there); of asr_before: "real" (the lab's trigger is known) or "recovered".
ASR_KIND = PREFIX + "asr_kind"
# The maximum-margin and warp tests' indices of the model (each its most anomalous class), beside
# the size test's anomaly_index, and per flagged class which evidence flagged it ({"8": "size+warp"}).
MARGIN_INDEX = PREFIX + "margin_index"
WARP_INDEX = PREFIX + "warp_index"
FLAGGED_BY = PREFIX + "flagged_by"
# Beside a verified asr_after: how many held-out images it is measured on, and its 95% Wilson
# upper bound (a verified 0 on 18 images rules out no more than about 18%).
ASR_AFTER_IMAGES = PREFIX + "asr_after_images"
ASR_AFTER_UPPER = PREFIX + "asr_after_upper95"
REAL_ASR_AFTER = PREFIX + "real_asr_after"  # the lab trigger's ASR on a cleaned version, reported only
# On a scanned version whose erasure ran but registered nothing: "failed_verification" or
# "not_reached", and why (the version stays "backdoor").
ERASURE = PREFIX + "erasure"
ERASURE_REASON = PREFIX + "erasure_reason"
DATA_URI = PREFIX + "data_uri"  # the clean data of the last scan, so a gate can scan again
RUN_ID = PREFIX + "run_id"  # the MLflow run that holds the report
ERROR = PREFIX + "error"  # why a scan could not judge the model (verdict "error")
# How strong the scan was, so that a weaker one cannot overwrite it (verdict precedence).
RECOVERY_STEPS = PREFIX + "recovery_steps"
THRESHOLD = PREFIX + "threshold"
ADVISORY = PREFIX + "advisory"  # set when the scan ran below the documented minimum: why
# Written by the alias guard, not by a scan: kept when a rescan replaces the scan's tags.
ALIAS_REFUSED = PREFIX + "alias_refused."


def config_hash(settings: dict[str, Any]) -> str:
    """A short, stable hash of everything that changes a verdict (not of where it is written)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def provenance(*, settings_hash: str, data_uri: str, run_id: str | None = None) -> dict[str, str]:
    """The tags that say when, by which tool version, with which settings and on which data a
    verdict was written: what ``RecordedVerdict.is_current`` and a later scan read back. Every
    writer of a verdict (the job, a recorded scan error) builds them here."""
    tags = {SCANNED_AT: now(), TOOL_VERSION: __version__, CONFIG_HASH: settings_hash, DATA_URI: data_uri}
    return tags | ({RUN_ID: run_id} if run_id else {})


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


@dataclass(frozen=True)
class RecordedVerdict:
    """The ``baerase.*`` tags of one version, as read back."""

    tags: dict[str, str]

    @property
    def verdict(self) -> str | None:
        return self.tags.get(VERDICT)

    def is_current(self, tool_version: str, settings_hash: str) -> bool:
        """A verdict counts only if this tool version wrote it with these settings."""
        return (
            self.verdict is not None
            and self.tags.get(TOOL_VERSION) == tool_version
            and self.tags.get(CONFIG_HASH) == settings_hash
        )

    def number(self, tag: str) -> float | None:
        value = self.tags.get(tag, "")
        try:
            return float(value) if value != "" else None
        except ValueError:
            return None


def scan_strength(tags: dict[str, str]) -> tuple[int, float]:
    """(recovery steps, threshold) a recorded verdict was written with; a verdict that does not
    record them (older tool versions) counts as written at the defaults."""
    from baerase_mlops.config import DetectionConfig, RecoveryConfig

    recorded = RecordedVerdict(tags)
    steps, threshold = recorded.number(RECOVERY_STEPS), recorded.number(THRESHOLD)
    return (
        int(steps) if steps is not None else RecoveryConfig.steps,
        threshold if threshold is not None else DetectionConfig.threshold,
    )


def weaker_than_recorded(steps: int, threshold: float, tags: dict[str, str]) -> bool:
    """A scan with ``steps`` and ``threshold`` is weaker than the one that wrote ``tags``:
    fewer recovery steps, or a higher (more lenient) threshold."""
    recorded_steps, recorded_threshold = scan_strength(tags)
    return steps < recorded_steps or threshold > recorded_threshold + 1e-12


def replace_tags(client, name: str, version: str, tags: dict[str, str], existing: dict[str, str]) -> None:
    """Make ``tags`` the version's whole ``baerase.*`` scan record: the old verdict goes first
    (a crash from here on leaves a version that reads as never scanned, never a verdict beside
    another run's numbers), then the new tags, then the old ones this run did not write are
    deleted (the alias guard's ``alias_refused.*`` notes stay), and the verdict comes last."""
    if VERDICT in existing:
        client.delete_model_version_tag(name, version, VERDICT)
    for key, value in tags.items():
        if key != VERDICT:
            client.set_model_version_tag(name, version, key, value)
    for key in sorted(existing):
        if key.startswith(PREFIX) and key not in tags and key != VERDICT and not key.startswith(ALIAS_REFUSED):
            client.delete_model_version_tag(name, version, key)
    if VERDICT in tags:
        client.set_model_version_tag(name, version, VERDICT, tags[VERDICT])


def read_verdict(tags: dict[str, str]) -> RecordedVerdict:
    return RecordedVerdict({k: v for k, v in tags.items() if k.startswith(PREFIX)})
