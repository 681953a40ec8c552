"""``python -m benchmarks.run --profile smoke|zoo``: run a profile (or a shard of it), merge its
runs into the table's JSON, and write BENCHMARKS.md, the JSON of every run beside it (same
name, .json) and the plot (same name, .png).

Shards: ``--datasets``, ``--archs``, ``--attacks``, ``--seeds`` pick part of the matrix; the runs
merge by run key (dataset/arch/case/seed) into the JSON at ``--out``, so the full matrix is built
over several runs, and a re-run of a cell replaces it. The JSON and the table are rewritten
after every model, so a run that is stopped keeps what it finished.

Exit 0 when every run completed, 2 when any failed (its error is in the table and the
JSON), 4 on a usage error: per DESIGN.md's exit codes.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import click

from baerase_mlops.core.jsonable import json_safe
from baerase_mlops.core.runtime import resolve_device
from baerase_mlops.errors import BaeraseError, DataError, ExitCode, UsageError
from benchmarks.cases import CASES
from benchmarks.labcache import default_cache_dir
from benchmarks.machine import git_commit, load_average, machine_info, utc_now
from benchmarks.merge import MergeError, load_results, merge
from benchmarks.peer import BackdoorBenchNC
from benchmarks.plot import plot_results
from benchmarks.profiles import DEFENCES, PROFILES, Profile, restrict, tiny
from benchmarks.report import render
from benchmarks.suite import Settings, add_peer_scans, run_dataset, scan_config, unlearning_config

ROOT = Path(__file__).resolve().parent.parent
# The committed table; smoke and tiny runs default to a scratch folder so they never touch it.
DEFAULT_OUT = {"zoo": ROOT / "BENCHMARKS.md"}
SCRATCH = ROOT / "benchmarks" / "out"


def log(message: str) -> None:
    """One timestamped line on stderr: the suite runs for hours in the background, with logs."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _seeds(value: str | None) -> list[int] | None:
    try:
        return [int(v) for v in _csv(value)] if value else None  # type: ignore[union-attr]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", param_hint="--seeds") from None


def choose_profile(
    name: str,
    *,
    is_tiny: bool = False,
    datasets: str | None = None,
    archs: str | None = None,
    seeds: str | None = None,
    attacks: str | None = None,
    limit: int | None = None,
) -> Profile:
    profile = tiny(PROFILES[name]) if is_tiny else PROFILES[name]
    unknown = [c for c in _csv(attacks) or [] if c not in CASES]
    if unknown:
        raise click.BadParameter(f"unknown attack(s) {unknown}; choose from {list(CASES)}", param_hint="--attacks")
    if datasets or archs or seeds or attacks or limit is not None:
        try:
            profile = restrict(
                profile,
                datasets=_csv(datasets),
                archs=_csv(archs),
                seeds=_seeds(seeds),
                cases=_csv(attacks),
                limit=limit,
            )
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--datasets/--archs") from None
    return profile


def output_path(out: Path | None, profile_name: str, is_tiny: bool) -> Path:
    if out is not None:
        return out
    if is_tiny or profile_name not in DEFAULT_OUT:
        return SCRATCH / (profile_name + ("-tiny" if is_tiny else "")) / "BENCHMARKS.md"
    return DEFAULT_OUT[profile_name]


