"""The one judging table (registry.gate.JUDGING): the gate and the audit read a version's tags
through the same function, so "passed" and "nothing to report" cannot disagree."""

from __future__ import annotations

import pytest

from baerase_mlops.config import GatePolicy
from baerase_mlops.errors import ExitCode
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.audit import FINDINGS, AuditRow, audit_exit_code
from baerase_mlops.registry.gate import JUDGING, evaluate
from baerase_mlops.registry.versions import VersionInfo

BOUNDS = {T.ASR_AFTER: "0.004", T.ASR_KIND: "verified", T.ACCURACY_BEFORE: "0.98", T.ACCURACY_AFTER: "0.975"}
# (the tags of a version, whether its verdict is current, its registered cleaned version) per state
STATES = {
    "not-scanned": ({}, False, None),
    "backdoor": ({T.VERDICT: "backdoor", T.FLAGGED_CLASSES: "[3]"}, True, None),
    "backdoor-cleaned": ({T.VERDICT: "backdoor", T.CLEANED_VERSION: "2"}, True, "2"),
    "scan-error": ({T.VERDICT: "error", T.ERROR: "pickled model"}, True, None),
    "stale": ({T.VERDICT: "clean"}, False, None),
    "unknown-verdict": ({T.VERDICT: "maybe"}, True, None),
    "clean": ({T.VERDICT: "clean"}, True, None),
    "cleaned": ({T.VERDICT: "cleaned", **BOUNDS}, True, None),
    "cleaned-outside-bounds": ({T.VERDICT: "cleaned", **BOUNDS, T.ASR_AFTER: "0.3"}, True, None),
    "cleaned-unverified": ({T.VERDICT: "cleaned", **BOUNDS, T.ASR_KIND: "real"}, True, None),
}


def version(tags: dict[str, str], aliases: tuple[str, ...] = ()) -> VersionInfo:
    return VersionInfo("m", "1", "READY", tags, aliases)


def test_every_state_of_the_table_is_reachable():
    assert set(STATES) == set(JUDGING)


@pytest.mark.parametrize("state", list(JUDGING))
def test_gate_and_audit_judge_each_state_alike(state):
    tags, current, successor = STATES[state]
    decision = evaluate(version(tags), current, GatePolicy(), successor)
    row = AuditRow(version(tags), current, successor)
    assert decision.state == state
    assert (decision.passed, row.finding) == JUDGING[state]
    assert row.finding is None or row.finding in FINDINGS  # every finding has a SARIF level


@pytest.mark.parametrize("state", [s for s, (passed, _) in JUDGING.items() if not passed])
def test_an_alias_on_a_version_that_did_not_pass_fails_the_audit(state):
    tags, current, successor = STATES[state]
    row = AuditRow(version(tags, aliases=("champion",)), current, successor)
    assert audit_exit_code([row]) == ExitCode.BACKDOOR


def test_one_version_audit_fails_on_its_own_backdoor_even_when_cleaned():
    tags, current, successor = STATES["backdoor-cleaned"]
    row = AuditRow(version(tags), current, successor)
    assert audit_exit_code([row]) == ExitCode.PASSED  # in a registry: its cleaned version covers it
    assert audit_exit_code([row], one_version=True) == ExitCode.BACKDOOR
    assert audit_exit_code([row], strict=True) == ExitCode.BACKDOOR
