"""Model URIs: ``models:/name/N``, ``models:/name@alias``, ``models:/name/latest``,
``runs:/<run id>/<path>`` and local paths, resolved to something that can be downloaded."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from baerase_mlops.errors import RegistryError

_REGISTRY = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/]+))$")
_RUN = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+)$")


@dataclass(frozen=True)
class ModelRef:
    """A model URI resolved: where to download it and, for registry versions, which one."""

    uri: str  # as the user gave it
    kind: str  # "registry", "run" or "local"
    download_uri: str  # a URI (or path) that mlflow.artifacts can download
    name: str | None = None  # registered model name
    version: str | None = None  # resolved version number
    run_id: str | None = None

    @property
    def registered(self) -> bool:
        return self.kind == "registry"

    def describe(self) -> str:
        return f"models:/{self.name}/{self.version}" if self.registered else self.uri


def check_tracking_server(tracking_uri: str, timeout: float = 5.0) -> None:
    """Fail fast (instead of MLflow's minutes of retries) when an HTTP tracking server is down."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(tracking_uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as exc:
        raise RegistryError(
            f"cannot reach the MLflow tracking server at {tracking_uri} ({type(exc).__name__})"
        ) from exc


def is_not_found(exc: Exception) -> bool:
    """The registry answered "no such thing" (rather than failing to answer)."""
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and exc.error_code in (
        "RESOURCE_DOES_NOT_EXIST",
        "NOT_FOUND",
        "INVALID_PARAMETER_VALUE",
    )


def _registered_model_exists(client, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if is_not_found(exc):
            return False
        raise RegistryError(f"registry error looking up {name!r}: {exc.message}") from exc
    return True


def resolve_model_uri(uri: str, client) -> ModelRef:
    """Resolve ``uri`` with an ``MlflowClient``; raise :class:`RegistryError` naming what is missing."""
    from mlflow.exceptions import MlflowException

    uri = uri.strip()
    if not uri:
        raise RegistryError("no model URI given")
    if uri.startswith("models:/"):
        match = _REGISTRY.match(uri)
        if not match:
            raise RegistryError(
                f"{uri}: expected models:/<name>/<version>, models:/<name>@<alias> or models:/<name>/latest"
            )
        name, version, alias = match["name"], match["version"], match["alias"]
        if version is not None and not version.isdigit() and version != "latest":
            raise RegistryError(
                f"{uri}: model stages such as {version!r} are deprecated; use a version number or an alias "
                f"(models:/{name}@<alias>)"
            )
        try:
            if alias is not None:
                mv = client.get_model_version_by_alias(name, alias)
            elif version == "latest":
                found = client.search_model_versions(
                    f"name = '{name}'", max_results=1, order_by=["version_number DESC"]
                )
                if not found:
                    raise RegistryError(
                        f"registered model {name!r} has no versions"
                        if _registered_model_exists(client, name)
                        else f"registered model {name!r} does not exist"
                    )
                mv = found[0]
            else:
                mv = client.get_model_version(name, version)
        except MlflowException as exc:
            if not is_not_found(exc):
                raise RegistryError(f"{uri}: registry error: {exc.message}") from exc
            if not _registered_model_exists(client, name):
                raise RegistryError(f"registered model {name!r} does not exist") from exc
            if alias is not None:
                raise RegistryError(f"registered model {name!r} has no alias {alias!r}") from exc
            raise RegistryError(f"registered model {name!r} has no version {version}") from exc
        return ModelRef(
            uri, "registry", f"models:/{name}/{mv.version}", name=name, version=str(mv.version), run_id=mv.run_id
        )
    if uri.startswith("runs:/"):
        match = _RUN.match(uri)
        if not match:
            raise RegistryError(f"{uri}: expected runs:/<run id>/<artifact path>")
        try:
            client.get_run(match["run_id"])
        except MlflowException as exc:
            raise RegistryError(f"{uri}: run {match['run_id']!r} does not exist") from exc
        return ModelRef(uri, "run", uri, run_id=match["run_id"])
    if re.match(r"^[a-z][a-z0-9+.-]*://", uri) and not uri.startswith("file://"):
        raise RegistryError(f"{uri}: unsupported model URI scheme (use models:/, runs:/ or a local path)")
    path = Path(uri.removeprefix("file://")).expanduser()
    if not path.exists():
        raise RegistryError(f"model not found: {uri} (no such file or folder)")
    return ModelRef(uri, "local", str(path.resolve()))
