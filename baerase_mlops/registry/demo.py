"""The embedded default: the whole flow on this machine with no server set up by hand.

A SQLite tracking store in the working folder, a BadNets demo model trained by the lab
and registered as ``models:/clf/1`` (pt2, the way users log models), then this project's
main job through ``mlflow run`` with the local environment manager.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from baerase_mlops.core.runtime import Progress, no_progress
from baerase_mlops.errors import BaeraseError

DEMO_MODEL = "clf"


def project_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "MLproject").is_file():
        raise BaeraseError(f"the demo runs this project's MLproject, which is not at {root} (run it from a checkout)")
    return root


def ensure_demo_model(progress: Progress = no_progress) -> str:
    """Train and register the demo model unless ``clf`` already has a version 1."""
    import mlflow

    client = mlflow.MlflowClient()
    if client.search_model_versions(f"name = '{DEMO_MODEL}'", max_results=1):
        return f"models:/{DEMO_MODEL}/1"
    from baerase_mlops.data import load_images
    from baerase_mlops.lab.attacks import make_attack
    from baerase_mlops.lab.train import train_lab_model
    from baerase_mlops.registry.lab import register_lab_model

    data = load_images("builtin:mnist")
    result = train_lab_model(data, make_attack("badnets", data.input_shape), target=0, progress=progress)
    mv = register_lab_model(result.model, result.spec, DEMO_MODEL)
    print(
        f"demo model: BadNets toward class 0, clean accuracy {result.accuracy:.2%}, ASR {result.asr:.2%}; registered "
        f"as models:/{DEMO_MODEL}/{mv.version}"
    )
    return f"models:/{DEMO_MODEL}/{mv.version}"


def run_project(model_uri: str, tracking_uri: str) -> int:
    """``mlflow run <project> -P model_uri=... --env-manager local``, streaming its output."""
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    cmd = [
        str(bin_dir / "mlflow"),
        "run",
        str(project_root()),
        "-P",
        f"model_uri={model_uri}",
        "--env-manager",
        "local",
    ]
    print("$ " + " ".join(cmd[1:]))
    return subprocess.call(cmd, env=env, cwd=project_root())