def choose_defences(names: str) -> tuple[str, ...]:
    """The defences a shard runs, in the profile's order; an unknown name is a usage error."""
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(DEFENCES))
    if unknown or not chosen:
        raise UsageError(f"unknown defence(s) {unknown or [names]}; choose from {', '.join(DEFENCES)}")
    return tuple(d for d in DEFENCES if d in chosen)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--profile",
    "profile_name",
    type=click.Choice(list(PROFILES)),
    default="smoke",
    show_default=True,
    help="smoke: CI-sized; zoo: the benchmark matrix (run it in shards).",
)
@click.option(
    "--datasets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("../shared/datasets"),
    show_default=True,
    help="Folder of mnist.npz, cifar10.npz, gtsrb.npz.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=(
        "Markdown table to write; its .json (merged into when it exists) and .png go beside it "
        "[default: BENCHMARKS.md for zoo, else benchmarks/out/PROFILE/]."
    ),
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Trained lab models, reused across runs [default: $BAERASE_ZOO_CACHE, else ~/.cache/baerase-mlops/zoo].",
)
@click.option("--no-cache", is_flag=True, help="Train every lab model afresh (in a temporary folder).")
@click.option("--no-merge", is_flag=True, help="Replace the JSON at --out instead of merging into it.")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [default: the profile's].")
@click.option("--datasets", default=None, help="Shard: only these datasets (comma-separated).")
@click.option("--archs", default=None, help="Shard: only these architectures (comma-separated).")
@click.option(
    "--attacks",
    "--cases",
    "attacks",
    default=None,
    help=f"Shard: only these cases (comma-separated: {', '.join(CASES)}).",
)
@click.option("--seeds", default=None, help="Shard: only these seeds (comma-separated).")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most this many models per dataset (dry runs)."
)
@click.option(
    "--scans-only",
    is_flag=True,
    help="Run both scans of every model and no unlearning: detection shards (in the first zoo run the three "
    "unlearnings were about half of a model's defence time).",
)
@click.option(
    "--defences",
    default=None,
    help=f"Shard: only these defences (comma-separated: {', '.join(DEFENCES)}); both scans still run.",
)
@click.option(
    "--peer-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A BackdoorBench checkout: also run its Neural Cleanse detection on every model (off by default; "
    "needs opencv-python-headless, the 'peer' extra).",
)
@click.option(
    "--peer-only",
    is_flag=True,
    help="With --peer-dir: add the peer's scan to the runs already in --out's JSON (of the shard's selection), "
    "on the same cached models; nothing else runs.",
)
@click.option(
    "--tiny",
    "is_tiny",
    is_flag=True,
    help="Dry run: 1 epoch on a small subset and a few steps everywhere; numbers meaningless.",
)
@click.option(
    "--render",
    "render_json",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Run nothing: rewrite the table and plot from this JSON (beside it, or --out).",
)
@click.option(
    "--merge-from",
    "merge_from",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Run nothing: merge this shard's JSON (repeatable) into --out's, then rewrite its table and plot.",
)
def main(
    profile_name,
    datasets_dir,
    out,
    cache_dir,
    no_cache,
    no_merge,
    device,
    datasets,
    archs,
    attacks,
    seeds,
    limit,
    scans_only,
    defences,
    peer_dir,
    peer_only,
    is_tiny,
    render_json,
    merge_from,
) -> int:
    """Benchmark BAERASE against the product's Neural-Cleanse mode and fine-tuning on a zoo of real lab backdoors."""
    if render_json is not None:
        results = json.loads(render_json.read_text())
        files = write_outputs(results, out or render_json.with_suffix(".md"))
        log("rewrote " + ", ".join(str(f) for f in files) + f" from {render_json}")
        return ExitCode.PASSED
    if merge_from:
        out_path = output_path(out, profile_name, is_tiny)
        results = load_results(out_path.with_suffix(".json"))
        try:
            for shard_file in merge_from:
                results = merge(results, json.loads(shard_file.read_text()))
        except MergeError as exc:
            raise UsageError(str(exc)) from exc
        files = write_outputs(results, out_path, write_json=True)
        log("merged " + ", ".join(map(str, merge_from)) + "; wrote " + ", ".join(map(str, files)))
        return ExitCode.PASSED
    profile = choose_profile(
        profile_name, is_tiny=is_tiny, datasets=datasets, archs=archs, seeds=seeds, attacks=attacks, limit=limit
    )
    if scans_only:
        profile = replace(profile, defences=())
    elif defences:
        profile = replace(profile, defences=choose_defences(defences))
    check_datasets(profile, datasets_dir)
    peer = BackdoorBenchNC(peer_dir) if peer_dir is not None else None
    if peer is not None:
        peer.load()  # a checkout that cannot be imported fails now, not after the first model
    out_path = output_path(out, profile_name, is_tiny)
    previous = None if no_merge else load_results(out_path.with_suffix(".json"))
    if previous is not None and previous["meta"]["profile"] != profile.name:
        raise UsageError(
            f"{out_path.with_suffix('.json')} holds a {previous['meta']['profile']!r} run; "
            "pass another --out or --no-merge"
        )
    if peer_only and (peer is None or previous is None):
        raise UsageError(
            "--peer-only adds the peer's scan to runs already in a table: it needs --peer-dir and an existing "
            f"{out_path.with_suffix('.json')}"
        )
    command = click.get_current_context().obj or "python -m benchmarks.run"
    dev = resolve_device(device or profile.device)
    with tempfile.TemporaryDirectory(prefix="baerase-bench-") as scratch:
        settings = Settings(
            profile,
            datasets_dir,
            Path(scratch) if no_cache else (cache_dir or default_cache_dir()),
            not no_cache,
            dev,
            peer=peer,
        )
        shard = run_profile(settings, command, previous, out_path, peer_only=peer_only)
    failed = sum(1 for r in shard["runs"] if r.get("error"))
    return ExitCode.ERROR if failed else ExitCode.PASSED


def command_line(args: list[str], prog_name: str) -> str:
    """The command as typed, so the table says exactly how to regenerate it."""
    return " ".join([prog_name, shlex.join(args)]).strip()


def shard_meta(settings: Settings, command: str) -> dict[str, Any]:
    p = settings.profile
    return {
        "command": command,
        "started_at": utc_now(),
        "load_average_start": load_average(),
        "machine": machine_info(settings.device),
        "git": git_commit(ROOT),
        "datasets_dir": str(settings.datasets_dir),
        "cache_dir": str(settings.cache_dir),
        "models": p.total_models(),
        "peer": {"dir": str(settings.peer.peer_dir), "commit": settings.peer.commit} if settings.peer else None,
        "datasets": [{**asdict(d), "lab_text": _lab_text(d)} for d in p.datasets],
    }


