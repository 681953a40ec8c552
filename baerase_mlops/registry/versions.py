"""Registered model versions as the registry commands see them: walked page by page, each
with its ``baerase.*`` record, the clean data to judge it on, and whether its verdict is current.

The gate, registry scans, audits and the webhook worker all judge a version with the same
settings: the job's (``JobSettings``) with the data URI resolved per version, so that a
verdict counts as current for one of them exactly when it does for the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial

from baerase_mlops import __version__
from baerase_mlops.config import REGISTRY_DEFAULT_DATA_URI
from baerase_mlops.errors import RegistryError, UsageError
from baerase_mlops.registry import tags as T
from baerase_mlops.registry.job import JobSettings


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version and what the registry records about it."""

    name: str
    version: str
    status: str  # READY, PENDING_REGISTRATION, FAILED_REGISTRATION
    tags: dict[str, str]
    aliases: tuple[str, ...] = ()
    run_id: str | None = None
    model_tags: dict[str, str] = field(default_factory=dict)  # the registered model's tags

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def recorded(self) -> T.RecordedVerdict:
        return T.read_verdict(self.tags)

    @classmethod
    def of(cls, mv, model) -> VersionInfo:
        """From a ModelVersion and its RegisteredModel (whose aliases are complete: a version
        found by search carries none)."""
        version = str(mv.version)
        aliases = tuple(sorted(a for a, v in (model.aliases or {}).items() if str(v) == version))
        return cls(
            mv.name, version, str(mv.status), dict(mv.tags or {}), aliases, mv.run_id or None, dict(model.tags or {})
        )


def data_uri_for(info: VersionInfo, override: str | None = None) -> str:
    """The clean set to judge ``info`` on: the one asked for, else the one its last scan used,
    else the one its registered model names (tag ``baerase.data_uri``), else the MLproject's default."""
    return override or info.tags.get(T.DATA_URI) or info.model_tags.get(T.DATA_URI) or REGISTRY_DEFAULT_DATA_URI


def settings_for(base: JobSettings, info: VersionInfo, data_override: str | None = None) -> JobSettings:
    """The job settings that judge ``info``: ``base`` aimed at it, with its data URI."""
    return replace(base, model_uri=info.uri, data_uri=data_uri_for(info, data_override), registered_model_name=None)


def is_current(settings: JobSettings, info: VersionInfo) -> bool:
    """The version's verdict was written by this tool version with these settings, or with the
    same settings but a stronger scan (at least as many recovery steps, at most this threshold):
    a weaker scan has nothing to add to it, and must not replace it (verdict precedence)."""
    recorded = info.recorded
    if recorded.is_current(__version__, T.config_hash(settings.verdict_settings())):
        return True
    if T.RECOVERY_STEPS not in recorded.tags or T.THRESHOLD not in recorded.tags:
        return False
    steps, threshold = T.scan_strength(recorded.tags)
    if T.weaker_than_recorded(
        steps, threshold, {T.RECOVERY_STEPS: str(settings.recovery_steps), T.THRESHOLD: str(settings.threshold)}
    ):
        return False  # the recorded scan is the weaker one
    as_recorded = replace(settings, recovery_steps=steps, threshold=threshold)
    return recorded.is_current(__version__, T.config_hash(as_recorded.verdict_settings()))


def follow_pages(search: Callable, **kwargs) -> Iterator:
    """Every item of a paged MLflow search (``search(**kwargs, page_token=...)``), page by page."""
    token = None
    while True:
        page = search(**kwargs, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def iter_registered_models(client, filter_string: str | None, page_size: int) -> Iterator:
    """Every registered model matching ``filter_string``."""
    return follow_pages(
        partial(_search, client.search_registered_models), filter_string=filter_string or None, max_results=page_size
    )


def iter_model_versions(client, name: str, page_size: int) -> Iterator:
    """Every version of registered model ``name``."""
    return follow_pages(
        partial(_search, client.search_model_versions), filter_string=f"name = '{_quote(name)}'", max_results=page_size
    )


def walk_registry(client, filter_string: str | None = None, page_size: int = 100) -> list[VersionInfo]:
    """Every version of every registered model that matches ``filter_string``, by name then version."""
    found = []
    for model in iter_registered_models(client, filter_string, page_size):
        found += [VersionInfo.of(mv, model) for mv in iter_model_versions(client, model.name, page_size)]
    return sorted(found, key=lambda v: (v.name, int(v.version)))


def model_versions(client, name: str, page_size: int = 100) -> list[VersionInfo]:
    """Every version of one registered model (which must exist)."""
    model = _get_registered_model(client, name)
    return sorted(
        (VersionInfo.of(mv, model) for mv in iter_model_versions(client, name, page_size)), key=lambda v: int(v.version)
    )


def version_info(client, name: str, version: str) -> VersionInfo:
    """One version, fresh from the registry, with its registered model's tags."""
    from mlflow.exceptions import MlflowException

    model = _get_registered_model(client, name)
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise RegistryError(f"registered model {name!r} has no version {version}") from exc
    return VersionInfo.of(mv, model)


def _get_registered_model(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        raise RegistryError(
            f"registered model {name!r} does not exist"
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST"
            else f"registry error looking up {name!r}: {exc.message}"
        ) from exc


def _quote(name: str) -> str:
    if "'" in name:
        raise RegistryError(
            f"registered model name {name!r} contains a quote, which registry search filters cannot express"
        )
    return name


def _search(search, **kwargs):
    from mlflow.exceptions import MlflowException

    try:
        return search(**kwargs)
    except MlflowException as exc:
        if exc.error_code == "INVALID_PARAMETER_VALUE":
            raise UsageError(
                f"the registry refused the search filter {kwargs.get('filter_string')!r}: {exc.message}"
            ) from exc
        raise RegistryError(f"registry search failed: {exc.message}") from exc


def connect_registry():
    """An MlflowClient on the current tracking URI, after checking that its server answers."""
    import mlflow

    from baerase_mlops.registry.resolve import check_tracking_server
    from baerase_mlops.registry.tracking import bounded_http_retries

    bounded_http_retries()
    check_tracking_server(mlflow.get_tracking_uri())
    return mlflow.MlflowClient()
