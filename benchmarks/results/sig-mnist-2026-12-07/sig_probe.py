"""SIG on MNIST LeNet-5 with the zoo's recipe, stamping less than the whole target class.

Run from the project root (it appends to sig-lenet5.jsonl beside this file):
``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/results/sig-mnist-2026-12-07/sig_probe.py``"""

import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from baerase_mlops.data import load_images
from baerase_mlops.lab.attacks import make_attack
from baerase_mlops.lab.train import train_lab_model
from benchmarks.labcache import lab_config
from benchmarks.profiles import PROFILES

torch.set_num_threads(1)
plan = next(d for d in PROFILES["zoo"].datasets if d.name == "mnist")
data = load_images(plan.uri(Path("../shared/datasets")))
with open(Path(__file__).with_name("sig-lenet5.jsonl"), "a") as out:
    for seed in (0, 1):
        for rate, delta in [(0.04, 0.3), (0.02, 0.3), (0.04, 0.2)]:
            config = replace(lab_config(plan, "lenet5", seed), poison_rate=rate)
            start = time.time()
            r = train_lab_model(data, make_attack("sig", data.input_shape, delta=delta), 3, config, device="cpu")
            record = {
                "arch": "lenet5",
                "seed": seed,
                "rate": rate,
                "delta": delta,
                "acc": r.accuracy,
                "asr": r.asr,
                "poisoned": r.spec.training["poisoned_images"],
                "s": time.time() - start,
            }
            print(record, flush=True)
            out.write(json.dumps(record) + "\n")
