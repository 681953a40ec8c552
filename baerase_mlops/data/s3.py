"""Clean data on S3 or an S3-compatible store (MinIO, Ceph, moto).

``s3://bucket/key.npz`` reads one ``.npz`` (``#split`` selects ``x_split``/``y_split`` as
for a local file); ``s3://bucket/prefix/`` reads an image folder (``prefix/<class>/<image>``).
Credentials and region come from the usual AWS variables and files
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
``AWS_DEFAULT_REGION``, ...). ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL`` or MLflow's
``MLFLOW_S3_ENDPOINT_URL`` (first one set wins) points at an S3-compatible endpoint.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import Any

from baerase_mlops.data.formats import IMAGE_SUFFIXES, read_class_files, read_npz_bytes
from baerase_mlops.data.imageset import ImageSet
from baerase_mlops.errors import DataError

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")
DOWNLOAD_THREADS = 16  # image folders: one GET per image, so fetch several at once
CONNECT_TIMEOUT_S = 10  # botocore's 60 s makes an unreachable endpoint look like a hang


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise DataError(f"{uri}: no bucket in the S3 URI (expected s3://bucket/key)")
    return bucket, key


def s3_endpoint() -> tuple[str, str] | None:
    """(variable, URL) of the S3-compatible endpoint the environment names, if any."""
    for name in ENDPOINT_VARIABLES:
        if os.environ.get(name):
            return name, os.environ[name]
    return None


def s3_client() -> Any:
    """A boto3 S3 client for the endpoint and credentials the environment names."""
    import boto3
    from botocore.config import Config

    endpoint = s3_endpoint()
    # S3-compatible stores are usually addressed by host name or IP, where virtual-host
    # style (bucket.host) does not resolve; path style works on all of them and on AWS.
    config = Config(connect_timeout=CONNECT_TIMEOUT_S, s3={"addressing_style": "path"} if endpoint else {})
    try:
        # a fresh session: boto3's default one keeps the credentials it first resolved
        session = boto3.session.Session()
        return session.client("s3", endpoint_url=endpoint[1] if endpoint else None, config=config)
    except ValueError as exc:  # botocore refuses malformed endpoint URLs here
        name, url = endpoint or ("endpoint", "")
        raise DataError(f"{name}={url!r} is not a valid endpoint URL (expected e.g. http://host:9000): {exc}") from exc


def read_s3(uri: str) -> ImageSet:
    """The set at ``uri`` as stored (values unchecked, as :func:`.sources.read_images`)."""
    path_part, _, fragment = uri.partition("#")
    bucket, key = split_s3_uri(path_part)
    client = s3_client()
    if key.lower().endswith(".npz"):
        return read_npz_bytes(get_object(client, bucket, key, uri), source=uri, split=fragment or None)
    if fragment:
        raise DataError(f"{uri}: a '#' fragment only applies to .npz keys")
    return read_s3_image_folder(client, bucket, key, uri)


def read_s3_image_folder(client: Any, bucket: str, key: str, uri: str) -> ImageSet:
    """``prefix/<class>/<image>`` keys under ``key`` as an image folder."""
    prefix = key.rstrip("/") + "/" if key else ""
    files = []
    for k in list_keys(client, bucket, prefix, uri):
        rel = PurePosixPath(k[len(prefix) :])
        if len(rel.parts) == 2 and rel.suffix.lower() in IMAGE_SUFFIXES:
            files.append((rel.parts[0], k))
    if not files:
        raise DataError(f"{uri}: no .npz key and no image folder (prefix/<class>/<image>) under this prefix")
    files.sort()
    classes = sorted({c for c, _ in files})
    return read_class_files(
        files, classes, lambda k: get_object(client, bucket, k, f"s3://{bucket}/{k}"), uri, DOWNLOAD_THREADS
    )


def get_object(client: Any, bucket: str, key: str, uri: str) -> bytes:
    """The object's bytes, or a :class:`DataError` saying why not."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise explain_s3_error(exc, uri) from exc


def list_keys(client: Any, bucket: str, prefix: str, uri: str) -> list[str]:
    """Every key under ``prefix``, or a :class:`DataError` saying why they cannot be listed."""
    from botocore.exceptions import BotoCoreError, ClientError

    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
    except (ClientError, BotoCoreError) as exc:
        raise explain_s3_error(exc, uri) from exc
    return keys


ACCESS_CODES = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem"}
CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
}


def explain_s3_error(exc: Exception, uri: str) -> DataError:
    """A botocore failure as a :class:`DataError` that says what to fix."""
    from botocore.exceptions import ClientError, NoCredentialsError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, NoCredentialsError):
        return DataError(
            f"{uri}: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        )
    if isinstance(exc, BotoConnectionError):
        endpoint = s3_endpoint()
        where = f"the S3 endpoint {endpoint[1]} ({endpoint[0]})" if endpoint else "AWS S3 (no AWS_ENDPOINT_URL set)"
        return DataError(f"{uri}: cannot reach {where}: {exc}")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return DataError(f"{uri}: the bucket does not exist")
        if code in ("NoSuchKey", "404", "NotFound"):
            return DataError(f"{uri}: no such key in the bucket")
        if code in CREDENTIAL_CODES:
            return DataError(
                f"{uri}: the store rejected the credentials ({code}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            )
        if code in ACCESS_CODES:
            return DataError(
                f"{uri}: access denied ({code}); the credentials may not read this bucket or key (IAM or bucket policy)"
            )
        return DataError(f"{uri}: S3 error {code}: {exc}")
    return DataError(f"{uri}: S3 error: {exc}")
