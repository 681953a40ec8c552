"""The ``registry_scan`` entry point: ``baerase scan-registry`` as an MLflow job, its summary
(JSON, Markdown, HTML) in the job's run.

Exits 0 when the scan completed, whatever it found (1 on an open backdoor only with
--fail-on-backdoor true); 2 when a scan failed; 3 when the filter matched nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402

from baerase_mlops.errors import ExitCode  # noqa: E402
from pipelines.common import entry_point_options, job_settings, run  # noqa: E402


@click.command()
@entry_point_options("registry_scan")
def main(filter, executor, workers, erase, fail_on_backdoor, data_uri, **options) -> int:
    from baerase_mlops.config import RegistryScanConfig
    from baerase_mlops.registry.registry_scan import run_registry_scan
    from baerase_mlops.registry.versions import connect_registry
    from baerase_mlops.report.registry_console import print_registry_scan

    config = RegistryScanConfig(executor=executor, workers=workers, erase=erase)
    result = run_registry_scan(connect_registry(), job_settings(options), config, filter, data_uri)
    print_registry_scan(result)
    code = result.exit_code()
    return code if code == ExitCode.ERROR or (fail_on_backdoor and code == ExitCode.BACKDOOR) else ExitCode.PASSED


if __name__ == "__main__":
    run(main)
