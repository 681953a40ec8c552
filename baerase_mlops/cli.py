"""The ``baerase`` command: parse, call the library, print. Exit codes per DESIGN.md."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from baerase_mlops import __version__
from baerase_mlops.config import ERASE_OPTIONS, REGISTRY_OPTIONS, SCAN_OPTIONS, SETTINGS, LabConfig, Setting
from baerase_mlops.errors import BaeraseError, ExitCode, UsageError, at_boundary, say
from baerase_mlops.lab.names import ARCHITECTURES, ATTACKS, BADNETS_PATTERNS, TRIGGER_DEFAULTS


def run_command(
    command: click.Command,
    args: Sequence[str] | None = None,
    prog_name: str | None = None,
    on_error: Callable[[int, str], None] | None = None,
) -> int:
    """Parse and run ``command`` behind the error boundary: DESIGN.md's exit code, and a user
    error is one line (usage 4, errors 2), never a traceback and never 1."""

    def work() -> int:
        try:
            return int(command.main(args, prog_name, standalone_mode=False) or 0)
        except click.exceptions.Exit as exc:  # --help, --version
            return exc.exit_code
        except click.exceptions.NoArgsIsHelpError as exc:  # a bare `baerase`: its help
            click.echo(exc.format_message())
            return ExitCode.USAGE
        except click.UsageError as exc:
            where = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            raise UsageError(f"{exc.format_message()}{where}") from None
        except click.Abort:
            say("aborted")
            return ExitCode.ERROR
        return ExitCode.PASSED

    return at_boundary(work, on_error)


class BaeraseGroup(click.Group):
    """The ``baerase`` group, run behind the error boundary (``run_command``)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        # click's own main (super()), parsed and run behind the boundary: one exit code, one line
        sys.exit(run_command(super(), args, prog_name or "baerase"))


_METAVARS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN", "floats": "NUMBERS"}


