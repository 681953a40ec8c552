"""What the registry commands print: the gate's decision, a registry scan's counts."""

from __future__ import annotations

from baerase_mlops.report.console import key_value_table, stdout


def print_gate(result) -> None:
    """``result``: a baerase_mlops.registry.gate.GateResult."""
    if result.scan is not None:
        stdout.print(f"scanned first: {result.scan.summary}")
    rows = [
        ("version", result.model),
        ("alias", result.alias),
        ("alias before", result.previous or "(not set)"),
        ("reason", result.decision.reason),
    ]
    if result.promoted:
        stdout.print(key_value_table(f"gate passed: {result.alias} -> {result.model}", rows))
    else:
        stdout.print(
            key_value_table(f"gate refused: {result.alias} left on {result.previous or '(not set)'}", rows),
            style="bold red",
        )


def print_registry_scan(result) -> None:
    """``result``: a RegistryScanResult."""
    stdout.print(
        key_value_table(
            f"registry scan ({result.executor}, {result.seconds:.0f} s)",
            [(k, str(v)) for k, v in result.counts().items()],
        )
    )
    for scan in sorted(result.results, key=lambda r: r.model):
        stdout.print(f"{scan.model}: {scan.action}: {scan.summary}")
    for uri in result.open_backdoors():
        stdout.print(f"[bold red]{uri} carries a backdoor with no cleaned version[/bold red]")
    if result.files:
        stdout.print("summary: " + ", ".join(str(p) for p in result.files.values()))
    stdout.print(f"MLflow run: {result.run_id}")
