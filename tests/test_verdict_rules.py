"""The verdict-precedence rules without a server (the registry behaviour is in test_verdict_precedence)."""

from __future__ import annotations

from baerase_mlops import __version__
from baerase_mlops.config import MAX_THRESHOLD, MIN_RECOVERY_STEPS
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.job import JobSettings
from baerase_mlops.registry.versions import VersionInfo, is_current, settings_for

DEFAULTS = JobSettings(model_uri="", data_uri="builtin:mnist")


def _recorded(settings: JobSettings, verdict: str = "backdoor") -> VersionInfo:
    """A version whose verdict ``settings`` wrote, as the job tags it."""
    tags = {
        T.VERDICT: verdict,
        T.TOOL_VERSION: __version__,
        T.CONFIG_HASH: T.config_hash(settings.verdict_settings()),
        T.DATA_URI: settings.data_uri,
        T.RECOVERY_STEPS: str(settings.recovery_steps),
        T.THRESHOLD: T.fmt(settings.threshold),
    }
    return VersionInfo("m", "1", "READY", tags)


def test_fewer_steps_or_a_higher_threshold_is_weaker_and_a_verdict_without_strength_counts_as_the_defaults():
    tags = _recorded(DEFAULTS).tags
    default = MAX_THRESHOLD  # the default threshold
    assert T.weaker_than_recorded(100, default, tags) and T.weaker_than_recorded(400, default + 1.0, tags)
    assert not T.weaker_than_recorded(400, default, tags) and not T.weaker_than_recorded(800, default - 0.5, tags)
    assert T.weaker_than_recorded(MIN_RECOVERY_STEPS - 1, MAX_THRESHOLD, {T.VERDICT: "backdoor"})


def test_settings_below_the_minimum_are_advisory_and_say_why():
    assert DEFAULTS.advisory is None
    advisory = JobSettings(model_uri="", recovery_steps=10, threshold=5.0).advisory
    assert f"10 recovery steps, fewer than the minimum {MIN_RECOVERY_STEPS}" in advisory and "threshold 5" in advisory


def test_a_stronger_recorded_verdict_is_current_for_a_weaker_scan_but_not_the_reverse():
    strong = _recorded(DEFAULTS)
    weak = JobSettings(model_uri="", data_uri="builtin:mnist", recovery_steps=100)
    assert is_current(settings_for(weak, strong), strong)
    weakly_recorded = _recorded(weak)
    assert not is_current(settings_for(DEFAULTS, weakly_recorded), weakly_recorded)
    other_data = JobSettings(model_uri="", data_uri="builtin:digits", recovery_steps=100)
    assert not is_current(settings_for(other_data, strong, "builtin:digits"), strong)  # other settings: not current
