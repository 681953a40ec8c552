"""The ``baerase`` command: parse, call the library, print. Exit codes per DESIGN.md."""

from __future__ import annotations

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


def scan_options(f):
    """Options shared by scan and erase."""
    for decorator in reversed([
        click.option("--data", "data_uri", default=None, help="Clean data URI [default: the dataset the spec records]."),
        click.option("--clean-fraction", type=float, default=None, help="Share of the data used as the clean set [default: 5% of a lab model's training split, else all]."),
        click.option("--method", type=click.Choice(["baerase", "neural_cleanse"]), default="baerase", show_default=True, help="Trigger recovery method."),
        click.option("--threshold", type=float, default=None, help="Anomaly-index threshold [default: 2.0]."),
        click.option("--steps", type=int, default=None, help="Recovery optimiser steps [default: 400]."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
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


def _load(model_path, spec_path, mean, std, data_uri, clean_fraction, seed):
    from baerase_mlops.jobs import load_local_model, prepare_clean_data

    mut = load_local_model(model_path, spec_path, _floats(mean, "--mean"), _floats(std, "--std"))
    return mut, prepare_clean_data(data_uri, mut, clean_fraction, seed)


@main.command("scan")
@model_options
@scan_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("baerase-report"), show_default=True, help="Report folder.")
def scan_cmd(model_path, spec_path, mean, std, data_uri, clean_fraction, method, threshold, steps, seed, device, quiet, out_dir) -> int:
    """Recover every class's trigger and test for a backdoor. Exit 0: none found, 1: backdoor, 2: error."""
    from baerase_mlops.jobs import run_scan
    from baerase_mlops.report.console import stdout
    from baerase_mlops.report.scan_report import write_scan_report
    from baerase_mlops.report.terminal import verdict_table

    mut, data = _load(model_path, spec_path, mean, std, data_uri, clean_fraction, seed)
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
@click.option("--unlearning", type=click.Choice(["baerase", "nc_unlearning", "fine_tuning"]), default="baerase", show_default=True, help="Unlearning method.")
@click.option("--target-asr", type=float, default=None, help="Stop once the recovered-trigger ASR is at or under this [default: 0.01].")
@click.option("--max-accuracy-drop", type=float, default=None, help="Largest clean-accuracy loss a kept checkpoint may have [default: 0.02].")
def erase_cmd(model_path, spec_path, mean, std, data_uri, clean_fraction, method, threshold, steps, seed, device, quiet, out_path, report_dir, unlearning, target_asr, max_accuracy_drop) -> int:
    """Scan (unless --report), unlearn the flagged triggers, write the cleaned model.

    Exit 0: erased within bounds, or nothing flagged (the model is written unchanged);
    1: a backdoor was found but not erased within the bounds; 2: error."""
    from baerase_mlops.jobs import erase_job
    from baerase_mlops.report.console import stdout
    from baerase_mlops.report.terminal import erasure_table, verdict_table

    mut, data = _load(model_path, spec_path, mean, std, data_uri, clean_fraction, seed)
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


@main.command("bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_cmd(args) -> int:
    """Run the benchmark suite and write BENCHMARKS.md (as python -m benchmarks.run; --help for its options)."""
    from benchmarks.run import entry

    return entry(list(args), prog_name="baerase bench")


def _progress(quiet: bool):
    from baerase_mlops.report.console import progress_bars

    return progress_bars(enabled=not quiet)


if __name__ == "__main__":
    main()
