"""Register a cleaned model as a new version of the same registered model, in the format
of the version it came from, and write the ``baerase.*`` tags (the verdict last)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from baerase_mlops.engine import ModelUnderTest
from baerase_mlops.errors import RegistryError
from baerase_mlops.lab.spec import save_lab_model
from baerase_mlops.registry import tags as T

CLEANED_ARTIFACT = "cleaned_model"


def log_cleaned_model(
    mut: ModelUnderTest,
    cleaned: nn.Module,
    source_dir: Path,
    example: torch.Tensor,
    registered_name: str | None,
    lineage: dict[str, Any],
):
    """Log ``cleaned`` to the active run in ``mut.format``; register it under
    ``registered_name`` when given. Returns the new ModelVersion (or None) once it is READY."""
    import mlflow
    from mlflow.models import Model

    cleaned = mut.unwrapped(cleaned)
    if mut.format == "state_dict+spec":
        with tempfile.TemporaryDirectory() as tmp:
            save_lab_model(cleaned, mut.lab_spec, Path(tmp) / "model.pt")
            mlflow.log_artifacts(tmp, artifact_path=CLEANED_ARTIFACT)
        if registered_name is None:
            return None
        run = mlflow.active_run()
        client = mlflow.MlflowClient()
        mv = client.create_model_version(
            registered_name, f"{run.info.artifact_uri}/{CLEANED_ARTIFACT}", run_id=run.info.run_id
        )
        return wait_until_ready(client, registered_name, mv.version)
    source = Model.load(str(source_dir / "MLmodel"))
    requirements = source_dir / "requirements.txt"
    info = mlflow.pytorch.log_model(
        cleaned,
        name=CLEANED_ARTIFACT,
        registered_model_name=registered_name,
        input_example=example.numpy(),
        signature=source.signature,
        metadata={**(source.metadata or {}), "baerase_lineage": lineage},
        pip_requirements=str(requirements) if requirements.is_file() else None,
        serialization_format=mut.format,
    )
    if registered_name is None:
        return None
    return wait_until_ready(mlflow.MlflowClient(), registered_name, info.registered_model_version)


def wait_until_ready(client, name: str, version: str | int, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while True:
        mv = client.get_model_version(name, str(version))
        if mv.status == "READY":
            return mv
        if mv.status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise RegistryError(f"model version {name}/{version} did not become READY (status {mv.status})")
        time.sleep(0.5)


def write_tags(client, name: str, version: str, tags: dict[str, str]) -> None:
    """Every tag but the verdict, then the verdict: a crash half-way leaves no verdict."""
    for key, value in tags.items():
        if key != T.VERDICT:
            client.set_model_version_tag(name, version, key, value)
    if T.VERDICT in tags:
        client.set_model_version_tag(name, version, T.VERDICT, tags[T.VERDICT])
