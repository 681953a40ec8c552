"""``python -m benchmarks.run --profile smoke|cpu|gpu``: run a profile, write BENCHMARKS.md,
the JSON of every run beside it (same name, .json) and the plot (same name, .png).

Exit 0 when every run completed, 2 when any failed (its error is in the table and the
JSON), 4 on a usage error: per DESIGN.md's exit codes.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from baerase_mlops.core.jsonable import json_safe
from baerase_mlops.core.runtime import resolve_device
from baerase_mlops.errors import BaeraseError, DataError, ExitCode
from benchmarks.cases import CASES
from benchmarks.machine import git_commit, load_average, machine_info, utc_now
from benchmarks.plot import plot_asr_vs_accuracy
from benchmarks.profiles import PROFILES, Profile, restrict, tiny
from benchmarks.report import render
from benchmarks.suite import Settings, run_dataset, run_scan_speed, scan_config, unlearning_config

ROOT = Path(__file__).resolve().parent.parent
# The committed tables; a partial or tiny run defaults to a scratch folder so it never overwrites them.
DEFAULT_OUT = {"cpu": ROOT / "BENCHMARKS.md", "gpu": ROOT / "BENCHMARKS-gpu.md"}
SCRATCH = ROOT / "benchmarks" / "out"


def log(message: str) -> None:
    """One timestamped line on stderr: the suite runs for an hour in the background, with logs."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _seeds(value: str | None) -> list[int] | None:
    try:
        return [int(v) for v in _csv(value)] if value else None
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", param_hint="--seeds") from None


def choose_profile(name: str, is_tiny: bool, datasets: str | None, seeds: str | None, cases: str | None, limit: int | None) -> Profile:
    profile = tiny(PROFILES[name]) if is_tiny else PROFILES[name]
    unknown = [c for c in _csv(cases) or [] if c not in CASES]
    if unknown:
        raise click.BadParameter(f"unknown case(s) {unknown}; choose from {list(CASES)}", param_hint="--cases")
    if datasets or seeds or cases or limit is not None:
        try:
            profile = restrict(profile, _csv(datasets), _seeds(seeds), _csv(cases), limit)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--datasets") from None
    return profile


def output_path(out: Path | None, profile_name: str, partial: bool) -> Path:
    if out is not None:
        return out
    if partial or profile_name not in DEFAULT_OUT:
        return SCRATCH / profile_name / "BENCHMARKS.md"
    return DEFAULT_OUT[profile_name]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", "profile_name", type=click.Choice(list(PROFILES)), default="smoke", show_default=True, help="smoke: CI-sized; cpu: all datasets on 2 cores in under an hour; gpu: ResNet-18 on one CUDA GPU.")
