"""``python -m benchmarks.cost --out FILE.md``: what a scan costs as the number of classes grows.

One trained model per class count, each scanned with the product's defaults the way the
benchmark scans it (its zoo seed, 5% of its lab training split as the clean set):

* 10 classes: MNIST ``small_cnn`` (the zoo's recipe);
* 43 classes: GTSRB ``small_cnn`` (the zoo's recipe);
* 100 classes: two-digit MNIST, built here from ../shared's MNIST (two digits side by side, each
  squeezed to 14 px wide, class = 10 x left + right; no download), ``small_cnn``.

Each model carries the zoo's random-position checkerboard (``--case``), so the table also says
whether the target was found at that size. Every model is scanned twice, one after the other in
the same process: with the defaults, and with the class schedule as it was before its panel
(``screen_panel=0``: the smaller half of the classes goes on after the screen, whatever their
number), so that the saving is a ratio measured on one machine in one run. Models come from the
zoo cache (trained once, like the zoo's). Lines go to ``--out``'s .jsonl, the table to ``--out``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from baerase_mlops.config import ScanConfig
from baerase_mlops.data import load_images
from baerase_mlops.engine import CleanData, prepare_clean_data, run_scan
from baerase_mlops.lab.train import true_attack
from benchmarks.cases import make_case
from benchmarks.labcache import default_cache_dir, obtain_lab_model
from benchmarks.lines import emit
from benchmarks.machine import load_average, machine_info, utc_now
from benchmarks.memory import PeakMemory, Stopwatch
from benchmarks.profiles import ZOO, DatasetPlan

TWO_DIGIT = DatasetPlan("mnist100", "mnist100.npz", {"small_cnn": {"epochs": 3}}, seeds=(0,))
PLANS = {
    10: (next(p for p in ZOO.datasets if p.name == "mnist"), "small_cnn"),
    43: (next(p for p in ZOO.datasets if p.name == "gtsrb"), "small_cnn"),
    100: (TWO_DIGIT, "small_cnn"),
}
VARIANTS = {"defaults": {}, "before the panel (screen_panel=0)": {"screen_panel": 0}}
# The first scan of a process paid for its warm-up (10 classes, one loaded thread: 30.6 s of recovery
# with the defaults, then 24.3 s for the same steps without the panel, which changes nothing there):
# one short scan of each model goes first, in the JSON and not in the table. Two identical scans
# still differ by some 10% on this machine (18.7 and 16.6 s on 2 idle threads, 2026-12-07).
WARM_UP = "warm-up (20 steps; not in the table)"


def write_two_digit_mnist(mnist: Path, path: Path, seed: int = 0) -> None:
    """Two-digit MNIST as an .npz of 60,000 training images: image i's digit on the left, a
    shuffled partner's on the right, each averaged down to 28 x 14; class 10 * left + right."""
    data = np.load(mnist)
    x, y = data["x_train"][..., 0].astype(np.float32), data["y_train"]
    partner = np.random.default_rng(seed).permutation(len(x))
    halves = (x[:, :, 0::2] + x[:, :, 1::2]) / 2  # 28 x 14: every pair of columns averaged
    images = np.concatenate([halves, halves[partner]], axis=2).round().astype(np.uint8)[..., None]
    labels = (10 * y + y[partner]).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, x_train=images, y_train=labels, classes=np.array([f"{k:02d}" for k in range(100)]))
    tmp.replace(path)


def scan_record(
    classes: int, plan: DatasetPlan, arch: str, lab: Any, data: CleanData, variant: str, device: str
) -> dict[str, Any]:
    config = ScanConfig()
    settings = {"steps": 20, "screen_steps": 10, "round_steps": 10} if variant == WARM_UP else VARIANTS[variant]
    config = replace(config, recovery=replace(config.recovery, seed=0, **settings))
    with PeakMemory(torch.device(device)) as peak, Stopwatch() as watch:
        v = run_scan(lab.mut, data, config, device).verdict
    truth = true_attack(lab.mut.lab_spec) if lab.mut.lab_spec else None
    target = truth[1] if truth else None
    steps = [c.steps for c in v.classes]
    return {
        "classes": classes,
        "dataset": plan.name,
        "arch": arch,
        "model": str(lab.path),
        "accuracy": lab.accuracy,
        "asr": lab.asr,
        "target": target,
        "variant": variant,
        "settings": settings,
        "flagged": v.flagged_classes,
        "target_found": target in v.flagged_classes,
        "target_index": v.classes[target].anomaly_index if target is not None else None,
        "anomaly_index": v.anomaly_index,
        "clean_images": len(data.clean),
        "wall_s": watch.wall_s,
        "cpu_s": watch.cpu_s,
        "timings": dict(v.timings),
        "class_steps": steps,
        "class_steps_share": sum(steps) / (len(steps) * config.recovery.steps),
        "memory": peak.result.to_json() if peak.result else None,
        "load_average": load_average(),
        "finished_at": utc_now(),
    }