class SettingType(click.ParamType):
    """A click type that converts and checks a value with its schema Setting (config.SETTINGS),
    so that the CLI, the MLproject and the webhook payload refuse the same values alike."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        self.name = setting.kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        label = param.opts[0] if param is not None and param.opts else None
        return self.setting.convert(value, label)  # a UsageError: exit 4, one line

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str | None:
        names = self.setting.choice_names()
        return "[" + "|".join(names) + "]" if names else _METAVARS[self.setting.kind]


def setting_option(name: str, *, flags: Sequence[str] | None = None, help: str | None = None, mlproject: bool = False):
    """The click option of schema setting ``name``: its flags, type, default, help and checks.

    ``mlproject`` is the spelling of the MLproject's entry scripts: ``--<name>`` only, and every
    value a string as MLflow passes it (``--register false``, ``--mean ""``)."""
    s = SETTINGS[name]
    flags = tuple(flags or ((s.option,) if mlproject else s.flags))
    text = help or s.help[:1].upper() + s.help[1:] + "."
    if s.kind == "bool" and not mlproject:
        if s.default:  # on by default: the flag's off side switches it off
            decl = flags[0] if "/" in flags[0] else f"{flags[0]}/--no-{flags[0][2:]}"
            return click.option(decl, name, default=True, show_default=True, help=text)
        return click.option(*flags, name, is_flag=True, default=False, help=text)
    return click.option(
        *flags,
        name,
        type=SettingType(s),
        default=s.default,
        required=s.required,
        show_default=s.default is not None and not s.required,
        help=text,
    )


def setting_options(names: Sequence[str], *, mlproject: bool = False, helps: dict[str, str] | None = None) -> Callable:
    """A decorator adding ``setting_option`` for each of ``names``, in that order in --help."""

    def decorate(f: Callable) -> Callable:
        for name in reversed(names):
            f = setting_option(name, mlproject=mlproject, help=(helps or {}).get(name))(f)
        return f

    return decorate


@click.group(cls=BaeraseGroup)
@click.version_option(__version__, prog_name="baerase")
def main() -> None:
    """baerase: find and erase backdoors in PyTorch image classifiers (BAERASE)."""


@main.group()
def lab() -> None:
    """Make backdoored (and clean) models to test the defence on."""


def _position(value: str | None) -> tuple[int, int] | str | None:
    if value is None or value == "random":
        return value
    try:
        row, col = (int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected ROW,COL or 'random', got {value!r}", param_hint="--position") from None
    return row, col


@lab.command("train")
@click.option(
    "--dataset",
    "dataset_uri",
    default="builtin:mnist",
    show_default=True,
    help="Data URI (builtin:mnist, a .npz, an image folder, s3://...).",
)
@click.option(
    "--attack",
    type=click.Choice(ATTACKS),
    default="badnets",
    show_default=True,
    help="Lab defaults per attack: see baerase_mlops.lab.attacks.",
)
@click.option("--target", type=int, default=0, show_default=True, help="Label the trigger sends images to.")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the state_dict (the spec goes beside it as .json).",
)
@click.option(
    "--poison-rate",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help=f"Share of the training set poisoned [default: {LabConfig.poison_rate}].",
)
@click.option("--size", type=int, default=None, help="Patch size in pixels (badnets, trojan).")
@click.option("--position", default=None, help="Patch position ROW,COL, or 'random' for anywhere (badnets, trojan).")
@click.option(
    "--pattern",
    type=click.Choice(BADNETS_PATTERNS),
    default=None,
    help=f"BadNets patch pattern [default: {TRIGGER_DEFAULTS['pattern']}].",
)
@click.option(
    "--alpha", type=float, default=None, help=f"Blend ratio (blended) [default: {TRIGGER_DEFAULTS['alpha']}]."
)
@click.option(
    "--trigger-seed",
    type=int,
    default=None,
    help=f"Seed of the trigger's pattern [default: {TRIGGER_DEFAULTS['trigger_seed']}].",
)
@click.option("--arch", type=click.Choice(ARCHITECTURES), default=None, help="Architecture [default: small_cnn].")
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help=f"Training epochs [default: {LabConfig.epochs}]."
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help=f"Seed of the split, the poisoning and the training [default: {LabConfig.seed}].",
)
@setting_option("device")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def lab_train(
    dataset_uri,
    attack,
    target,
    out,
    poison_rate,
    size,
    position,
    pattern,
    alpha,
    trigger_seed,
    arch,
    epochs,
    seed,
    device,
    quiet,
) -> int:
    """Poison a dataset with ATTACK toward TARGET, train a model, save it, print ACC and ASR."""
    from baerase_mlops.lab.service import train_and_save

    with _progress(quiet) as progress:
        result, paths = train_and_save(
            dataset_uri,
            attack,
            target,
            out,
            poison_rate=poison_rate,
            size=size,
            position=_position(position),
            pattern=pattern,
            alpha=alpha,
            trigger_seed=trigger_seed,
            architecture=arch,
            epochs=epochs,
            seed=seed,
            device=device,
            progress=progress,
        )
    from baerase_mlops.report.console import key_value_table, percent, stdout

    stdout.print(
        key_value_table(
            f"lab model: {attack} -> class {target}",
            [
                ("clean accuracy", percent(result.accuracy)),
                ("attack success rate", percent(result.asr)),
                ("model", str(paths[0])),
                ("spec", str(paths[1])),
            ],
        )
    )
    return ExitCode.PASSED


def model_options(f):
    """--model / --spec / --mean / --std: the model under examination."""
    f = setting_options(("mean", "std"))(f)
    f = click.option(
        "--spec",
        "spec_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="The model's JSON spec [default: beside the model, .json].",
    )(f)
    return click.option(
        "--model",
        "model_path",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        help="The model's state_dict (lab format).",
    )(f)


def scan_options(f, data_help: str = "Clean data URI [default: the dataset the spec records]."):
    """Options shared by scan and erase (and, with their own --data help, the registry commands)."""
    f = click.option("--quiet", is_flag=True, help="No progress bars.")(f)
    return setting_options(SCAN_OPTIONS, helps={"data_uri": data_help})(f)


def erase_options(f):
    """Options of the unlearning (erase and the registry commands, which erase a found backdoor)."""
    return setting_options(ERASE_OPTIONS)(f)


def _local_settings(model_path: Path, options: dict):
    """The settings of a local scan or erasure (checked as a job's are)."""
    from baerase_mlops.registry.job import JobSettings

    return JobSettings.from_options(options, model_uri=str(model_path))


def _load(model_path, spec_path, settings):
    from baerase_mlops.engine import load_local_model, prepare_clean_data

    mut = load_local_model(model_path, spec_path, settings.mean, settings.std)
    data = prepare_clean_data(
        settings.data_uri, mut, settings.clean_fraction, settings.seed, skip_validation=settings.skip_validation
    )
    return mut, data


@main.command("scan")
@model_options
@scan_options
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("baerase-report"),
    show_default=True,
    help="Report folder.",
)
def scan_cmd(model_path, spec_path, quiet, out_dir, **options) -> int:
    """Recover every class's trigger and test for a backdoor. Exit 0: none found, 1: backdoor, 2: error."""
    from baerase_mlops.engine import run_scan
    from baerase_mlops.report.console import stdout
    from baerase_mlops.report.scan_report import write_scan_report
    from baerase_mlops.report.terminal import verdict_table

    settings = _local_settings(model_path, options)
    mut, data = _load(model_path, spec_path, settings)
    with _progress(quiet) as progress:
        result = run_scan(mut, data, settings.scan_config(), settings.device, progress)
    files = write_scan_report(result, out_dir)
    stdout.print(verdict_table(result.verdict))
    stdout.print(f"clean data: {data.description}")
    stdout.print(f"[bold]{result.verdict.summary()}[/bold]")
    stdout.print(f"report: {files['verdict'].parent}/ (verdict.json, triggers.png, norms.png)")
    return ExitCode.BACKDOOR if result.verdict.backdoor else ExitCode.PASSED


