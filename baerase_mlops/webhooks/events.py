"""What each MLflow registry event asks of the receiver (mlflow/webhooks/types.py payloads).

* ``model_version.created``: scan the new version.
* ``model_version_alias.created`` on a protected alias: check the version it now points to.
* ``model_version_tag.set`` of ``baerase.verdict``: a verdict changed, so check the protected
  aliases that point at that version. Every other tag is ignored: the job writes a dozen
  ``baerase.*`` tags per scan, and reacting to them would loop.
* anything else: acknowledged and ignored.
"""

from __future__ import annotations

from typing import Any

from baerase_mlops.registry import tags as T
from baerase_mlops.webhooks.queue import JobSpec

SUBSCRIBED = ("model_version.created", "model_version_alias.created", "model_version_tag.set")


def event_name(event: dict[str, Any]) -> str:
    return f"{event.get('entity')}.{event.get('action')}"


def jobs_for(event: dict[str, Any], protected: tuple[str, ...]) -> list[JobSpec]:
    """The jobs ``event`` asks for; ValueError when its payload lacks what its kind needs."""
    name = event_name(event)
    data = event.get("data")
    if not isinstance(data, dict):
        raise ValueError("the delivery has no 'data' object")

    def field(key: str) -> str:
        value = data.get(key)
        if value is None or str(value) == "":
            raise ValueError(f"a {name} payload needs data.{key}")
        return str(value)

    if name == "model_version.created":
        return [JobSpec("scan", field("name"), field("version"))]
    if name == "model_version_alias.created":
        alias = field("alias")
        return [JobSpec("aliases", field("name"), field("version"), alias)] if alias in protected else []
    if name == "model_version_tag.set":
        return [JobSpec("aliases", field("name"), field("version"))] if field("key") == T.VERDICT else []
    return []