def table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| classes | dataset | arch | schedule | target found (index) | scan wall, s | recovery, s "
        "| class-steps used | peak RSS, MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r["variant"] not in VARIANTS:
            continue  # the warm-up
        found = f"{'yes' if r['target_found'] else 'no'} ({r['target_index']:.2f})" if r["target"] is not None else "-"
        rss = f"{r['memory']['rss_peak_mib']:.0f}" if r.get("memory") else "-"
        lines.append(
            f"| {r['classes']} | {r['dataset']} | {r['arch']} | {r['variant']} | {found} | {r['wall_s']:.1f} "
            f"| {r['timings']['recovery_s']:.1f} | {100 * r['class_steps_share']:.0f}% | {rss} |"
        )
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Markdown table to write.")
@click.option("--classes", default="10,43,100", show_default=True, help="Class counts (comma-separated: 10, 43, 100).")
@click.option("--case", default="badnets_random", show_default=True, help="The zoo case each model carries.")
@click.option(
    "--datasets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("../shared/datasets"),
    show_default=True,
)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--into",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="A benchmark table's JSON (BENCHMARKS.json): put these runs in it as its cost section and render it again.",
)
def main(
    out: Path, classes: str, case: str, datasets_dir: Path, cache_dir: Path | None, device: str, into: Path | None
) -> None:
    """Scan one model per class count, with the defaults and with the schedule before its panel."""
    counts = [int(c) for c in classes.split(",")]
    if unknown := sorted(set(counts) - set(PLANS)):
        raise click.BadParameter(f"no model for {unknown} classes; choose from {sorted(PLANS)}", param_hint="--classes")
    cache = cache_dir or default_cache_dir()
    generated = cache / "data"  # where the two-digit set is written, once
    if 100 in counts and not (generated / TWO_DIGIT.source).is_file():
        write_two_digit_mnist(datasets_dir / "mnist.npz", generated / TWO_DIGIT.source)
    jsonl = out.with_suffix(".jsonl")
    records = []
    for count in counts:
        plan, arch = PLANS[count]
        source_dir = generated if plan is TWO_DIGIT else datasets_dir
        uri = plan.uri(source_dir)
        images = load_images(uri)
        shape, n = images.input_shape, images.num_classes
        del images
        lab = obtain_lab_model(
            plan, arch, make_case(case, 0, shape, n), uri, source_dir, cache, reuse=True, device=device
        )
        data = prepare_clean_data(None, lab.mut, seed=0)  # once: every scan of the model reads the same images
        for variant in [WARM_UP, *VARIANTS]:
            record = {
                **scan_record(count, plan, arch, lab, data, variant, device),
                "machine": machine_info(torch.device(device)),
            }
            emit(record, jsonl)
            records.append(record)
    out.write_text(
        f"# Scan cost against the number of classes ({utc_now()})\n\n"
        "`python -m benchmarks.cost` (module docstring: what is scanned, and how). One model per row pair; "
        "each scanned with the defaults, then with the class schedule before its panel.\n\n" + table(records)
    )
    if into is not None:
        from benchmarks.run import write_outputs  # the table's renderer, as --render uses it

        results = json.loads(into.read_text())
        results["cost"] = records  # one controlled run (its warm-ups too); an earlier one stays in its own --out
        write_outputs(results, into.with_suffix(".md"), write_json=True)
    click.echo(json.dumps({"out": str(out), "runs": len(records)}))


if __name__ == "__main__":
    main()
