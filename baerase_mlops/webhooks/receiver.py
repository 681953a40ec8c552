"""``baerase serve-webhooks``: the HTTP receiver of MLflow's registry webhooks.

Every delivery is verified (signature, then age), remembered (a second delivery with the
same id is a replay, refused with 409) and turned into jobs in the durable queue, all
before the answer: a 200 means the work is on disk. The work itself is done by the
workers (baerase_mlops/webhooks/worker.py), never in the request.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from baerase_mlops.config import WebhookConfig
from baerase_mlops.errors import UsageError
from baerase_mlops.webhooks.events import SUBSCRIBED, event_name, jobs_for
from baerase_mlops.webhooks.queue import JobQueue
from baerase_mlops.webhooks.signature import DeliveryRejected, verify

log = logging.getLogger("baerase.webhooks")
MIN_SECRET_CHARS = 16
WEBHOOK_NAME = "baerase-gate"


@dataclass
class Receiver:
    """Turns one delivery into an HTTP status and a JSON answer (no HTTP in here)."""

    queue: JobQueue
    secret: str
    config: WebhookConfig
    on_queued: Callable[[], None] = lambda: None

    def handle(self, headers, body: bytes) -> tuple[int, dict]:
        try:
            delivery = verify(self.secret, headers, body, time.time(), self.config.tolerance_s)
        except DeliveryRejected as exc:
            log.warning("delivery refused (%s): %s", exc.status, exc.reason)
            return exc.status, {"error": exc.reason}
        try:
            event = json.loads(body)
            if not isinstance(event, dict):
                raise ValueError("the delivery is not a JSON object")
            jobs = jobs_for(event, self.config.protected_aliases)
        except ValueError as exc:
            return 400, {"error": f"malformed delivery: {exc}"}
        name = event_name(event)
        if not self.queue.accept(delivery.delivery_id, name, jobs):
            log.warning("delivery %s refused: replayed", delivery.delivery_id)
            return 409, {"error": f"delivery {delivery.delivery_id} was received before (a replay)"}
        if jobs:
            self.on_queued()
        return 200, {"event": name, "queued": [job.kind for job in jobs]}


def make_server(receiver: Receiver, host: str, port: int) -> ThreadingHTTPServer:
    """POST any path: a delivery. GET /health: the queue's counts."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "baerase-webhooks"

        def _answer(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                return self._answer(411, {"error": "Content-Length required"})
            if int(length) > receiver.config.max_body_bytes:
                return self._answer(413, {"error": f"body over {receiver.config.max_body_bytes} bytes"})
            body = self.rfile.read(int(length))
            self._answer(*receiver.handle(self.headers, body))

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") != "/health":
                return self._answer(404, {"error": "POST deliveries; GET /health"})
            self._answer(200, {"status": "ok", "queue": receiver.queue.counts()})

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
            log.debug("%s " + format, self.address_string(), *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def check_secret(secret: str | None) -> str:
    if not secret or len(secret) < MIN_SECRET_CHARS:
        raise UsageError(
            f"a webhook secret of at least {MIN_SECRET_CHARS} characters is required (--secret or BAERASE_WEBHOOK_SECRET): "
            "without it anyone who reaches the receiver could queue scans and move aliases"
        )
    return secret


def serve(receiver: Receiver, workers, host: str, port: int, ready: Callable[[str], None] = lambda url: None) -> None:
    """Serve until SIGINT or SIGTERM; then stop the workers, putting their jobs back."""
    server = make_server(receiver, host, port)
    workers.start()
    stop = threading.Event()

    def shutdown(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    thread = threading.Thread(target=server.serve_forever, name="baerase-http", daemon=True)
    thread.start()
    ready(f"http://{host}:{server.server_address[1]}/")
    try:
        stop.wait()
    finally:
        server.shutdown()
        workers.stop()
        server.server_close()


def register_webhook(client, url: str, secret: str, name: str = WEBHOOK_NAME, events: tuple[str, ...] = SUBSCRIBED):
    """Create the webhook on the server, or update the one of that name (idempotent)."""
    from mlflow.exceptions import MlflowException

    from baerase_mlops.errors import RegistryError
    from baerase_mlops.registry.versions import follow_pages

    check_secret(secret)
    try:
        existing = [w for w in follow_pages(client.list_webhooks, max_results=100) if w.name == name]
        if existing:
            return client.update_webhook(existing[0].webhook_id, url=url, events=list(events), secret=secret, status="ACTIVE")
        return client.create_webhook(name=name, url=url, events=list(events), secret=secret, description="baerase-mlops: scan new versions, guard protected aliases")
    except MlflowException as exc:
        raise RegistryError(f"the tracking server refused the webhook: {exc.message}") from exc
