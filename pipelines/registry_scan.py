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
from pipelines.common import optional, job_settings, run_or_exit, settings_options  # noqa: E402


@click.command()
@click.option("--filter", "filter_string", default="")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local")
@click.option("--workers", type=float, default=2)
@click.option("--erase", type=bool, default=True)
@click.option("--fail-on-backdoor", type=bool, default=False)
@settings_options
def main(filter_string, executor, workers, erase, fail_on_backdoor, **options) -> None:
    from baerase_mlops.config import RegistryScanConfig
    from baerase_mlops.registry.registry_scan import run_registry_scan
    from baerase_mlops.registry.versions import connect_registry
    from baerase_mlops.report.registry_console import print_registry_scan

    def work() -> int:
        config = RegistryScanConfig(executor=executor, workers=int(workers), erase=erase)
        result = run_registry_scan(connect_registry(), job_settings("", options), config, optional(filter_string), optional(options["data_uri"]))
        print_registry_scan(result)
        code = result.exit_code()
        return code if code == ExitCode.ERROR or (fail_on_backdoor and code == ExitCode.BACKDOOR) else ExitCode.PASSED

    run_or_exit(work)


if __name__ == "__main__":
    main()
