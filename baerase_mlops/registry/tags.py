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
REAL_ASR_AFTER = PREFIX + "real_asr_after"  # the lab trigger's ASR on a cleaned version, reported only
# On a scanned version whose erasure ran but registered nothing: "failed_verification" or
# "not_reached", and why (the version stays "backdoor").
ERASURE = PREFIX + "erasure"
ERASURE_REASON = PREFIX + "erasure_reason"
DATA_URI = PREFIX + "data_uri"  # the clean data of the last scan, so a gate can scan again
RUN_ID = PREFIX + "run_id"  # the MLflow run that holds the report
ERROR = PREFIX + "error"  # why a scan could not judge the model (verdict "error")


def config_hash(settings: dict[str, Any]) -> str:
    """A short, stable hash of everything that changes a verdict (not of where it is written)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


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
        return self.verdict is not None and self.tags.get(TOOL_VERSION) == tool_version and self.tags.get(CONFIG_HASH) == settings_hash

    def number(self, tag: str) -> float | None:
        value = self.tags.get(tag, "")
        try:
            return float(value) if value != "" else None
        except ValueError:
            return None


def read_verdict(tags: dict[str, str]) -> RecordedVerdict:
    return RecordedVerdict({k: v for k, v in tags.items() if k.startswith(PREFIX)})


def current_tool_version() -> str:
    return __version__
