"""Trace unlearning runs for simulate.py: unlearn for 200 steps without stopping and record, at
every measurement, what the defender sees (clean accuracy on every clean image, recovered-trigger
ASR on the stopping set) and what the lab knows (the attacker's real ASR and the accuracy on the
lab test split). One JSON line per unlearning seed, appended to OUT.

    cd benchmarks/results/erasure-min-steps-2026-12-06
    OMP_NUM_THREADS=1 PYTHONPATH=../../.. python trace.py zoo OUT 0,1 MODEL.pt ...
    OMP_NUM_THREADS=1 PYTHONPATH=../../.. python trace.py lab OUT 0,1 badnets,trojan,blended,badnets_random

``zoo`` takes cached zoo models, scanned as benchmarks.reerase scans them; ``lab`` trains the test
suite's lab models (tests/conftest.py LAB_MODELS; 200 clean images). The attacker's trigger is
measured by wrapping core.unlearning's recovered_trigger_asr, which the loop calls at every
measurement; the defence never sees those numbers.
"""

import json
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch

from baerase_mlops.config import ScanConfig, UnlearningConfig, VerificationConfig
from baerase_mlops.core import unlearning
from baerase_mlops.core.metrics import accuracy
from baerase_mlops.data import load_images
from baerase_mlops.engine import load_local_model, prepare_clean_data, run_scan, split_holdout
from baerase_mlops.lab.attacks import make_attack
from baerase_mlops.lab.spec import save_lab_model
from baerase_mlops.lab.train import real_asr, train_lab_model, true_attack

LAB = {
    "badnets": ("badnets", 0, {}),
    "trojan": ("trojan", 3, {}),
    "blended": ("blended", 7, {}),
    "badnets_random": ("badnets", 5, {"position": "random", "pattern": "checkerboard"}),
}


@contextmanager
def measuring_the_attack(mut, data, first_target: int, into: list):
    """Beside every recovered-trigger measurement of ``first_target``, the real ASR and test accuracy."""
    attack, target = true_attack(mut.lab_spec)
    test = data.evaluation
    original = unlearning.recovered_trigger_asr

    def wrapped(model, recovery, holdout, t, draws, generator, device):
        asr = original(model, recovery, holdout, t, draws, generator, device)
        if t == first_target:
            real = real_asr(model, test, attack, target, device)
            into.append({"real": real, "test_acc": accuracy(model, test.x, test.y, device)})
        return asr

    unlearning.recovered_trigger_asr = wrapped
    try:
        yield
    finally:
        unlearning.recovered_trigger_asr = original


def trace_runs(mut, data, scan, seeds: list[int]) -> list[dict]:
    targets = scan.verdict.flagged_classes
    stop_set, _ = split_holdout(scan, VerificationConfig().verify_fraction)
    test = data.evaluation
    before = accuracy(mut.model, test.x, test.y, torch.device("cpu"))
    lines = []
    for seed in seeds:
        lab_numbers: list[dict] = []
        config = replace(UnlearningConfig(), seed=seed, max_steps=200, target_asr=-1.0)  # never settles
        with measuring_the_attack(mut, data, targets[0], lab_numbers):
            result = unlearning.BaeraseUnlearning(config, "cpu").unlearn(
                mut.model, scan.optimisation, stop_set, scan.recovery, targets
            )
        points = [
            {"step": h.step, "clean_acc": h.clean_accuracy, "rec": h.recovered_asr, **lab}
            for h, lab in zip(result.history, lab_numbers)
        ]
        lines.append({"flagged": targets, "seed": seed, "test_acc_before": before, "trace": points})
    return lines


def zoo(out: Path, seeds: list[int], paths: list[str]) -> None:
    from benchmarks.labcache import load_cached_model

    for path in paths:
        cached = load_cached_model(Path(path))
        base = ScanConfig()
        config = replace(base, recovery=replace(base.recovery, seed=cached.seed))
        scan = run_scan(cached.mut, cached.data, config, "cpu")
        for line in trace_runs(cached.mut, cached.data, scan, seeds):
            append(out, {**cached.identity, **line})


def lab(out: Path, seeds: list[int], names: list[str]) -> None:
    mnist = load_images("builtin:mnist")
    folder = Path(tempfile.mkdtemp(prefix="trace-lab-"))
    for name in names:
        attack, target, kwargs = LAB[name]
        trained = train_lab_model(mnist, make_attack(attack, mnist.input_shape, **kwargs), target)
        save_lab_model(trained.model, trained.spec, folder / name / "model.pt")
        mut = load_local_model(folder / name / "model.pt")
        data = prepare_clean_data(None, mut)
        scan = run_scan(mut, data, device="cpu")
        for line in trace_runs(mut, data, scan, seeds):
            append(out, {"model": f"lab/{name}", "architecture": "lab", "attack": name, **line})


def append(out: Path, line: dict) -> None:
    with open(out, "a") as f:
        f.write(json.dumps(line) + "\n")
    print(line["model"], line["seed"], "done", flush=True)


if __name__ == "__main__":
    kind, out, seeds, rest = sys.argv[1], Path(sys.argv[2]), [int(s) for s in sys.argv[3].split(",")], sys.argv[4:]
    {"zoo": zoo, "lab": lab}[kind](out, seeds, rest if kind == "zoo" else rest[0].split(","))
