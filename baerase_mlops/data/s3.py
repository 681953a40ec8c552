"""Clean data on S3 or an S3-compatible store (MinIO, moto, Ceph).

``s3://bucket/key.npz`` reads one ``.npz``; ``s3://bucket/prefix/`` reads an image folder
(``prefix/<class>/<image>``). Credentials and region come from the usual AWS variables
and files; ``AWS_ENDPOINT_URL`` (or MLflow's ``MLFLOW_S3_ENDPOINT_URL``) points at an
S3-compatible endpoint.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from baerase_mlops.data.imageset import ImageSet
from baerase_mlops.errors import DataError


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise DataError(f"{uri}: no bucket in the S3 URI (expected s3://bucket/key)")
    return bucket, key


def s3_client():
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
    return boto3.client("s3", endpoint_url=endpoint)


def load_s3(uri: str) -> ImageSet:
    from baerase_mlops.data.sources import IMAGE_SUFFIXES, _read_image, images_to_set, load_npz_bytes

    path_part, _, fragment = uri.partition("#")
    bucket, key = split_s3_uri(path_part)
    client = s3_client()
    if key.lower().endswith(".npz"):
        return load_npz_bytes(_get_object(client, bucket, key, uri), source=uri, split=fragment or None)
    prefix = key.rstrip("/") + "/" if key else ""
    keys = _list_keys(client, bucket, prefix, uri)
    files = []
    for k in keys:
        rel = PurePosixPath(k[len(prefix):])
        if len(rel.parts) == 2 and rel.suffix.lower() in IMAGE_SUFFIXES:
            files.append((rel.parts[0], k))
    if not files:
        raise DataError(f"{uri}: no .npz key and no image folder (prefix/<class>/<image>) under this prefix")
    classes = sorted({c for c, _ in files})
    files.sort()
    images = [_read_image(_get_object(client, bucket, k, uri), f"s3://{bucket}/{k}") for _, k in files]
    labels = [classes.index(c) for c, _ in files]
    return images_to_set(images, labels, classes, uri, [f"s3://{bucket}/{k}" for _, k in files])


def _explain(exc: Exception, uri: str) -> DataError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return DataError(f"{uri}: no AWS credentials found (set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile)")
    if isinstance(exc, EndpointConnectionError):
        return DataError(f"{uri}: cannot reach the S3 endpoint ({exc})")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return DataError(f"{uri}: the bucket does not exist")
        if code in ("NoSuchKey", "404", "NotFound"):
            return DataError(f"{uri}: no such key in the bucket")
        if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return DataError(f"{uri}: access denied ({code}); check the credentials and the bucket policy")
        return DataError(f"{uri}: S3 error {code}: {exc}")
    return DataError(f"{uri}: S3 error: {exc}")


def _get_object(client, bucket: str, key: str, uri: str) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise _explain(exc, uri) from exc


def _list_keys(client, bucket: str, prefix: str, uri: str) -> list[str]:
    from botocore.exceptions import BotoCoreError, ClientError

    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
    except (ClientError, BotoCoreError) as exc:
        raise _explain(exc, uri) from exc
    return keys
