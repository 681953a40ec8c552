"""Every command the README shows runs as written.

Quick: each command line of README.md's bash and console blocks names a real `baerase`
command with options it takes (parsed by the CLI itself), a real MLproject entry point
with its parameters, or a real Makefile target; python_env.yaml (what `mlflow run .`
without `--env-manager local` builds) carries every dependency of the package and Ray.

Slow: the examples that run on one machine are run, through bash, against the session's
MLflow server, with only the placeholders replaced (the server's address, paths under
/var and /opt, the receiver's host and port, the model's name `clf`, made unique). Two
things are left to the quick checks: `mlflow run` gets `--env-manager local` (building the
virtualenv means installing torch), and `make demo`/`make test` (CI runs `make test`).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.mlflow_server import BIN, REPO, free_port

README = REPO / "README.md"


def readme_commands() -> list[str]:
    """Each command line of the README's bash and console blocks (continuations joined)."""
    commands, block, pending = [], None, ""
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            block = line[3:].strip() if block is None else None
            continue
        if block == "console":
            if line.startswith("$ "):
                commands.append(line[2:])
        elif block == "bash":
            pending += line.rstrip("\\").strip() + " "
            if not line.endswith("\\"):
                if pending.strip() and not pending.lstrip().startswith("#"):
                    commands.append(pending.strip())
                pending = ""
    return commands


def _without_comment(command: str) -> str:
    """``command`` up to its shell comment: an unquoted ``#`` that starts a word (shlex's own
    comment handling would also cut ``data.npz#train``, one word to a shell)."""
    quote = None
    for i, char in enumerate(command):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i]
    return command


def invocations(command: str) -> list[list[str]]:
    """The programs a command line runs: ``&&``/``||`` split, cron fields, ``VAR=x`` and ``&`` dropped."""
    command = command.replace("$(date +\\%F)", "2026-01-01")
    tokens = shlex.split(_without_comment(command))
    if len(tokens) > 5 and all(re.fullmatch(r"[\d*/,-]+", t) for t in tokens[:5]):
        tokens = tokens[5:]  # a crontab line
    parts, current = [], []
    for token in [*tokens, "&&"]:
        if token in ("&&", "||", "&", ";"):
            if current:
                parts.append(current)
            current = []
        elif current or not re.fullmatch(r"[A-Z_]+=.*", token):
            current.append(token)
    return [p for p in parts if p[0] not in ("cd", "echo", "export")]


def _check_baerase(args: list[str]) -> None:
    """Parse ``baerase ARGS`` as the CLI would, down to the (sub)command, running nothing."""
    from baerase_mlops.cli import main

    command, name, parent = main, "baerase", None
    while True:
        ctx = command.make_context(name, list(args), parent=parent)
        if not hasattr(command, "resolve_command"):
            return
        # A group leaves its subcommand and the rest unparsed (click keeps the name apart).
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, command, args = command.resolve_command(ctx, rest)
        parent = ctx


def _check_mlflow_run(args: list[str]) -> None:
    assert args[:2] == ["run", "."], args
    project = yaml.safe_load((REPO / "MLproject").read_text())
    entry, params, i = "main", set(), 2
    while i < len(args):
        if args[i] == "-e":
            entry = args[i + 1]
        elif args[i] == "-P":
            params.add(args[i + 1].split("=", 1)[0])
        elif args[i] == "--env-manager":
            assert args[i + 1] in ("local", "virtualenv", "uv", "conda")
        i += 2
    assert entry in project["entry_points"], f"no entry point {entry}"
    declared = project["entry_points"][entry]["parameters"]
    assert params <= set(declared), f"{entry} has no parameter(s) {params - set(declared)}"
    required = {name for name, spec in declared.items() if "default" not in spec}
    assert required <= params, f"{entry} needs {required - params}"


def _check_bench(args: list[str]) -> None:
    """Parse ``python -m benchmarks.run ARGS`` as its command would, running nothing."""
    from benchmarks.run import main as bench

    bench.make_context("benchmarks.run", list(args))


def _check_statistics(args: list[str]) -> None:
    """``python -m benchmarks.statistics FILE...``: every result file it names is in the repo."""
    assert args and all((REPO / a).is_file() for a in args), f"benchmarks.statistics on missing files {args}"


