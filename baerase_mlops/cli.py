"""The ``baerase`` command: parse, call the library, print. Exit codes per DESIGN.md."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from baerase_mlops import __version__
from baerase_mlops.errors import BaeraseError, ExitCode


class BaeraseGroup(click.Group):
    """Maps errors to DESIGN.md's exit codes: usage 4, user-facing errors 2 (or their own)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:  # --help, --version
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            exc.show()
            sys.exit(ExitCode.USAGE)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(ExitCode.ERROR)
        except BaeraseError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(int(rv or 0))


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
@click.option("--dataset", "dataset_uri", default="builtin:mnist", show_default=True, help="Data URI (builtin:mnist, a .npz, an image folder, s3://...).")
@click.option("--attack", type=click.Choice(["badnets", "trojan", "blended", "none"]), default="badnets", show_default=True)
@click.option("--target", type=int, default=0, show_default=True, help="Label the trigger sends images to.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where to write the state_dict (the spec goes beside it as .json).")
@click.option("--poison-rate", type=float, default=None, help="Share of the training set poisoned [default: 0.1].")
@click.option("--size", type=int, default=None, help="Patch size in pixels (badnets, trojan).")
@click.option("--position", default=None, help="Patch position ROW,COL, or 'random' for anywhere (badnets, trojan).")
@click.option("--pattern", type=click.Choice(["solid", "checkerboard", "random"]), default="solid", show_default=True, help="BadNets patch pattern.")
@click.option("--alpha", type=float, default=0.15, show_default=True, help="Blend ratio (blended).")
@click.option("--trigger-seed", type=int, default=0, show_default=True)
@click.option("--arch", type=click.Choice(["small_cnn", "resnet18"]), default=None, help="Architecture [default: small_cnn].")
@click.option("--epochs", type=int, default=None, help="Training epochs [default: 6].")
@click.option("--seed", type=int, default=None, help="Seed of the split, the poisoning and the training [default: 0].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def lab_train(dataset_uri, attack, target, out, poison_rate, size, position, pattern, alpha, trigger_seed, arch, epochs, seed, device, quiet) -> int:
    """Poison a dataset with ATTACK toward TARGET, train a model, save it, print ACC and ASR."""
    from baerase_mlops.lab.service import train_and_save

    with _progress(quiet) as progress:
        result, paths = train_and_save(
            dataset_uri, attack, target, out,
            poison_rate=poison_rate, size=size, position=_position(position), pattern=pattern, alpha=alpha,
            trigger_seed=trigger_seed, architecture=arch, epochs=epochs, seed=seed, device=device, progress=progress,
        )  # fmt: skip
    from baerase_mlops.report.console import key_value_table, percent, stdout

    stdout.print(
        key_value_table(
            f"lab model: {attack} -> class {target}",
            [("clean accuracy", percent(result.accuracy)), ("attack success rate", percent(result.asr)),
             ("model", str(paths[0])), ("spec", str(paths[1]))],
        )  # fmt: skip
    )
    return ExitCode.PASSED


def _floats(value: str | None, option: str) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}", param_hint=option) from None