@main.command("erase")
@model_options
@scan_options
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the cleaned state_dict (its spec goes beside it).",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Reuse this scan report instead of scanning first.",
)
@erase_options
def erase_cmd(model_path, spec_path, quiet, out_path, report_dir, **options) -> int:
    """Scan (unless --report), unlearn the flagged triggers, write the cleaned model.

    Exit 0: erased within bounds and verified by a fresh scan, or nothing flagged (the model
    is written unchanged); 1: a backdoor was found but not erased within the bounds, or the
    erasure failed verification; 2: error."""
    from baerase_mlops.engine import cleaned_refusal, erase_job
    from baerase_mlops.report.console import stdout
    from baerase_mlops.report.terminal import erasure_table, verdict_table

    settings = _local_settings(model_path, options)
    mut, data = _load(model_path, spec_path, settings)
    with _progress(quiet) as progress:
        outcome, scan, files = erase_job(
            mut,
            data,
            settings.scan_config(),
            out_path,
            report_dir,
            unlearning=settings.unlearning,
            target_asr=settings.target_asr,
            max_accuracy_drop=settings.max_accuracy_drop,
            seed=settings.seed,
            device=settings.device,
            progress=progress,
        )
    stdout.print(verdict_table(scan.verdict))
    stdout.print(f"[bold]{scan.verdict.summary()}[/bold]")
    stdout.print(erasure_table(outcome.metrics))
    if not outcome.changed:
        stdout.print("nothing flagged: the model goes through unchanged")
    stdout.print(f"model: {files['model']}  spec: {files['spec']}  report: {files['report']}/")
    refusal = (
        cleaned_refusal(outcome, target_asr=settings.target_asr, max_accuracy_drop=settings.max_accuracy_drop)
        if outcome.changed
        else None
    )
    if refusal is not None:
        if outcome.verified:
            stdout.print(f"[bold red]{refusal[1]}[/bold red]")
        else:
            for reason in outcome.verification.reasons if outcome.verification is not None else ["not verified"]:
                stdout.print(f"[bold red]verification failed: {reason}[/bold red]")
        stdout.print("[bold red]the written model is NOT cleaned: do not ship it[/bold red]")
        return ExitCode.BACKDOOR
    return ExitCode.PASSED