@click.option("--datasets-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("../shared/datasets"), show_default=True, help="Folder of mnist.npz, cifar10.npz, gtsrb.npz.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Markdown table to write; .json and .png go beside it [default: BENCHMARKS.md (cpu), BENCHMARKS-gpu.md (gpu), else benchmarks/out/PROFILE/].")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=ROOT / "benchmarks" / "cache", show_default=True, help="Trained lab models, reused across runs.")
@click.option("--no-cache", is_flag=True, help="Train every lab model afresh (in a temporary folder).")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [default: the profile's].")
@click.option("--datasets", default=None, help="Only these datasets (comma-separated).")
@click.option("--seeds", default=None, help="Only these seeds (comma-separated).")
@click.option("--cases", default=None, help=f"Only these cases (comma-separated: {', '.join(CASES)}).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many models per dataset (dry runs).")
@click.option("--tiny", "is_tiny", is_flag=True, help="Dry run: 1 epoch on a small subset and a few steps everywhere; numbers meaningless.")
@click.option("--skip-scan-speed", is_flag=True, help="Leave out the batched-vs-sequential scan micro-benchmark.")
@click.option("--render", "render_json", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None, help="Run nothing: rewrite the table and plot from this JSON of an earlier run (beside it, or --out).")
def main(profile_name, datasets_dir, out, cache_dir, no_cache, device, datasets, seeds, cases, limit, is_tiny, skip_scan_speed, render_json) -> int:
    """Benchmark BAERASE against NC unlearning and fine-tuning on real lab backdoors."""
    if render_json is not None:
        results = json.loads(render_json.read_text())
        files = write_outputs(results, out or render_json.with_suffix(".md"), write_json=False)
        log("rewrote " + ", ".join(str(f) for f in files) + f" from {render_json}")
        return ExitCode.PASSED
    profile = choose_profile(profile_name, is_tiny, datasets, seeds, cases, limit)
    check_datasets(profile, datasets_dir)
    partial = is_tiny or any(v is not None for v in (datasets, seeds, cases, limit)) or skip_scan_speed
    out_path = output_path(out, profile_name, partial)
    command = click.get_current_context().obj or "python -m benchmarks.run"
    dev = resolve_device(device or profile.device)
    with tempfile.TemporaryDirectory(prefix="baerase-bench-") as scratch:
        settings = Settings(profile, datasets_dir, Path(scratch) if no_cache else cache_dir, not no_cache, dev)
        results = run_profile(settings, command, skip_scan_speed)
    files = write_outputs(results, out_path)
    log("wrote " + ", ".join(str(f) for f in files))
    failed = sum(1 for r in results["runs"] if r.get("error")) + bool((results.get("scan_speed") or {}).get("error"))
    return ExitCode.ERROR if failed else ExitCode.PASSED


def command_line(args: list[str], prog_name: str) -> str:
    """The command as typed, so the table says exactly how to regenerate it."""
    return " ".join([prog_name, shlex.join(args)]).strip()


def run_profile(settings: Settings, command: str, skip_scan_speed: bool) -> dict[str, Any]:
    p = settings.profile
    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "profile": p.name,
            "summary": p.summary,
            "shortened": p.shortened,
            "command": command,
            "started_at": utc_now(),
            "load_average_start": load_average(),
            "machine": machine_info(settings.device),
            "git": git_commit(Path(__file__).resolve().parent.parent),
            "datasets_dir": str(settings.datasets_dir),
            "defences": list(p.defences),
            "datasets": [{**asdict(d), "lab_text": _lab_text(d.lab, d.seeds)} for d in p.datasets],
            "scan_config": json_safe(asdict(scan_config(p, 0))),
            "unlearning_config": json_safe(asdict(unlearning_config(p, 0))),
        },
        "runs": [],
    }
    log(f"profile {p.name}: {p.total_models()} models on {settings.device}; load average {load_average()}")
    for plan in p.datasets:
        run_dataset(settings, plan, log, results["runs"].append)
    if not skip_scan_speed:
        try:
            results["scan_speed"] = run_scan_speed(settings, log)
        except Exception as exc:  # reported in the table, like a failed run
            log(f"scan speed FAILED: {type(exc).__name__}: {exc}")
            results["scan_speed"] = {"error": f"{type(exc).__name__}: {exc}"}
    results["meta"].update(finished_at=utc_now(), wall_s=time.perf_counter() - started, load_average_end=load_average())
    return results


def _lab_text(lab: dict[str, Any], seeds: tuple[int, ...]) -> str:
    arch = lab.get("architecture", "small_cnn")
    settings = ", ".join(f"{k} {v}" for k, v in lab.items() if k != "architecture")
    return f"{arch}" + (f" ({settings})" if settings else " (lab defaults)") + f", seeds {list(seeds)}"


def write_outputs(results: dict[str, Any], out_path: Path, write_json: bool = True) -> list[Path]:
    """The JSON of every run, the plot and the table, side by side."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    json_path = out_path.with_suffix(".json")
    if write_json:
        json_path.write_text(json.dumps(json_safe(results), indent=1) + "\n")
    plot_path = out_path.with_suffix(".png")
    has_points = any(not r.get("error") and r["backdoored"] for r in results["runs"])
    if has_points:
        plot_asr_vs_accuracy(results["runs"], results["meta"]["defences"], plot_path)
    out_path.write_text(render(results, json_path.name, plot_path.name if has_points else None))
    return [out_path] + ([json_path] if write_json else []) + ([plot_path] if has_points else [])


def check_datasets(profile: Profile, datasets_dir: Path) -> None:
    """Fail before an hour of work, not in the middle of it, when a dataset file is missing."""
    missing = [d.source for d in profile.datasets if not d.source.startswith("builtin:") and not (datasets_dir / d.source).is_file()]
    if missing:
        raise DataError(f"{', '.join(missing)} not found in {datasets_dir}; pass --datasets-dir (see ../shared/datasets/README.md)")


def entry(args: list[str] | None = None, prog_name: str | None = None) -> int:
    """Run :func:`main` and map its outcome to DESIGN.md's exit codes (also behind ``baerase bench``)."""
    try:
        args = sys.argv[1:] if args is None else list(args)
        prog_name = prog_name or "python -m benchmarks.run"
        return int(main.main(args, prog_name=prog_name, standalone_mode=False, obj=command_line(args, prog_name)) or 0)
    except click.UsageError as exc:
        exc.show()
        return ExitCode.USAGE
    except BaeraseError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(entry(prog_name="python -m benchmarks.run"))