def _check_rescan(args: list[str]) -> None:
    """``python -m benchmarks.rescan MODEL... --recovery JSON``: its options parse and the JSON names
    RecoveryConfig fields (the models are a user's zoo cache, not in the repo)."""
    from dataclasses import replace

    from baerase_mlops.config import RecoveryConfig
    from benchmarks.rescan import main as rescan

    options = args[args.index(next(a for a in args if a.startswith("--"))) :]
    rescan.make_context("benchmarks.rescan", [str(REPO / "README.md"), *options])
    replace(RecoveryConfig(), **json.loads(options[options.index("--recovery") + 1]))


def _check_reerase(args: list[str]) -> None:
    """``python -m benchmarks.reerase MODEL... --variant NAME=JSON``: its options parse and every
    variant names UnlearningConfig fields (the models are a user's zoo cache, not in the repo)."""
    from benchmarks.reerase import main as reerase
    from benchmarks.reerase import parse_variant

    options = args[args.index(next(a for a in args if a.startswith("--"))) :]
    reerase.make_context("benchmarks.reerase", [str(REPO / "README.md"), *options])
    variants = [options[i + 1] for i, a in enumerate(options) if a == "--variant"]
    assert variants and all(parse_variant(v) for v in variants)


def _check_stability(args: list[str]) -> None:
    """``python -m benchmarks.stability TABLE --seeds ...``: its options parse and the table it
    rescans is the repo's (the models it names are a user's zoo cache)."""
    from benchmarks.stability import main as stability

    stability.make_context("benchmarks.stability", [str(REPO / args[0]), *args[1:]])


def _check_schedules(args: list[str]) -> None:
    """``python -m benchmarks.schedules TRACES... [--draws N]``: its options parse and every trace file it
    names is in the repo."""
    from benchmarks.schedules import main as schedules

    files = [a for a in args if a.endswith(".jsonl")]
    assert files and all((REPO / f).is_file() for f in files), f"benchmarks.schedules on missing files {files}"
    schedules.make_context("benchmarks.schedules", [str(REPO / f) for f in files] + [a for a in args if a not in files])


def _check_cost(args: list[str]) -> None:
    """``python -m benchmarks.cost --out FILE ...``: its options parse, and it has a model for
    every class count it names."""
    from benchmarks.cost import PLANS
    from benchmarks.cost import main as cost

    context = cost.make_context("benchmarks.cost", list(args))
    assert {int(c) for c in context.params["classes"].split(",")} <= set(PLANS), args


def _check_peer_clone(args: list[str]) -> None:
    """``git clone URL DIR``: the peer's public repository, into the folder the README's
    ``--peer-dir`` then names."""
    assert args[:2] == ["clone", "https://github.com/SCLBD/BackdoorBench"], args
    assert f"--peer-dir {args[2]}" in README.read_text(), f"no README command runs the peer from {args[2]}"


def _check_pip_install(args: list[str]) -> None:
    """``pip install -e '.[EXTRA]'``: the extra is one pyproject.toml declares."""
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert args[:2] == ["install", "-e"] and re.fullmatch(r"\.\[([\w,-]+)\]", args[2]), args
    named = set(args[2][2:-1].split(","))
    assert named <= set(extras), f"pyproject.toml has no extra(s) {named - set(extras)}"


def test_every_readme_command_names_real_commands_options_and_parameters():
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))
    seen = []
    for command in readme_commands():
        for args in invocations(command):
            program = Path(args[0]).name
            seen.append(program)
            if program == "baerase":
                _check_baerase(args[1:])
            elif program == "mlflow":
                _check_mlflow_run(args[1:])
            elif program == "python" and args[1:3] == ["-m", "benchmarks.run"]:
                _check_bench(args[3:])
            elif program == "python" and args[1:3] == ["-m", "benchmarks.statistics"]:
                _check_statistics(args[3:])
            elif program == "python" and args[1:3] == ["-m", "benchmarks.rescan"]:
                _check_rescan(args[3:])
            elif program == "python" and args[1:3] == ["-m", "benchmarks.reerase"]:
                _check_reerase(args[3:])
            elif program == "python" and args[1:3] == ["-m", "benchmarks.stability"]:
                _check_stability(args[3:])
            elif program == "python" and args[1:3] == ["-m", "benchmarks.schedules"]:
                _check_schedules(args[3:])
            elif program == "python" and args[1:3] == ["-m", "benchmarks.cost"]:
                _check_cost(args[3:])
            elif program == "git":
                _check_peer_clone(args[1:])
            elif program == "pip":
                _check_pip_install(args[1:])
            elif program == "make":
                assert set(args[1:]) <= targets, f"Makefile has no target {set(args[1:]) - targets}"
            else:
                pytest.fail(f"the README runs {program!r}, which this test does not check: {command}")
    assert seen.count("baerase") >= 12 and seen.count("mlflow") >= 4 and "make" in seen


