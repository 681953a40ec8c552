"""Writes the MLproject file from the settings schema (config.SETTINGS, config.MLPROJECT):

    python pipelines/mlproject.py > MLproject

Every parameter's name, type, default and comment comes from the schema, so the MLproject
cannot restate a default differently; tests/test_settings_schema.py fails when the file in
the checkout is not what this writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baerase_mlops.config import MLPROJECT, SETTINGS, mlproject_parameters  # noqa: E402

HEADER = """\
# Generated from the settings schema (baerase_mlops/config.py) by `python pipelines/mlproject.py > MLproject`:
# edit the schema, not this file.
name: baerase-mlops

# `mlflow run . -P model_uri=models:/clf/3` builds an environment from python_env.yaml;
# `mlflow run . --env-manager local -P model_uri=...` runs in the current one.
python_env: python_env.yaml

entry_points:"""

# Each entry point: what it does, and the script (and mode) that runs it.
ENTRY_POINTS = {
    "main": ("Scan, erase when a class is flagged, register the cleaned model as a new version.", "job.py --mode main"),
    "scan": ("The verdict only: tags the scanned version, registers nothing.", "job.py --mode scan"),
    "erase": ("Scan and erase (the same flow as main), for parity with `baerase erase`.", "job.py --mode erase"),
    "gate": (
        (
            "Promotion gate: set `alias` on the version only if it passed (verdict clean, or cleaned\n"
            "with ASR and accuracy drop within bounds); scans it first when its verdict is not current.\n"
            "The decision is in the run's tags (gate.decision, gate.reason); the job exits 0 either way\n"
            "unless fail_on_refusal=true."
        ),
        "gate.py",
    ),
    "registry_scan": (
        (
            "Scheduled registry scan: every version matching `filter` whose verdict is not current for\n"
            "this tool version and these settings is scanned (and erased); the summary is in the run."
        ),
        "registry_scan.py",
    ),
}


def _value(value) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _wrap(words: list[str], width: int) -> list[str]:
    """Words joined into lines of at most ``width`` (a folded YAML scalar joins them again with spaces)."""
    lines = [words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) > width:
            lines.append(word)
        else:
            lines[-1] += " " + word
    return lines


def render() -> str:
    lines = [HEADER]
    for entry, (about, script) in ENTRY_POINTS.items():
        lines += ["", *(f"  # {line}" for line in about.splitlines()), f"  {entry}:", "    parameters:"]
        params = mlproject_parameters(entry)
        for name, spec in params.items():
            body = f"type: {spec['type']}" + (f", default: {_value(spec['default'])}" if "default" in spec else "")
            lines.append(f"      {name}: {{{body}}}  # {SETTINGS[name].help}")
        words = [f"python pipelines/{script}"] + [f"{SETTINGS[name].option} {{{name}}}" for name in MLPROJECT[entry][0]]
        lines += ["    command: >-", *(f"      {line}" for line in _wrap(words, 110))]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
