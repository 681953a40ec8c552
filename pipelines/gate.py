"""The ``gate`` entry point: ``baerase gate`` as an MLflow job, its decision in the run.

As every MLflow job (DESIGN.md), it exits 0 when the gate ran, promoted or not (the
decision is in the run's tags); 1 on a refusal only with --fail-on-refusal true; non-zero on error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402

from baerase_mlops.errors import ExitCode  # noqa: E402
from pipelines.common import entry_point_options, job_settings, run  # noqa: E402


@click.command()
@entry_point_options("gate")
def main(model_uri, alias, max_asr, erase, fail_on_refusal, data_uri, **options) -> int:
    import mlflow

    from baerase_mlops.config import GatePolicy
    from baerase_mlops.registry.gate import run_gate
    from baerase_mlops.registry.versions import connect_registry
    from baerase_mlops.report.console import progress_bars
    from baerase_mlops.report.registry_console import print_gate

    run_id = os.environ.get("MLFLOW_RUN_ID")  # `mlflow run`'s run: the scan (if any) resumes it first
    settings = job_settings(options)  # the data URI is resolved per version (data_uri: the override)
    policy = GatePolicy(max_asr=max_asr, max_accuracy_drop=settings.max_accuracy_drop)
    with progress_bars() as progress:
        result = run_gate(connect_registry(), model_uri, alias, settings, policy, data_uri, erase, progress)
    print_gate(result)
    with mlflow.start_run(run_id=run_id, run_name=f"baerase gate {result.model} -> {alias}"):
        mlflow.set_tags(
            {
                "gate.model": result.model,
                "gate.alias": alias,
                "gate.decision": "promoted" if result.promoted else "refused",
                "gate.reason": result.decision.reason[:5000],
            }
        )
    return ExitCode.BACKDOOR if fail_on_refusal and not result.promoted else ExitCode.PASSED


if __name__ == "__main__":
    run(main)