def model_options(f):
    """--model / --spec / --mean / --std: the model under examination."""
    f = click.option("--std", default=None, help="Per-channel std the model expects (comma-separated); the tool wraps the model so it takes [0, 1] pixels.")(f)
    f = click.option("--mean", default=None, help="Per-channel mean the model expects (comma-separated), with --std.")(f)
    f = click.option("--spec", "spec_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="The model's JSON spec [default: beside the model, .json].")(f)
    return click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The model's state_dict (lab format).")(f)


def scan_options(f, data_help: str = "Clean data URI [default: the dataset the spec records]."):
    """Options shared by scan and erase (and, with their own --data help, the registry commands)."""
    for decorator in reversed([
        click.option("--data", "data_uri", default=None, help=data_help),
        click.option("--clean-fraction", type=float, default=None, help="Share of the data used as the clean set [default: 5% of a lab model's training split, else all]."),
        click.option("--skip-validation", is_flag=True, help="Do not validate the clean data with Great Expectations (recorded in the report); the basic data checks still apply."),
        click.option("--method", type=click.Choice(["baerase", "neural_cleanse"]), default="baerase", show_default=True, help="Trigger recovery method."),
        click.option("--threshold", type=float, default=None, help="Anomaly-index threshold [default: 2.0]."),
        click.option("--steps", type=int, default=None, help="Recovery optimiser steps [default: 400]."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]):  # fmt: skip
        f = decorator(f)
    return f


def erase_options(f):
    """Options of the unlearning (erase and the registry commands, which erase a found backdoor)."""
    for decorator in reversed([
        click.option("--unlearning", type=click.Choice(["baerase", "nc_unlearning", "fine_tuning"]), default="baerase", show_default=True, help="Unlearning method."),
        click.option("--target-asr", type=float, default=None, help="Stop once the recovered-trigger ASR is at or under this [default: 0.01]."),
        click.option("--max-accuracy-drop", type=float, default=None, help="Largest clean-accuracy loss a kept checkpoint may have [default: 0.02]."),
    ]):  # fmt: skip
        f = decorator(f)
    return f


def _scan_config(method: str, threshold: float | None, steps: int | None, seed: int):
    from dataclasses import replace

    from baerase_mlops.config import ScanConfig

    config = ScanConfig(method=method)
    recovery = replace(config.recovery, seed=seed, **({"steps": steps} if steps is not None else {}))
    detection = replace(config.detection, **({"threshold": threshold} if threshold is not None else {}))
    return replace(config, recovery=recovery, detection=detection)


def _load(model_path, spec_path, mean, std, data_uri, clean_fraction, skip_validation, seed):
    from baerase_mlops.engine import load_local_model, prepare_clean_data

    mut = load_local_model(model_path, spec_path, _floats(mean, "--mean"), _floats(std, "--std"))
    return mut, prepare_clean_data(data_uri, mut, clean_fraction, seed, skip_validation=skip_validation)


@main.command("scan")
@model_options
@scan_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("baerase-report"), show_default=True, help="Report folder.")
def scan_cmd(model_path, spec_path, mean, std, data_uri, clean_fraction, skip_validation, method, threshold, steps, seed, device, quiet, out_dir) -> int:
    """Recover every class's trigger and test for a backdoor. Exit 0: none found, 1: backdoor, 2: error."""
    from baerase_mlops.engine import run_scan
    from baerase_mlops.report.console import stdout
    from baerase_mlops.report.scan_report import write_scan_report
    from baerase_mlops.report.terminal import verdict_table

    mut, data = _load(model_path, spec_path, mean, std, data_uri, clean_fraction, skip_validation, seed)
    with _progress(quiet) as progress:
        result = run_scan(mut, data, _scan_config(method, threshold, steps, seed), device, progress)
    files = write_scan_report(result, out_dir)
    stdout.print(verdict_table(result.verdict))
    stdout.print(f"clean data: {data.description}")
    stdout.print(f"[bold]{result.verdict.summary()}[/bold]")
    stdout.print(f"report: {files['verdict'].parent}/ (verdict.json, triggers.png, norms.png)")
    return ExitCode.BACKDOOR if result.verdict.backdoor else ExitCode.PASSED


@main.command("erase")
@model_options
@scan_options
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where to write the cleaned state_dict (its spec goes beside it).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Reuse this scan report instead of scanning first.")
@erase_options
def erase_cmd(model_path, spec_path, mean, std, data_uri, clean_fraction, skip_validation, method, threshold, steps, seed, device, quiet, out_path, report_dir, unlearning, target_asr, max_accuracy_drop) -> int:
    """Scan (unless --report), unlearn the flagged triggers, write the cleaned model.

    Exit 0: erased within bounds, or nothing flagged (the model is written unchanged);
    1: a backdoor was found but not erased within the bounds; 2: error."""
    from baerase_mlops.engine import erase_job
    from baerase_mlops.report.console import stdout
    from baerase_mlops.report.terminal import erasure_table, verdict_table

    mut, data = _load(model_path, spec_path, mean, std, data_uri, clean_fraction, skip_validation, seed)
    with _progress(quiet) as progress:
        outcome, scan, files = erase_job(
            mut, data, _scan_config(method, threshold, steps, seed), out_path, report_dir,
            unlearning=unlearning, target_asr=target_asr, max_accuracy_drop=max_accuracy_drop, seed=seed, device=device, progress=progress,
        )  # fmt: skip
    stdout.print(verdict_table(scan.verdict))
    stdout.print(f"[bold]{scan.verdict.summary()}[/bold]")
    stdout.print(erasure_table(outcome.metrics))
    if not outcome.changed:
        stdout.print("nothing flagged: the model goes through unchanged")
    stdout.print(f"model: {files['model']}  spec: {files['spec']}  report: {files['report']}/")
    if outcome.changed and not outcome.metrics.get("reached_target"):
        stdout.print("[bold red]the recovered-trigger ASR did not reach its target within the accuracy bound[/bold red]")
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
        stdout.print(key_value_table(f"models:/{DEMO_MODEL}/{mv.version}: {recorded.verdict or 'not scanned'}", sorted(recorded.tags.items())))
    return ExitCode.PASSED


def registry_options(f):
    """The job settings of the registry commands (gate, scan-registry, audit, serve-webhooks):
    the same as the MLflow project's, so that a verdict current for one is current for all."""
    f = click.option("--std", default=None, help="Per-channel std the models expect (comma-separated).")(f)
    f = click.option("--mean", default=None, help="Per-channel mean the models expect (comma-separated), with --std.")(f)
    f = click.option("--trust-pickle", is_flag=True, help="Allow pickled models (modelscan scans them first).")(f)
    data_help = "Clean data URI [default: the one the version's last scan used (tag baerase.data_uri), else the registered model's tag baerase.data_uri, else builtin:mnist]."
    return scan_options(erase_options(f), data_help)


def _registry_settings(options: dict):
    """(JobSettings, the data URI override) from registry_options; unset options keep the job's defaults."""
    from baerase_mlops.registry.job import JobSettings

    mean, std = _floats(options["mean"], "--mean"), _floats(options["std"], "--std")
    chosen = {
        "threshold": options["threshold"], "recovery_steps": options["steps"], "target_asr": options["target_asr"],
        "max_accuracy_drop": options["max_accuracy_drop"], "clean_fraction": options["clean_fraction"],
    }  # fmt: skip
    settings = JobSettings(
        model_uri="", method=options["method"], unlearning=options["unlearning"], device=options["device"], seed=options["seed"],
        trust_pickle=options["trust_pickle"], mean=tuple(mean) if mean else None, std=tuple(std) if std else None,
        skip_validation=options["skip_validation"], **{k: v for k, v in chosen.items() if v is not None},
    )  # fmt: skip
    return settings, options["data_uri"]


def _gate_policy(max_asr: float | None, settings):
    from baerase_mlops.config import GatePolicy

    return GatePolicy(max_asr=GatePolicy.max_asr if max_asr is None else max_asr, max_accuracy_drop=settings.max_accuracy_drop)


@main.command("gate")
@click.argument("model_uri")
@click.option("--alias", required=True, help="The alias to set when the version passed (e.g. champion).")
@click.option("--max-asr", type=float, default=None, help="Largest ASR a cleaned version may keep [default: 0.02].")
@click.option("--erase/--no-erase", default=True, show_default=True, help="When the gate scans and finds a backdoor, erase it and register the cleaned version.")
@registry_options
def gate_cmd(model_uri, alias, max_asr, erase, **options) -> int:
    """Set ALIAS on MODEL_URI only if it passed (verdict clean, or cleaned within bounds); scan
    it first when its verdict is not current. Exit 0: promoted, 1: refused (alias unchanged), 2: error."""
    from baerase_mlops.registry.versions import connect_registry
    from baerase_mlops.report.registry_console import print_gate
    from baerase_mlops.registry.gate import run_gate

    settings, data_uri = _registry_settings(options)
    client = connect_registry()
    with _progress(options["quiet"]) as progress:
        result = run_gate(client, model_uri, alias, settings, _gate_policy(max_asr, settings), data_uri, erase, progress)
    print_gate(result)
    return ExitCode.PASSED if result.promoted else ExitCode.BACKDOOR


@main.command("scan-registry")
@click.option("--filter", "filter_string", default=None, help="Registered-model search filter, e.g. \"name LIKE 'clf%'\" [default: every model].")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="A local process pool, or one Ray task per version.")
@click.option("--workers", type=int, default=None, help="Scans at once [default: 2].")
@click.option("--ray-address", default=None, help="Ray cluster to use [default: RAY_ADDRESS, else a local instance].")
@click.option("--erase/--scan-only", default=True, show_default=True, help="Erase found backdoors and register cleaned versions, or write verdicts only.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("baerase-registry-scan"), show_default=True, help="Summary folder (JSON, Markdown, HTML).")
@click.option("--metrics-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write the summary numbers here in Prometheus text format (node-exporter textfile collector: a *.prom file).")
@registry_options
def scan_registry_cmd(filter_string, executor, workers, ray_address, erase, out_dir, metrics_file, **options) -> int:
    """Scan every registered version whose verdict is not current. Exit 0: no open backdoor,
    1: a version carries a backdoor with no cleaned version, 2: a scan failed, 3: nothing matched."""
    from dataclasses import replace

    from baerase_mlops.config import RegistryScanConfig
    from baerase_mlops.registry.registry_scan import run_registry_scan
    from baerase_mlops.registry.versions import connect_registry
    from baerase_mlops.report.registry_console import print_registry_scan

    settings, data_uri = _registry_settings(options)
    config = replace(RegistryScanConfig(), executor=executor, erase=erase, ray_address=ray_address, **({"workers": workers} if workers is not None else {}))
    client = connect_registry()
    with _progress(options["quiet"]) as progress:
        total = {"n": 0, "done": 0}

        def planned(plan) -> None:
            total["n"] = len(plan.to_scan)
            progress("registry scan", 0, total["n"])

        def done(result) -> None:
            total["done"] += 1
            progress("registry scan", total["done"], total["n"])

        result = run_registry_scan(client, settings, config, filter_string, data_uri, out_dir, planned, done, metrics_file=metrics_file)
    print_registry_scan(result)
    return result.exit_code()


@main.command("audit")
@click.argument("model_uri", required=False)
@click.option("--registry", "whole_registry", is_flag=True, help="Audit every registered model (with --filter, those that match).")
@click.option("--filter", "filter_string", default=None, help="Registered-model search filter (with --registry).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "sarif", "markdown"]), default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the report here [default: stdout].")
@click.option("--strict", is_flag=True, help="Also exit 1 on versions never scanned, failed scans, and backdoored versions that have a cleaned successor.")
@registry_options
def audit_cmd(model_uri, whole_registry, filter_string, fmt, output, strict, **options) -> int:
    """What the registry records for MODEL_URI (models:/name for every version) or --registry.
    Exit 0: no open backdoor, 1: a backdoored version with no cleaned version, 2: error, 3: nothing to audit."""
    from baerase_mlops.registry.audit import audit_exit_code, audit_versions
    from baerase_mlops.registry.versions import connect_registry
    from baerase_mlops.report.audit_report import render_audit
    from baerase_mlops.report.console import write_rendered

    settings, data_uri = _registry_settings(options)
    rows = audit_versions(connect_registry(), model_uri, whole_registry, settings, filter_string, data_uri)
    write_rendered(render_audit(rows, fmt), output)
    return audit_exit_code(rows, strict)


@main.command("serve-webhooks")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8787, show_default=True)
@click.option("--queue", "queue_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("baerase-webhooks.sqlite"), show_default=True, help="The durable job queue (SQLite).")
@click.option("--secret", envvar="BAERASE_WEBHOOK_SECRET", default=None, help="The webhook's signing secret [env: BAERASE_WEBHOOK_SECRET].")
@click.option("--protect", default="champion,production", show_default=True, help="Comma-separated aliases that only versions that passed may hold.")
@click.option("--workers", type=int, default=None, help="Scans at once; 0 only queues [default: 1].")
@click.option("--lease", "lease_s", type=float, default=None, help="Seconds a claimed job stays claimed without renewal [default: 120].")
@click.option("--tolerance", "tolerance_s", type=int, default=None, help="Largest age (seconds) of a delivery [default: 300].")
@click.option("--max-asr", type=float, default=None, help="Largest ASR a cleaned version may keep [default: 0.02].")
@click.option("--erase/--scan-only", default=True, show_default=True)
# The HTTP side (uvicorn): --http-workers, not --workers, which counts scans at once.
@click.option("--http-workers", type=int, default=1, show_default=True, help="uvicorn processes answering HTTP (the scans stay in this one).")
@click.option("--ssl-certfile", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Serve HTTPS with this PEM certificate (with --ssl-keyfile).")
@click.option("--ssl-keyfile", type=click.Path(dir_okay=False, path_type=Path), default=None, help="The PEM private key of --ssl-certfile.")
@registry_options
def serve_webhooks_cmd(host, port, queue_path, secret, protect, workers, lease_s, tolerance_s, max_asr, erase, http_workers, ssl_certfile, ssl_keyfile, **options) -> int:
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
    from baerase_mlops.webhooks.queue import JobQueue
    from baerase_mlops.webhooks.metrics import ReceiverMetrics
    from baerase_mlops.webhooks.receiver import Receiver, ServeOptions, check_secret, serve
    from baerase_mlops.webhooks.worker import WorkerContext, Workers

    secret = check_secret(secret)
    serve_options = ServeOptions(host, port, http_workers, ssl_certfile, ssl_keyfile)
    settings, data_uri = _registry_settings(options)
    given = {"workers": workers, "lease_s": lease_s, "tolerance_s": tolerance_s}
    protected = tuple(a.strip() for a in protect.split(",") if a.strip())
    config = replace(WebhookConfig(), host=host, port=port, protected_aliases=protected, erase=erase, **{k: v for k, v in given.items() if v is not None})
    if config.workers < 0:
        raise click.BadParameter("must be 0 or more", param_hint="--workers")
    connect_registry()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    queue = JobQueue(queue_path)
    metrics = ReceiverMetrics()
    workers_ = Workers(WorkerContext(queue, settings, _gate_policy(max_asr, settings), config, mlflow.get_tracking_uri(), data_uri, metrics))
    receiver = Receiver(queue, secret, config, workers_.notify, metrics)
    serve(receiver, workers_, serve_options, ready=lambda url: click.echo(f"listening on {url} (queue {queue_path})", err=True))
    return ExitCode.PASSED


@main.command("register-webhook")
@click.option("--url", required=True, help="Where the receiver listens, as the tracking server reaches it (e.g. http://gate-host:8787/).")
@click.option("--secret", envvar="BAERASE_WEBHOOK_SECRET", default=None, help="The signing secret, as given to serve-webhooks [env: BAERASE_WEBHOOK_SECRET].")
@click.option("--name", default="baerase-gate", show_default=True, help="Webhook name; an existing webhook of that name is updated.")
def register_webhook_cmd(url, secret, name) -> int:
    """Register (or update) the webhook on the tracking server: new versions, alias changes, tags."""
    from baerase_mlops.registry.versions import connect_registry
    from baerase_mlops.webhooks.receiver import register_webhook

    webhook = register_webhook(connect_registry(), url, secret, name)
    click.echo(f"webhook {webhook.name} ({webhook.webhook_id}) -> {webhook.url}: {', '.join(str(e) for e in webhook.events)}")
    return ExitCode.PASSED


@main.command("bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
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