def run_profile(
    settings: Settings, command: str, previous: dict[str, Any] | None, out_path: Path, *, peer_only: bool = False
) -> dict[str, Any]:
    """Run the shard (``peer_only``: only the peer, on ``previous``'s runs); after every model merge
    what is done into ``previous`` and rewrite the outputs. Returns the shard's own results (its runs only)."""
    p = settings.profile
    started = time.perf_counter()
    meta = shard_meta(settings, command)
    shard: dict[str, Any] = {
        "meta": {
            "profile": p.name,
            "summary": p.summary,
            "shortened": p.shortened,
            "defences": list(p.defences),
            "scan_config": json_safe(asdict(scan_config(p, 0))),
            "nc_scan_config": json_safe(asdict(scan_config(p, 0, "neural_cleanse"))),
            "unlearning_config": json_safe(asdict(unlearning_config(p, 0))),
            "dataset_order": [d.name for d in p.datasets],
            "arch_order": list(dict.fromkeys(a for d in p.datasets for a in d.archs)),
            "shards": [meta],
        },
        "runs": [],
    }
    if peer_only and previous is not None:
        # The product ran nothing in this shard: the table keeps the settings its runs were made with.
        kept = ("scan_config", "nc_scan_config", "unlearning_config")
        shard["meta"] |= {k: previous["meta"][k] for k in kept if k in previous.get("meta", {})}
    what = "the peer only, on the table's runs among " if peer_only else ""
    log(
        f"profile {p.name}: {what}{p.total_models()} models on {settings.device}; cache {settings.cache_dir}; "
        f"load average {load_average()}"
    )

    def record(run: dict[str, Any]) -> None:
        shard["runs"].append(run)
        meta.update(
            finished_at=utc_now(),
            wall_s=time.perf_counter() - started,
            load_average_end=load_average(),
            runs=len(shard["runs"]),
        )
        files = write_outputs(merge(previous, json_safe(shard)), out_path, write_json=True)
        log(f"  wrote {', '.join(str(f) for f in files)}")

    if peer_only:
        add_peer_scans(settings, previous["runs"] if previous else [], log, record)
    else:
        for plan in p.datasets:
            run_dataset(settings, plan, log, record)
    if not shard["runs"]:
        log("nothing to run")
    return shard


def _lab_text(plan: Any) -> str:
    parts = []
    for arch, overrides in plan.archs.items():
        settings = ", ".join(f"{k} {v}" for k, v in overrides.items())
        parts.append(f"{arch}" + (f" ({settings})" if settings else " (lab defaults)"))
    return "; ".join(parts) + f"; seeds {list(plan.seeds)}"


def write_outputs(results: dict[str, Any], out_path: Path, write_json: bool = False) -> list[Path]:
    """The JSON of every run (when ``write_json``), the plot and the table, side by side."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    json_path = out_path.with_suffix(".json")
    if write_json:
        tmp = json_path.with_name(f".{json_path.name}.tmp")
        tmp.write_text(json.dumps(json_safe(results), indent=1) + "\n")
        tmp.replace(json_path)  # a run stopped mid-write never leaves half a JSON
    plot_path = out_path.with_suffix(".png")
    has_points = plot_results(results["runs"], results["meta"]["defences"], plot_path)
    out_path.write_text(render(results, json_path.name, plot_path.name if has_points else None))
    return [out_path] + ([json_path] if write_json else []) + ([plot_path] if has_points else [])


def check_datasets(profile: Profile, datasets_dir: Path) -> None:
    """Fail before an hour of work, not in the middle of it, when a dataset file is missing."""
    missing = [
        d.source
        for d in profile.datasets
        if not d.source.startswith("builtin:") and not (datasets_dir / d.source).is_file()
    ]
    if missing:
        raise DataError(
            f"{', '.join(missing)} not found in {datasets_dir}; pass --datasets-dir (see ../shared/datasets/README.md)"
        )


def entry(args: list[str] | None = None, prog_name: str | None = None) -> int:
    """Run :func:`main` and map its outcome to DESIGN.md's exit codes (also behind ``baerase bench``)."""
    try:
        args = sys.argv[1:] if args is None else list(args)
        prog_name = prog_name or "python -m benchmarks.run"
        return int(main.main(args, prog_name=prog_name, standalone_mode=False, obj=command_line(args, prog_name)) or 0)
    except click.UsageError as exc:
        exc.show()
        return ExitCode.USAGE
    except MergeError as exc:
        click.echo(f"error: {exc}", err=True)
        return ExitCode.USAGE
    except BaeraseError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(entry(prog_name="python -m benchmarks.run"))
