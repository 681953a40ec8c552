"""Clean data on S3: read over HTTP from a real S3-compatible server (moto's, on loopback),
and every way it can fail named in the message."""

from __future__ import annotations

import io
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from baerase_mlops.data import load_images
from baerase_mlops.errors import DataError


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _uint8_nhwc(images: torch.Tensor) -> np.ndarray:
    return (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()


@pytest.fixture
def bucket(s3):
    """A bucket holding 30 MNIST digits as ``set.npz``."""
    client = s3.client()
    client.create_bucket(Bucket="clean-data")
    return client


def _put_mnist_npz(client, mnist, key: str = "set.npz", n: int = 30, **extra: np.ndarray) -> None:
    body = _npz_bytes(x=_uint8_nhwc(mnist.x[:n]), y=mnist.y[:n].numpy(), **extra)
    client.put_object(Bucket="clean-data", Key=key, Body=body)


def test_npz_on_s3_loads_the_same_images_as_locally(bucket, mnist):
    _put_mnist_npz(bucket, mnist)
    data = load_images("s3://clean-data/set.npz")
    assert data.x.shape == (30, 1, 28, 28)
    assert torch.allclose(data.x, mnist.x[:30]) and torch.equal(data.y, mnist.y[:30])
    assert data.source == "s3://clean-data/set.npz"


def test_npz_fragment_on_s3_selects_split_arrays(bucket, mnist):
    body = _npz_bytes(x_test=_uint8_nhwc(mnist.x[:7]), y_test=mnist.y[:7].numpy())
    bucket.put_object(Bucket="clean-data", Key="splits.npz", Body=body)
    assert len(load_images("s3://clean-data/splits.npz#test")) == 7


def test_image_folder_under_an_s3_prefix_is_labelled_by_class_folder(bucket, mnist):
    for label in (3, 8):
        for i, img in enumerate(mnist.x[mnist.y == label][:4]):
            png = io.BytesIO()
            Image.fromarray((img[0].numpy() * 255).round().astype(np.uint8)).save(png, format="PNG")
            bucket.put_object(Bucket="clean-data", Key=f"digits/class_{label}/{i}.png", Body=png.getvalue())
    bucket.put_object(Bucket="clean-data", Key="digits/README.txt", Body=b"not an image, not in a class folder")
    data = load_images("s3://clean-data/digits/")
    assert data.classes == ("class_3", "class_8")
    assert data.class_counts() == [4, 4]
    assert torch.allclose(data.x[:4], mnist.x[mnist.y == 3][:4], atol=1 / 255)


def test_mlflow_s3_endpoint_url_is_used_when_aws_endpoint_url_is_unset(bucket, mnist, monkeypatch):
    _put_mnist_npz(bucket, mnist)
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # MLFLOW_S3_ENDPOINT_URL still names the server
    assert len(load_images("s3://clean-data/set.npz")) == 30


def test_missing_bucket_is_named(s3):
    with pytest.raises(DataError, match="s3://no-such-bucket/set.npz: the bucket does not exist"):
        load_images("s3://no-such-bucket/set.npz")


def test_missing_key_is_named(bucket):
    with pytest.raises(DataError, match="s3://clean-data/missing.npz: no such key"):
        load_images("s3://clean-data/missing.npz")


def test_prefix_without_images_is_named(bucket):
    with pytest.raises(DataError, match="no .npz key and no image folder"):
        load_images("s3://clean-data/empty/")


def test_access_denied_by_an_iam_policy_is_named(bucket, mnist, s3, monkeypatch):
    _put_mnist_npz(bucket, mnist)
    elsewhere = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::other-bucket/*"}],
    }
    with s3.enforcing_iam() as admin:
        key_id, secret = s3.create_user("analyst", elsewhere, access=admin)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        with pytest.raises(DataError, match=r"s3://clean-data/set.npz: access denied \(AccessDenied\)"):
            load_images("s3://clean-data/set.npz")
        with pytest.raises(DataError, match=r"access denied \(AccessDenied\)"):
            load_images("s3://clean-data/digits/")  # listing is refused too


def test_unknown_access_key_is_named(bucket, mnist, s3, monkeypatch):
    _put_mnist_npz(bucket, mnist)
    with s3.enforcing_iam():
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEUNKNOWN00")
        with pytest.raises(DataError, match=r"rejected the credentials \(InvalidAccessKeyId\)"):
            load_images("s3://clean-data/set.npz")


def test_missing_credentials_are_named(bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(DataError, match="no AWS credentials found"):
        load_images("s3://clean-data/set.npz")


def test_unreachable_endpoint_is_named(s3, monkeypatch):
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(DataError, match=rf"cannot reach the S3 endpoint http://127.0.0.1:{port} \(AWS_ENDPOINT_URL\)"):
        load_images("s3://clean-data/set.npz")


def test_malformed_endpoint_url_is_named(s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "minio:9000")
    with pytest.raises(DataError, match="AWS_ENDPOINT_URL='minio:9000' is not a valid endpoint URL"):
        load_images("s3://clean-data/set.npz")


def test_a_clean_set_on_s3_is_validated_before_the_scan(bucket, mnist, untrained_lab_model):
    from baerase_mlops.data import clean_subset
    from baerase_mlops.engine import load_local_model, prepare_clean_data

    clean = clean_subset(mnist, 0.04, seed=0)
    bucket.put_object(
        Bucket="clean-data", Key="clean200.npz", Body=_npz_bytes(x=_uint8_nhwc(clean.x), y=clean.y.numpy())
    )
    data = prepare_clean_data("s3://clean-data/clean200.npz", load_local_model(untrained_lab_model))
    assert data.validation is not None and data.validation.success
    assert data.validation_record()["source"] == "s3://clean-data/clean200.npz"


def test_cli_scan_refuses_an_s3_clean_set_that_fails_validation(bucket, mnist, untrained_lab_model, tmp_path):
    from click.testing import CliRunner

    from baerase_mlops.cli import main

    body = _npz_bytes(x=mnist.x[:200].numpy() * 255, y=mnist.y[:200].numpy())  # 0-255 floats
    bucket.put_object(Bucket="clean-data", Key="floats255.npz", Body=body)
    args = [
        "scan",
        "--model",
        str(untrained_lab_model),
        "--data",
        "s3://clean-data/floats255.npz",
        "--out",
        str(tmp_path / "r"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "expect_column_values_to_be_between(column='max', max_value=1)" in result.output
    assert "divide them by 255" in result.output
