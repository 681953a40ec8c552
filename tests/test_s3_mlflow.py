"""The main job end to end with the clean data and every model artifact on an
S3-compatible store (moto's server on loopback), behind a real `mlflow server`."""

from __future__ import annotations

import io

import numpy as np
import pytest

from baerase_mlops.data import clean_subset
from baerase_mlops.lab.train import lab_splits
from baerase_mlops.registry.lab import register_lab_model
from tests.mlflow_server import mlflow_run, start_mlflow_server, stop_mlflow_server

pytestmark = pytest.mark.slow


def _npz_bytes(images, labels) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=(images.permute(0, 2, 3, 1) * 255).round().byte().numpy(), y=labels.numpy())
    return buffer.getvalue()


def _keys(client, bucket: str) -> list[str]:
    return [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]


def test_main_job_runs_with_data_and_artifacts_on_s3(s3, tmp_path, lab_model_factory, mnist, monkeypatch):
    import mlflow

    client = s3.client()
    client.create_bucket(Bucket="mlflow-artifacts")
    client.create_bucket(Bucket="clean-data")
    lab = lab_model_factory("badnets")
    train, _ = lab_splits(mnist, lab.spec)
    clean = clean_subset(train, 0.25, seed=0)  # 1,000 images: enough to judge accuracy on the held-out fifth
    client.put_object(Bucket="clean-data", Key="mnist/clean.npz", Body=_npz_bytes(clean.x, clean.y))

    server = start_mlflow_server(tmp_path / "mlflow", extra_env=s3.env(), artifacts="s3://mlflow-artifacts/")
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
        mlflow.set_tracking_uri(server.uri)
        register_lab_model(lab.model, lab.spec, "s3-clf")
        result = mlflow_run(
            server, {"model_uri": "models:/s3-clf/1", "data_uri": "s3://clean-data/mnist/clean.npz"}, **s3.env()
        )
        assert result.returncode == 0, result.stderr[-3000:]
        registry = mlflow.MlflowClient(server.uri)
        versions = registry.search_model_versions("name = 's3-clf'")
        assert len(versions) == 2, result.stdout[-3000:]  # the job's summary says why there is no cleaned version
        cleaned = registry.get_model_version("s3-clf", "2")
        assert (
            cleaned.tags["baerase.verdict"] == "cleaned"
            and cleaned.tags["baerase.data_uri"] == "s3://clean-data/mnist/clean.npz"
        )
        assert cleaned.tags["baerase.asr_kind"] == "verified" and float(cleaned.tags["baerase.asr_after"]) <= 0.02
        keys = _keys(client, "mlflow-artifacts")
        assert sum(k.endswith("model.pt2") for k in keys) == 2  # the scanned and the cleaned version
        assert any(k.endswith("report/verdict.json") for k in keys) and any(k.endswith("validation.json") for k in keys)
        assert mlflow.pytorch.load_model("models:/s3-clf/2")(clean.x[:4]).shape == (4, 10)
    finally:
        mlflow.set_tracking_uri(None)
        stop_mlflow_server(server)
