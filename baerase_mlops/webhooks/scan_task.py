"""One queued scan, in its own process (``python -m baerase_mlops.webhooks.scan_task``), so that the worker
can bound, time and kill it: reads the job from stdin as JSON, prints the result as JSON.

A version that a baerase job registered (a cleaned version) is left alone: the job that
made it writes its tags, and scanning it at the same time would race with that job.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from baerase_mlops.registry.job import JobSettings
from baerase_mlops.registry.scanning import VersionScan

RESULT_PREFIX = "BAERASE_RESULT "


def settings_to_json(settings: JobSettings) -> dict:
    """The job payload's settings: JobSettings' fields by their schema names (config.SETTINGS)."""
    return settings.to_payload()


def settings_from_json(data: dict) -> JobSettings:
    """Settings from a payload, checked as any other settings are (a bad value is a UsageError)."""
    return JobSettings.from_payload(data)


def registered_by_baerase(client, run_id: str | None) -> bool:
    """The version was logged by a baerase job's run (it logs its tool version as a parameter).

    A run that is gone is not ours; any other registry failure propagates: an outage is not an answer."""
    from mlflow.exceptions import MlflowException

    from baerase_mlops.registry.resolve import is_not_found

    if not run_id:
        return False
    try:
        return "job.tool_version" in client.get_run(run_id).data.params
    except MlflowException as exc:
        if is_not_found(exc):
            return False
        raise


def scan_new_version(name: str, version: str, base: JobSettings, mode: str, data_override: str | None) -> VersionScan:
    import mlflow
    from mlflow.exceptions import MlflowException

    from baerase_mlops.errors import RegistryError
    from baerase_mlops.registry.publish import wait_until_ready
    from baerase_mlops.registry.scanning import scan_version
    from baerase_mlops.registry.versions import VersionInfo, settings_for, version_info

    client = mlflow.MlflowClient()
    uri = f"models:/{name}/{version}"
    try:
        version_info(client, name, version)  # a version that does not exist will not come
        mv = wait_until_ready(client, name, version)
    except RegistryError as exc:
        return VersionScan(uri, "error", summary=str(exc))
    except MlflowException as exc:  # the registry is unreachable or failing: try again later
        return VersionScan(uri, "error", summary=f"registry error: {exc.message}", retryable=True)
    try:
        ours = registered_by_baerase(client, mv.run_id)
    except MlflowException as exc:
        summary = f"registry error reading run {mv.run_id}: {exc.message}"
        return VersionScan(uri, "error", summary=summary, retryable=True)
    if ours:
        return VersionScan(uri, "skipped", summary=f"registered by the baerase job run {mv.run_id}, which tags it")
    info: VersionInfo = version_info(client, name, version)
    return scan_version(settings_for(base, info, data_override), mode)


def main() -> None:
    from baerase_mlops.registry.scanning import init_worker

    job = json.loads(sys.stdin.read())
    init_worker(job.get("tracking_uri"), job["threads"])
    result = scan_new_version(
        job["name"], job["version"], settings_from_json(job["settings"]), job["mode"], job.get("data_override")
    )
    print(RESULT_PREFIX + json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    main()
