"""The receiver's HTTP side on uvicorn: several HTTP worker processes behind one port share
the durable queue (a replay is caught whichever process answers) and the metrics, over
TLS; and the serving options a user can get wrong are usage errors, never tracebacks."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest
import requests

from baerase_mlops.errors import UsageError
from baerase_mlops.webhooks.receiver import ServeOptions, _bind
from baerase_mlops.webhooks.signature import sign
from tests.mlflow_server import BIN
from tests.webhook_receiver import SECRET, parse_metrics, start_receiver


def _self_signed(tmp_path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


@pytest.mark.slow
def test_two_http_workers_over_tls_share_the_queue_and_the_metrics(mlflow_server, tmp_path):
    cert, key = _self_signed(tmp_path)
    receiver = start_receiver(
        mlflow_server,
        tmp_path / "queue.sqlite",
        "--workers",
        "0",
        "--http-workers",
        "2",
        "--ssl-certfile",
        cert,
        "--ssl-keyfile",
        key,
        scheme="https",
        verify=cert,
    )
    try:
        body = json.dumps(
            {"entity": "model_version", "action": "created", "data": {"name": "m", "version": "1"}}
        ).encode()
        now = str(int(time.time()))
        headers = {
            "X-MLflow-Delivery-Id": "tls-1",
            "X-MLflow-Timestamp": now,
            "X-MLflow-Signature": sign(SECRET, "tls-1", now, body),
        }
        # A fresh connection each time, so that both processes get to answer.
        answers = [
            requests.post(receiver.url, data=body, headers=headers, timeout=10, verify=cert).status_code
            for _ in range(6)
        ]
        assert answers == [200] + [409] * 5
        assert receiver.health()["scan"]["queued"] == 1
        for _ in range(4):  # whichever process answers the scrape sums both processes' counters
            scrape = parse_metrics(requests.get(receiver.url + "metrics", timeout=10, verify=cert).text)
            assert (
                scrape[("baerase_webhook_deliveries_accepted_total", frozenset({("event", "model_version.created")}))]
                == 1
            )
            assert scrape[("baerase_webhook_deliveries_refused_total", frozenset({("reason", "replay")}))] == 5
            assert scrape[("baerase_webhook_jobs", frozenset({("kind", "scan"), ("state", "queued")}))] == 1
        with pytest.raises(requests.exceptions.ConnectionError):  # TLS only: plain HTTP gets no answer
            requests.get(receiver.url.replace("https", "http") + "health", timeout=5)
    finally:
        receiver.stop()
    assert receiver.process.returncode == 0, receiver.log.read_text()[-2000:]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"http_workers": 0}, "--http-workers must be at least 1"),
        ({"ssl_certfile": "cert.pem"}, "needs both --ssl-certfile and --ssl-keyfile"),
        ({"ssl_certfile": "missing.pem", "ssl_keyfile": "missing.key"}, "no such file"),
        ({"ssl_certfile": "not-a-cert.pem", "ssl_keyfile": "not-a-cert.pem"}, "are not a PEM certificate and its key"),
    ],
)
def test_wrong_serving_options_are_usage_errors(options, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-cert.pem").write_text("hello")
    with pytest.raises(UsageError, match=words):
        ServeOptions(**options)


def test_a_port_in_use_is_a_usage_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(UsageError, match="cannot listen on 127.0.0.1:.*choose --port"):
            _bind("127.0.0.1", taken.getsockname()[1])


def test_serve_webhooks_with_a_bad_option_exits_4_without_a_traceback(tmp_path):
    result = subprocess.run(
        [str(BIN / "baerase"), "serve-webhooks", "--queue", str(tmp_path / "q.sqlite"), "--http-workers", "0"],
        env={"BAERASE_WEBHOOK_SECRET": SECRET, "PATH": str(BIN)},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        result.returncode == 4
        and "'--http-workers': 0 is not in the range x>=1" in result.stderr
        and "Traceback" not in result.stderr
    )