def test_a_mistyped_option_in_a_readme_command_would_be_caught():
    import click

    with pytest.raises(click.UsageError):
        _check_baerase(["scan-registry", "--filtre", "name LIKE 'clf%'"])
    with pytest.raises(AssertionError, match="no parameter"):
        _check_mlflow_run(["run", ".", "-e", "registry_scan", "-P", "executer=ray"])
    with pytest.raises(AssertionError, match="no extra"):
        _check_pip_install(["install", "-e", ".[peers]"])
    with pytest.raises(click.UsageError, match="No such option"):
        _check_stability(["BENCHMARKS.json", "--seeds", "1000", "--metod", "baerase"])


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=~!; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_the_mlflow_projects_own_environment_has_every_dependency_and_ray():
    import tomllib

    env = yaml.safe_load((REPO / "python_env.yaml").read_text())
    declared = _requirement_names(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    pinned = _requirement_names(env["dependencies"])
    assert declared <= pinned, f"python_env.yaml lacks {declared - pinned}"
    assert "ray" in pinned  # `mlflow run . -e registry_scan -P executor=ray` without --env-manager local
    assert all("==" in r for r in env["dependencies"]), "python_env.yaml pins every package (no resolver surprises)"


# The slow part: the examples, run.


def _run(command: str, cwd: Path, env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def examples(mlflow_server, tmp_path_factory):
    """The README's commands with their placeholders replaced for this machine."""
    name = f"clf{uuid.uuid4().hex[:6]}"
    root = tmp_path_factory.mktemp("readme")
    port = free_port()
    replacements = {
        "http://your-mlflow-server:5000": mlflow_server.uri,
        "http://mlflow:5000": mlflow_server.uri,
        "models:/clf/3": f"models:/{name}/1",
        "models:/clf": f"models:/{name}",
        "/var/lib/baerase": str(root / "var"),
        "/var/lib/node_exporter/textfile": str(root / "prom"),
        "/var/log/baerase": str(root / "log"),
        "cd /opt/baerase-mlops": f"cd {REPO}",
        ".venv/bin/": f"{BIN}/",
        "gate-host:8787": f"127.0.0.1:{port}",
        "--port 8787": f"--port {port}",
    }
    # One pass, longest placeholder first: replaced one by one, "models:/clf" would rewrite the
    # "models:/clf…/1" that "models:/clf/3" just became (the name must start with clf: the filters match it).
    placeholders = re.compile("|".join(re.escape(k) for k in sorted(replacements, key=len, reverse=True)))
    commands = []
    for command in readme_commands():
        command = placeholders.sub(lambda m: replacements[m.group(0)], command)
        if command.startswith("mlflow run . ") and "--env-manager" not in command:
            command = command.replace("mlflow run . ", "mlflow run . --env-manager local ", 1)
        commands.append(command)
    for folder in ("var", "log", "prom"):
        (root / folder).mkdir()
    return name, root, commands


def _example(examples, start: str) -> str:
    (match,) = [c for c in examples[2] if c.startswith(start)]
    return match


@pytest.mark.slow
@pytest.mark.extended
def test_the_registry_examples_run_as_written(examples, mlflow_server, registry, lab_model_factory):
    """models:/clf/1 (a clean lab model; the README's version 3 is a placeholder like the
    name: one version, one scan), then the README's registry commands, in the README's order
    but for the nightly scan, which runs first and scans it; the others find its verdict."""
    from baerase_mlops.registry.lab import register_lab_model

    name, root, _ = examples
    lab = lab_model_factory("clean")
    register_lab_model(lab.model, lab.spec, name, fmt="state_dict+spec")
    env = mlflow_server.env()
    cron = _run(_example(examples, "0 2 * * *").split(" ", 5)[5], root, env)  # the crontab line's command
    assert cron.returncode == 0, cron.stderr[-3000:]
    summary = json.loads(next((root / "log").glob("scan-*/summary.json")).read_text())
    assert summary["counts"]["scanned"] == 1
    assert 'baerase_registry_scan_versions{outcome="scanned"} 1.0' in (root / "prom" / "baerase.prom").read_text()
    # The README's first project line, as written (its second differs only by building a virtualenv).
    project = _run(_example(examples, f"mlflow run . -P model_uri=models:/{name}/1"), REPO, env)
    assert project.returncode == 0, project.stderr[-3000:]
    gate = _run(_example(examples, "baerase gate"), root, env)
    assert gate.returncode == 0 and "refused" not in gate.stdout, gate.stdout + gate.stderr[-2000:]
    assert dict(registry.get_registered_model(name).aliases) == {"champion": "1"}
    for start in ("mlflow run . --env-manager local -e gate", "mlflow run . --env-manager local -e registry_scan"):
        job = _run(_example(examples, start), REPO, env)
        assert job.returncode == 0, f"{start}: {job.stderr[-3000:]}"
    table = _run(_example(examples, f"baerase audit models:/{name}"), root, env)
    assert table.returncode == 0 and name in table.stdout, table.stderr
    for start in ("baerase audit --registry --format sarif", "baerase audit --registry --filter"):
        audit = _run(_example(examples, start), root, env)
        assert audit.returncode in (0, 1), audit.stderr  # 1: another test's backdoored model is in the registry
    assert json.loads((root / "baerase.sarif").read_text())["version"] == "2.1.0"
    assert f"| {name}/1 |" in audit.stdout  # the markdown table names a version name/N


@pytest.mark.slow
def test_the_webhook_example_serves_and_registers(examples, mlflow_server, registry):
    """The three lines of the webhook example, the receiver started in the background."""
    _, root, commands = examples
    start = commands.index(_example(examples, "export BAERASE_WEBHOOK_SECRET"))
    serve, register = commands[start + 1], commands[start + 2]
    url = register.split("--url ", 1)[1].split()[0]
    # The README starts the receiver with `&` and registers at once; here the script waits
    # for it to answer first (registration does not need it, but the test's cleanup does).
    script = "\n".join(
        [
            commands[start],
            serve,
            f"for i in $(seq 600); do curl -sf {url}health >/dev/null && break; sleep 0.2; done",
            register,
            "kill %1; wait",
        ]
    )
    result = _run(script, root, mlflow_server.env(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "webhook baerase-gate" in result.stdout and url in result.stdout
    (hook,) = [w for w in registry.list_webhooks() if w.name == "baerase-gate"]
    registry.delete_webhook(hook.webhook_id)
    assert (root / "var" / "queue.sqlite").exists()


@pytest.mark.slow
@pytest.mark.extended
def test_the_file_examples_train_scan_erase_and_explain_a_bad_clean_set(examples, mnist):
    """lab train, scan, erase, and the console example of a clean set stored as 0-255 floats."""
    _, root, _ = examples
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(root)}
    train = _run(_example(examples, "baerase lab train --dataset builtin:mnist"), root, env)
    assert train.returncode == 0, train.stderr[-3000:]
    scan = _run(_example(examples, "baerase scan  --model model.pt"), root, env)
    assert scan.returncode == 1, scan.stdout + scan.stderr[-3000:]  # the BadNets model is flagged
    erase = _run(_example(examples, "baerase erase"), root, env)
    assert erase.returncode == 0 and (root / "cleaned.pt").exists(), erase.stdout + erase.stderr[-3000:]
    every25th = slice(0, None, 25)  # 200 images of every class (builtin:mnist is stored grouped by class)
    np.savez(
        root / "floats255.npz", x=(mnist.x[every25th].numpy() * 255).astype("float32"), y=mnist.y[every25th].numpy()
    )
    bad = _run(_example(examples, "baerase scan --model model.pt --data floats255.npz"), root, env)
    expected = [
        line
        for line in README.read_text()
        .split("$ baerase scan --model model.pt --data floats255.npz\n", 1)[1]
        .splitlines()
    ][:2]
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert (
        expected[0].split(" (great_expectations")[0] in bad.stderr
        and expected[1].split(": 200 of 200")[0] in bad.stderr
    ), bad.stderr
