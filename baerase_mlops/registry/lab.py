"""Put lab models into a registry, the way users log theirs, for the demo and the tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

from baerase_mlops.lab.models import ImageClassifier
from baerase_mlops.lab.spec import ModelSpec, save_lab_model
from baerase_mlops.registry.loading import LAB_SPEC_KEY
from baerase_mlops.registry.publish import wait_until_ready

FORMATS = ("pt2", "pickle", "state_dict+spec")


def register_lab_model(model: ImageClassifier, spec: ModelSpec, name: str, fmt: str = "pt2"):
    """Log ``model`` in a run and register it as a new version of ``name``; return the
    READY ModelVersion. ``pt2`` and ``pickle`` use ``mlflow.pytorch.log_model`` with an
    input example (the usual way); the lab spec goes into the model's metadata."""
    import mlflow
    import torch

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    with mlflow.start_run(run_name=f"lab model {spec.attack.get('name') if spec.attack else 'none'}") as run:
        if fmt == "state_dict+spec":
            with tempfile.TemporaryDirectory() as tmp:
                save_lab_model(model, spec, Path(tmp) / "model.pt")
                mlflow.log_artifacts(tmp, artifact_path="model")
            client = mlflow.MlflowClient()
            if name not in {m.name for m in client.search_registered_models(f"name = '{name}'")}:
                client.create_registered_model(name)
            mv = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
            return wait_until_ready(client, name, mv.version)
        example = torch.rand(2, *spec.input_shape, generator=torch.Generator().manual_seed(0))
        info = mlflow.pytorch.log_model(
            model.eval(),
            name="model",
            registered_model_name=name,
            input_example=example.numpy(),
            metadata={"classes": list(spec.classes), LAB_SPEC_KEY: spec.to_json()},
            serialization_format=fmt,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
        return wait_until_ready(mlflow.MlflowClient(), name, info.registered_model_version)
