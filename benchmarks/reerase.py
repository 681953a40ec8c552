"""``python -m benchmarks.reerase MODEL.pt ... --variant shift='{"trigger_shift": 12}' --seeds 0,1,2``:
erase cached zoo models again under other unlearning settings, one JSON line per model, variant
and unlearning seed, to weigh a setting by the attacker's real trigger without training anything.

Each model is scanned once as the benchmark scans it (its own seed, the product's scan, 5% of its
lab training split as the clean set); every variant then unlearns from that same scan, so the
lines of one model differ only in the unlearning. The real ASR and accuracy are measured on the
lab test split. ``--verify`` adds the independent verification (a re-scan and a trigger search:
the slow part) to every line. The default variant ``default`` is ``UnlearningConfig()``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from baerase_mlops.config import ScanConfig, UnlearningConfig, VerificationConfig
from baerase_mlops.core.unlearning import UNLEARNING_METHODS
from baerase_mlops.engine import run_erase, run_scan
from benchmarks.labcache import load_cached_model
from benchmarks.lines import emit


def reerase(
    path: Path, variants: dict[str, dict[str, Any]], seeds: list[int], method: str, device: str, verify: bool
) -> list[dict[str, Any]]:
    cached = load_cached_model(path)
    mut, data = cached.mut, cached.data
    base = ScanConfig()
    scan = run_scan(mut, data, replace(base, recovery=replace(base.recovery, seed=cached.seed)), device)
    lines = []
    for name, overrides in variants.items():
        for seed in seeds:
            config = replace(UnlearningConfig(), seed=seed, **overrides)
            started = time.perf_counter()
            out = run_erase(
                mut, data, scan, config, method, device, verification=VerificationConfig() if verify else None
            )
            m = out.metrics
            lines.append(
                {
                    **cached.identity,
                    "flagged": scan.verdict.flagged_classes,
                    "method": method,
                    "variant": name,
                    "overrides": overrides,
                    "seed": seed,
                    "wall_s": time.perf_counter() - started,
                    "accuracy_before": m["accuracy_before"],
                    "accuracy_after": m["accuracy_after"],
                    "accuracy_on": m["accuracy_on"],
                    "asr_kind": m["asr_kind"],
                    "asr_before": m["asr_before"],
                    "asr_after": m["asr_after"],
                    "recovered_asr_after": m.get("recovered_asr_after"),
                    "unlearning_steps": m.get("unlearning_steps", 0),
                    "verified": out.verified if verify else None,
                    "verified_asr": m.get("verified_asr"),
                    "verification_reasons": m.get("verification_reasons"),
                    "verification_larger_trigger_asr": m.get("verification_larger_trigger_asr"),
                    "verification_larger_trigger_ceiling": m.get("verification_larger_trigger_ceiling"),
                }
            )
    return lines


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=JSON`` -> (NAME, the UnlearningConfig overrides), checked against its fields."""
    name, sep, body = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{text!r} is not NAME=JSON", param_hint="--variant")
    try:
        overrides = json.loads(body)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{name}: not JSON: {exc}", param_hint="--variant") from exc
    if not isinstance(overrides, dict):
        raise click.BadParameter(f"{name}: a JSON object of UnlearningConfig fields", param_hint="--variant")
    try:
        replace(UnlearningConfig(), **overrides)
    except TypeError as exc:
        raise click.BadParameter(f"{name}: {exc}", param_hint="--variant") from exc
    return name, overrides


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--variant", "variant_texts", multiple=True, help="NAME=JSON of UnlearningConfig overrides (repeatable).")
@click.option("--seeds", default="0", show_default=True, help="Unlearning seeds, comma-separated.")
@click.option("--method", type=click.Choice(sorted(UNLEARNING_METHODS)), default="baerase", show_default=True)
@click.option("--verify", is_flag=True, help="Run the independent verification on every candidate too.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Append the lines here too.")
def main(
    models: tuple[Path, ...],
    variant_texts: tuple[str, ...],
    seeds: str,
    method: str,
    verify: bool,
    device: str,
    out: Path | None,
) -> None:
    variants = dict(parse_variant(t) for t in variant_texts) or {"default": {}}
    try:
        seed_list = [int(s) for s in seeds.split(",")]
    except ValueError as exc:
        raise click.BadParameter(f"{seeds!r} is not a comma-separated list of integers", param_hint="--seeds") from exc
    for path in models:
        for line in reerase(path, variants, seed_list, method, device, verify):
            emit(line, out)


if __name__ == "__main__":
    main()