@main.command("demo")
@click.option("--tracking-uri", default=None, help="[default: sqlite:///mlflow.db in the project folder]")
def demo_cmd(tracking_uri) -> int:
    """The embedded default: register a backdoored demo model as models:/clf/1, run the
    MLflow project on it, and print the verdict and the cleaned version's tags."""
    import mlflow

    from baerase_mlops.registry.demo import DEMO_MODEL, ensure_demo_model, project_root, run_project
    from baerase_mlops.registry.tags import read_verdict
    from baerase_mlops.report.console import key_value_table, stdout

    uri = tracking_uri or f"sqlite:///{project_root() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    os.chdir(project_root())  # the SQLite store keeps its artifacts in ./mlruns
    with _progress(False) as progress:
        model_uri = ensure_demo_model(progress)
    code = run_project(model_uri, uri)
    if code != 0:
        raise BaeraseError(f"the MLflow project failed (exit code {code})")
    client = mlflow.MlflowClient()
    for mv in sorted(client.search_model_versions(f"name = '{DEMO_MODEL}'"), key=lambda v: int(v.version)):
        recorded = read_verdict(mv.tags)
        stdout.print(
            key_value_table(
                f"models:/{DEMO_MODEL}/{mv.version}: {recorded.verdict or 'not scanned'}", sorted(recorded.tags.items())
            )
        )
    return ExitCode.PASSED


def registry_options(f):
    """The job settings of the registry commands (gate, scan-registry, audit, serve-webhooks):
    the same as the MLflow project's, so that a verdict current for one is current for all."""
    data_help = (
        "Clean data URI [default: the one the version's last scan used (tag baerase.data_uri), else the registered "
        "model's tag baerase.data_uri, else builtin:mnist]."
    )
    f = click.option("--quiet", is_flag=True, help="No progress bars.")(f)
    return setting_options(REGISTRY_OPTIONS, helps={"data_uri": data_help})(f)


def _registry_settings(options: dict):
    """(JobSettings, the data URI override) from registry_options: the base settings carry no
    data URI, since each version is judged on its own (registry.versions.data_uri_for)."""
    from baerase_mlops.registry.job import JobSettings

    return JobSettings.from_options({k: v for k, v in options.items() if k != "data_uri"}), options["data_uri"]


def _gate_policy(max_asr: float, settings):
    from baerase_mlops.config import GatePolicy

    return GatePolicy(max_asr=max_asr, max_accuracy_drop=settings.max_accuracy_drop)


@main.command("gate")
@click.argument("model_uri")
@click.option("--alias", required=True, help="The alias to set when the version passed (e.g. champion).")
@setting_option("max_asr")
@setting_option("erase", flags=("--erase/--no-erase",))
@registry_options
def gate_cmd(model_uri, alias, max_asr, erase, **options) -> int:
    """Set ALIAS on MODEL_URI only if it passed (verdict clean, or cleaned within bounds); scan
    it first when its verdict is not current. Exit 0: promoted, 1: refused (alias unchanged), 2: error."""
    from baerase_mlops.registry.gate import run_gate
    from baerase_mlops.registry.versions import connect_registry
    from baerase_mlops.report.registry_console import print_gate

    settings, data_uri = _registry_settings(options)
    client = connect_registry()
    with _progress(options["quiet"]) as progress:
        result = run_gate(
            client, model_uri, alias, settings, _gate_policy(max_asr, settings), data_uri, erase, progress
        )
    print_gate(result)
    return ExitCode.PASSED if result.promoted else ExitCode.BACKDOOR


