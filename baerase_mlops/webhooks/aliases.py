"""Protected aliases: MLflow tells the receiver after an alias was set, so a version that
has not passed the gate is taken off it again, the alias goes back to the previous passing
version (or is removed), and the version is tagged with why.

"Previous passing version": the last version the receiver saw holding the alias that
passed, if it still passes; else the newest version older than the refused one that
passes; else none, and the alias is removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from baerase_mlops.config import GatePolicy
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.gate import judge
from baerase_mlops.registry.job import JobSettings
from baerase_mlops.registry.versions import VersionInfo, is_current, model_versions, settings_for
from baerase_mlops.webhooks.queue import JobQueue, JobSpec

REFUSED_TAG = T.ALIAS_REFUSED  # + alias: why the alias was taken off this version (kept by rescans)


@dataclass(frozen=True)
class AliasGuard:
    """What the protected-alias check needs: the registry, the queue, how versions are judged."""

    client: object
    queue: JobQueue
    base: JobSettings
    policy: GatePolicy
    protected: tuple[str, ...]
    data_override: str | None = None
    on_refused: Callable[[str, str], None] = lambda alias, action: None  # (alias, "moved_back" | "removed"): the metric

    def check(self, spec: JobSpec) -> str:
        """Check ``spec.alias`` (or every protected alias on ``spec.version``); say what was done."""
        versions = {v.version: v for v in model_versions(self.client, spec.name)}
        holders = dict(self.client.get_registered_model(spec.name).aliases or {})
        aliases = [spec.alias] if spec.alias else [a for a in self.protected if holders.get(a) == spec.version]
        return (
            "; ".join(self._check_one(spec.name, alias, holders.get(alias), versions) for alias in aliases)
            or "no protected alias on it"
        )

    def _check_one(self, name: str, alias: str, holder: str | None, versions: dict[str, VersionInfo]) -> str:
        # The alias may have moved since the event: what counts is where it points now.
        if holder is None or holder not in versions:
            return f"{alias}: not set"
        info = versions[holder]
        decision = judge(info, self.base, self.policy, self.data_override)
        if decision.passed:
            self.queue.record_holder(name, alias, holder)
            return f"{alias} on version {holder}: passed"
        fallback = self._previous_passing(name, alias, info, versions)
        action = (
            "alias removed (no earlier version passed)"
            if fallback is None
            else f"alias moved back to version {fallback}"
        )
        # The reason goes on first, so that whoever sees the alias move (a person, a test, a
        # webhook) finds why at once; it is taken off again if the move fails.
        self.client.set_model_version_tag(name, holder, REFUSED_TAG + alias, f"{T.now()}: {decision.reason}; {action}")
        try:
            if fallback is None:
                self.client.delete_registered_model_alias(name, alias)
            else:
                self.client.set_registered_model_alias(name, alias, fallback)
        except Exception:
            self.client.delete_model_version_tag(name, holder, REFUSED_TAG + alias)
            raise
        self.on_refused(alias, "removed" if fallback is None else "moved_back")
        if not is_current(settings_for(self.base, info, self.data_override), info):
            self.queue.enqueue([JobSpec("scan", name, holder)])  # so that a later promotion can pass
        return f"{alias} on version {holder} refused: {decision.reason}; {action}"

    def _previous_passing(
        self, name: str, alias: str, refused: VersionInfo, versions: dict[str, VersionInfo]
    ) -> str | None:
        last = self.queue.last_holder(name, alias)
        older = sorted((v for v in versions if int(v) < int(refused.version)), key=int, reverse=True)
        for candidate in ([last] if last else []) + older:
            if (
                candidate != refused.version
                and candidate in versions
                and judge(versions[candidate], self.base, self.policy, self.data_override).passed
            ):
                return candidate
        return None
