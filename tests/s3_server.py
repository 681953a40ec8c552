"""A real S3-compatible server on loopback for tests: moto's standalone server.

Requests go over HTTP to the server like to any S3-compatible store (MinIO, Ceph), so
the code under test runs its real boto3 calls; nothing is patched. Other processes (an
``mlflow server`` with its artifact store on a bucket) reach it through
:meth:`S3Server.env`. Moto keeps its state in memory: :meth:`S3Server.reset` empties it.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

ACCESS_KEY = "testing"  # moto accepts any key while it does not enforce IAM
SECRET_KEY = "testing"
REGION = "us-east-1"

ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def env(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict[str, str]:
        """The environment a client (or a child process) needs to use this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self, service: str = "s3", access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )

    def reset(self) -> None:
        """Forget every bucket, user and policy (moto's own reset endpoint)."""
        self._post("/moto-api/reset", b"")

    @contextmanager
    def enforcing_iam(self) -> Iterator[tuple[str, str]]:
        """Within the block the server checks every request's signature and IAM policy,
        as AWS does. Yields the keys of an IAM user allowed everything (for set-up);
        other users get only what their policies allow."""
        admin = self.create_user("admin", ALLOW_ALL)
        previous = json.loads(self._post("/moto-api/reset-auth", b"0"))["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
        try:
            yield admin
        finally:
            self._post("/moto-api/reset-auth", previous.encode())

    def create_user(
        self, name: str, policy: dict[str, Any] | None = None, access: tuple[str, str] | None = None
    ) -> tuple[str, str]:
        """An IAM user with ``policy`` inline (none: allowed nothing); returns its keys."""
        iam = self.client("iam", *(access or (ACCESS_KEY, SECRET_KEY)))
        iam.create_user(UserName=name)
        if policy is not None:
            iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def _post(self, path: str, body: bytes) -> str:
        # a form content type (urllib's default) would hide the body from moto
        request = urllib.request.Request(
            self.endpoint_url + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()


@contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """Start moto's server on a free loopback port; stop it afterwards."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()