@main.command("scan-registry")
@setting_options(("filter", "executor", "workers", "ray_address"))
@setting_option("erase", flags=("--erase/--scan-only",))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("baerase-registry-scan"),
    show_default=True,
    help="Summary folder (JSON, Markdown, HTML).",
)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=(
        "Also write the summary numbers here in Prometheus text format "
        "(node-exporter textfile collector: a *.prom file)."
    ),
)
@registry_options
def scan_registry_cmd(filter, executor, workers, ray_address, erase, out_dir, metrics_file, **options) -> int:
    """Scan every registered version whose verdict is not current. Exit 0: no open backdoor,
    1: a version carries a backdoor with no cleaned version, 2: a scan failed, 3: nothing matched."""
    from dataclasses import replace

    from baerase_mlops.config import RegistryScanConfig
    from baerase_mlops.registry.registry_scan import run_registry_scan
    from baerase_mlops.registry.versions import connect_registry
    from baerase_mlops.report.registry_console import print_registry_scan

    settings, data_uri = _registry_settings(options)
    config = replace(RegistryScanConfig(), executor=executor, erase=erase, ray_address=ray_address, workers=workers)
    client = connect_registry()
    with _progress(options["quiet"]) as progress:
        total = {"n": 0, "done": 0}

        def planned(plan) -> None:
            total["n"] = len(plan.to_scan)
            progress("registry scan", 0, total["n"])

        def done(result) -> None:
            total["done"] += 1
            progress("registry scan", total["done"], total["n"])

        result = run_registry_scan(
            client, settings, config, filter, data_uri, out_dir, planned, done, metrics_file=metrics_file
        )
    print_registry_scan(result)
    return result.exit_code()


@main.command("audit")
@click.argument("model_uri", required=False)
@click.option(
    "--registry", "whole_registry", is_flag=True, help="Audit every registered model (with --filter, those that match)."
)
@setting_option("filter", help="Registered-model search filter (with --registry).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "sarif", "markdown"]), default="table", show_default=True
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report here [default: stdout].",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Also exit 1 on versions never scanned, failed scans, backdoored versions that have a cleaned successor, "
    "and cleaned versions outside the bounds.",
)
@setting_option("max_asr", help="Largest ASR a cleaned version holding an alias may keep.")
@registry_options
def audit_cmd(model_uri, whole_registry, filter, fmt, output, strict, max_asr, **options) -> int:
    """What the registry records for MODEL_URI (models:/name for every version) or --registry.

    Exit 0: safe; 1: the version asked about (models:/name/N, @alias) carries a backdoor, even
    with a cleaned version, or an alias points at a version that has not passed the gate, or a
    backdoored version has no cleaned version; 2: error; 3: nothing to audit."""
    from baerase_mlops.registry.audit import audit_exit_code, audit_versions, is_one_version
    from baerase_mlops.registry.versions import connect_registry
    from baerase_mlops.report.audit_report import render_audit
    from baerase_mlops.report.console import write_rendered

    settings, data_uri = _registry_settings(options)
    policy = _gate_policy(max_asr, settings)
    rows = audit_versions(connect_registry(), model_uri, whole_registry, settings, filter, data_uri, policy=policy)
    write_rendered(render_audit(rows, fmt), output)
    one_version = is_one_version(model_uri)
    code = audit_exit_code(rows, strict, one_version=one_version)
    if code != ExitCode.PASSED and one_version:
        say(rows[0].decision.reason)  # names the cleaned version to use instead, where there is one
    return code


