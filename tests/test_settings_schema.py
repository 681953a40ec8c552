"""The one settings schema (config.SETTINGS): the MLproject, the entry scripts, the CLI,
JobSettings and the webhook payload all agree with it, so a default is written once."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import click
import pytest
import yaml

from baerase_mlops.cli import main as cli
from baerase_mlops.config import JOB_FIELDS, MLPROJECT, SETTINGS, mlproject_parameters
from baerase_mlops.core.recovery import RECOVERY_METHODS
from baerase_mlops.core.unlearning import UNLEARNING_METHODS
from baerase_mlops.errors import UsageError
from baerase_mlops.registry.job import JobSettings

REPO = Path(__file__).resolve().parents[1]


def mlproject() -> dict:
    return yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]


def entry_script(entry: str) -> click.Command:
    import importlib

    script = re.match(r"python pipelines/(\w+)\.py", mlproject()[entry]["command"])[1]
    return importlib.import_module(f"pipelines.{script}").main


def test_mlproject_file_is_what_the_schema_generates():
    from pipelines.mlproject import render

    assert (REPO / "MLproject").read_text() == render(), "regenerate it: python pipelines/mlproject.py > MLproject"


@pytest.mark.parametrize("entry", list(MLPROJECT))
def test_mlproject_parameters_and_defaults_match_the_schema(entry):
    declared = mlproject()[entry]["parameters"]
    assert declared == mlproject_parameters(entry)
    for name, spec in declared.items():
        if "default" in spec:  # MLflow passes the default as a string: it must mean the schema's default
            overridden = entry in ("main", "scan", "erase") and name == "data_uri"
            expected = "builtin:mnist" if overridden else SETTINGS[name].default
            assert SETTINGS[name].convert(str(spec["default"])) == expected, name


@pytest.mark.parametrize("entry", list(MLPROJECT))
def test_every_mlproject_parameter_reaches_its_entry_script(entry):
    command = mlproject()[entry]["command"]
    passed = dict(re.findall(r"(--[\w-]+) \{(\w+)\}", command))
    assert sorted(passed.values()) == sorted(mlproject()[entry]["parameters"])
    accepted = {opt for p in entry_script(entry).params for opt in p.opts}
    assert set(passed) <= accepted


def test_job_settings_fields_and_defaults_are_the_schemas():
    assert tuple(f.name for f in fields(JobSettings)) == JOB_FIELDS
    defaults = JobSettings(model_uri="x")
    for name in JOB_FIELDS[1:]:
        assert getattr(defaults, name) == SETTINGS[name].default, name


def test_method_choices_come_from_the_method_registries():
    assert SETTINGS["method"].choice_names() == tuple(RECOVERY_METHODS)
    assert SETTINGS["unlearning"].choice_names() == tuple(UNLEARNING_METHODS)


def test_every_default_is_one_of_its_choices():
    # The schema checks a non-default value only against the choices (the default is not looked
    # up, so a default job imports no method registry before its URI is resolved).
    for setting in SETTINGS.values():
        if setting.choices is not None and setting.default is not None:
            assert setting.default in setting.choice_names(), setting.name


def test_a_job_refused_for_its_model_uri_never_imports_torch():
    import subprocess
    import sys

    # A fresh process, as `mlflow run` starts the entry script: nothing may import torch (seconds)
    # before the URI is resolved; MLflow answers first that the server is not there.
    probe = (
        "import sys, runpy; sys.argv = ['job.py', '--mode', 'scan', '--model-uri', 'models:/clf/1']\n"
        "try:\n    runpy.run_path('pipelines/job.py', run_name='__main__')\n"
        "except SystemExit as exit:\n    print(exit.code, 'torch' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr[-2000:]


@pytest.mark.parametrize("command", ["scan", "erase", "gate", "scan-registry", "audit", "serve-webhooks"])
def test_cli_options_take_the_schemas_defaults(command):
    for param in cli.commands[command].params:
        from_schema = isinstance(param, click.Option) and param.name in SETTINGS and param.name != "alias"
        if from_schema and not param.is_flag:
            assert param.default == SETTINGS[param.name].default, (command, param.name)


def test_cli_keeps_its_flag_names_and_accepts_the_mlproject_spelling():
    opts = {opt for p in cli.commands["scan"].params for opt in p.opts}
    assert {"--data", "--data-uri", "--steps", "--recovery-steps", "--threshold", "--clean-fraction"} <= opts


def test_webhook_payload_round_trips_every_field():
    settings = JobSettings(model_uri="models:/m/1", recovery_steps=30, mean=(0.5,), std=(0.25,), clean_fraction=0.5)
    payload = settings.to_payload()
    assert set(payload) == set(JOB_FIELDS)
    assert JobSettings.from_payload(payload) == settings


def test_payload_with_a_bad_or_unknown_field_is_refused():
    payload = JobSettings(model_uri="models:/m/1").to_payload()
    with pytest.raises(UsageError, match="--threshold: must be greater than 0"):
        JobSettings.from_payload(payload | {"threshold": -1})
    with pytest.raises(UsageError, match="does not know: steps"):
        JobSettings.from_payload(payload | {"steps": 30})


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("recovery_steps", "400.0", 400),  # MLflow's floats
        ("clean_fraction", "0", None),  # the MLproject's "not given"
        ("mean", "0.5, 0.4,0.3", (0.5, 0.4, 0.3)),
        ("register", "False", False),
        ("data_uri", "", None),
    ],
)
def test_strings_convert_as_mlflow_passes_them(name, text, value):
    assert SETTINGS[name].convert(text) == value
