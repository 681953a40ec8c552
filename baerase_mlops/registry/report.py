"""What a registry job prints: the verdict and the tags it wrote."""

from __future__ import annotations

from baerase_mlops.registry.job import JobOutcome
from baerase_mlops.report.console import key_value_table, stdout


def print_outcome(outcome: JobOutcome) -> None:
    stdout.print(f"[bold]{outcome.model}: {outcome.summary}[/bold]")
    if outcome.tags:
        stdout.print(key_value_table(f"tags on {outcome.model}", sorted(outcome.tags.items())))
    if outcome.new_version_tags:
        stdout.print(
            key_value_table(
                f"tags on the cleaned version {outcome.new_version}", sorted(outcome.new_version_tags.items())
            )
        )
    if outcome.run_id:
        stdout.print(f"MLflow run: {outcome.run_id}")