@main.command("serve-webhooks")
@setting_options(("host", "port"))
@click.option(
    "--queue",
    "queue_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("baerase-webhooks.sqlite"),
    show_default=True,
    help="The durable job queue (SQLite).",
)
@click.option(
    "--secret",
    envvar="BAERASE_WEBHOOK_SECRET",
    default=None,
    help="The webhook's signing secret [env: BAERASE_WEBHOOK_SECRET].",
)
@setting_options(("protect", "webhook_workers", "lease_s", "tolerance_s", "max_asr"))
@setting_option("erase", flags=("--erase/--scan-only",))
# The HTTP side (uvicorn): --http-workers, not --workers, which counts scans at once.
@click.option(
    "--http-workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="uvicorn processes answering HTTP (the scans stay in this one).",
)
@click.option(
    "--ssl-certfile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Serve HTTPS with this PEM certificate (with --ssl-keyfile).",
)
@click.option(
    "--ssl-keyfile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The PEM private key of --ssl-certfile.",
)
@registry_options
def serve_webhooks_cmd(
    host,
    port,
    queue_path,
    secret,
    protect,
    webhook_workers,
    lease_s,
    tolerance_s,
    max_asr,
    erase,
    http_workers,
    ssl_certfile,
    ssl_keyfile,
    **options,
) -> int:
    """Receive MLflow's registry webhooks: scan every new version, keep protected aliases on
    versions that passed; GET /health and /metrics (Prometheus). Runs until interrupted (SIGINT/SIGTERM)."""
    import logging
    import os
    import tempfile
    from dataclasses import replace

    if http_workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Before prometheus_client is imported: the HTTP processes then share the counters.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="baerase-metrics-")
    import mlflow

    from baerase_mlops.config import WebhookConfig
    from baerase_mlops.registry.versions import connect_registry
    from baerase_mlops.webhooks.metrics import ReceiverMetrics
    from baerase_mlops.webhooks.queue import JobQueue
    from baerase_mlops.webhooks.receiver import Receiver, ServeOptions, check_secret, serve
    from baerase_mlops.webhooks.worker import WorkerContext, Workers

    secret = check_secret(secret)
    serve_options = ServeOptions(host, port, http_workers, ssl_certfile, ssl_keyfile)
    settings, data_uri = _registry_settings(options)
    protected = tuple(a.strip() for a in protect.split(",") if a.strip())
    config = replace(
        WebhookConfig(),
        host=host,
        port=port,
        protected_aliases=protected,
        erase=erase,
        workers=webhook_workers,
        lease_s=lease_s,
        tolerance_s=tolerance_s,
    )
    connect_registry()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    queue = JobQueue(queue_path)
    metrics = ReceiverMetrics()
    workers_ = Workers(
        WorkerContext(
            queue, settings, _gate_policy(max_asr, settings), config, mlflow.get_tracking_uri(), data_uri, metrics
        )
    )
    receiver = Receiver(queue, secret, config, workers_.notify, metrics)
    serve(
        receiver,
        workers_,
        serve_options,
        ready=lambda url: click.echo(f"listening on {url} (queue {queue_path})", err=True),
    )
    return ExitCode.PASSED


@main.command("register-webhook")
@click.option(
    "--url",
    required=True,
    help="Where the receiver listens, as the tracking server reaches it (e.g. http://gate-host:8787/).",
)
@click.option(
    "--secret",
    envvar="BAERASE_WEBHOOK_SECRET",
    default=None,
    help="The signing secret, as given to serve-webhooks [env: BAERASE_WEBHOOK_SECRET].",
)
@click.option(
    "--name",
    default="baerase-gate",
    show_default=True,
    help="Webhook name; an existing webhook of that name is updated.",
)
def register_webhook_cmd(url, secret, name) -> int:
    """Register (or update) the webhook on the tracking server: new versions, alias changes, tags."""
    from baerase_mlops.registry.versions import connect_registry
    from baerase_mlops.webhooks.receiver import register_webhook

    webhook = register_webhook(connect_registry(), url, secret, name)
    click.echo(
        f"webhook {webhook.name} ({webhook.webhook_id}) -> {webhook.url}: {', '.join(str(e) for e in webhook.events)}"
    )
    return ExitCode.PASSED


@main.command(
    "bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_cmd(args) -> int:
    """Run the benchmark suite and write BENCHMARKS.md (as python -m benchmarks.run; --help for its options).

    The suite lives in a checkout's ``benchmarks/`` folder, not in the installed library: run it
    from the root of a clone."""
    import importlib

    # Found at run time from the checkout, so the installed library never depends on it.
    if Path("benchmarks/run.py").is_file() and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        entry = importlib.import_module("benchmarks.run").entry
    except ImportError:
        raise BaeraseError(
            "baerase bench needs the benchmark suite of a baerase-mlops checkout: run it from the root of a clone "
            "(the folder with benchmarks/run.py), or use python -m benchmarks.run there"
        ) from None
    return entry(list(args), prog_name="baerase bench")


def _progress(quiet: bool):
    from baerase_mlops.report.console import progress_bars

    return progress_bars(enabled=not quiet)


if __name__ == "__main__":
    main()
