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


def _progress(quiet: bool):
    from baerase_mlops.report.console import progress_bars

    return progress_bars(enabled=not quiet)


if __name__ == "__main__":
    main()
