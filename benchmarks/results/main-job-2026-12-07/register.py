"""Register the model the MNIST main job is timed on, as models:/clf/1 of the current tracking URI.

``demo``: the lab's BadNets model, as ``baerase demo`` trains and registers it. ``ARCH ATTACK``: a
zoo-cache MNIST model (seed 0), logged the way users log models (pt2, an input example), and not
with ``registry.lab.register_lab_model``: that one stores the lab spec in the model's metadata,
and the job would then treat the model as a lab model (its lab clean set and test split).
"""

import glob
import os
import sys
from pathlib import Path

import mlflow
import torch

if sys.argv[1] == "demo":
    from baerase_mlops.registry.demo import ensure_demo_model

    print(ensure_demo_model())
    sys.exit()
from benchmarks.labcache import load_cached_model

arch, attack = sys.argv[1], sys.argv[2]
path = glob.glob(os.path.expanduser(f"~/.cache/baerase-mlops/zoo/mnist/{arch}/{attack}-seed0-*.pt"))[0]
model = load_cached_model(Path(path)).mut.model.eval()
with mlflow.start_run():
    mlflow.pytorch.log_model(
        model,
        name="model",
        input_example=torch.rand(2, 1, 28, 28).numpy(),
        pip_requirements=["torch==2.14.1"],
        registered_model_name="clf",
    )
