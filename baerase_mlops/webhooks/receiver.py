"""``baerase serve-webhooks``: the HTTP receiver of MLflow's registry webhooks, an ASGI app
(Starlette) served by uvicorn, the stack MLflow's own server runs on.

Every delivery is verified (signature, then age), remembered (a second delivery with the
same id is a replay, refused with 409) and turned into jobs in the durable queue, all
before the answer: a 200 means the work is on disk. The work itself is done by the
workers (baerase_mlops/webhooks/worker.py), never in the request, and always in the main
process: ``--http-workers`` only multiplies the processes that answer HTTP.

Routes: POST any path, a delivery; ``GET /health``, the queue's counts; ``GET /metrics``,
Prometheus metrics (baerase_mlops/webhooks/metrics.py).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from baerase_mlops.config import WebhookConfig
from baerase_mlops.errors import UsageError
from baerase_mlops.webhooks.events import SUBSCRIBED, event_name, jobs_for
from baerase_mlops.webhooks.metrics import CONTENT_TYPE, ReceiverMetrics
from baerase_mlops.webhooks.queue import JobQueue
from baerase_mlops.webhooks.signature import DeliveryRejected, verify

log = logging.getLogger("baerase.webhooks")
MIN_SECRET_CHARS = 16
WEBHOOK_NAME = "baerase-gate"
# With --http-workers above 1, uvicorn starts each HTTP process afresh from an import
# string: the receiver's settings reach them in this variable (the secret in its own).
SPEC_ENV = "BAERASE_RECEIVER_SPEC"
SECRET_ENV = "BAERASE_WEBHOOK_SECRET"


@dataclass
class Receiver:
    """Turns one delivery into an HTTP status and a JSON answer (no HTTP in here)."""

    queue: JobQueue
    secret: str
    config: WebhookConfig
    on_queued: Callable[[], None] = lambda: None
    metrics: ReceiverMetrics = field(default_factory=ReceiverMetrics)

    def handle(self, headers, body: bytes) -> tuple[int, dict]:
        try:
            delivery = verify(self.secret, headers, body, time.time(), self.config.tolerance_s)
        except DeliveryRejected as exc:
            log.warning("delivery refused (%s): %s", exc.status, exc.reason)
            self.metrics.delivery_refused(exc.code)
            return exc.status, {"error": exc.reason}
        try:
            event = json.loads(body)
            if not isinstance(event, dict):
                raise ValueError("the delivery is not a JSON object")
            jobs = jobs_for(event, self.config.protected_aliases)
        except ValueError as exc:
            self.metrics.delivery_refused("malformed")
            return 400, {"error": f"malformed delivery: {exc}"}
        name = event_name(event)
        if not self.queue.accept(delivery.delivery_id, name, jobs):
            log.warning("delivery %s refused: replayed", delivery.delivery_id)
            self.metrics.delivery_refused("replay")
            return 409, {"error": f"delivery {delivery.delivery_id} was received before (a replay)"}
        self.metrics.delivery_accepted(name)
        if jobs:
            self.on_queued()
        return 200, {"event": name, "queued": [job.kind for job in jobs]}


def make_app(receiver: Receiver) -> Starlette:
    """POST any path: a delivery. GET /health: the queue's counts. GET /metrics: Prometheus."""
    limit = receiver.config.max_body_bytes

    async def read_body(request: Request) -> bytes | JSONResponse:
        # The length is checked before a byte of the body is read, and again while reading.
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            receiver.metrics.delivery_refused("no_length")
            return JSONResponse({"error": "Content-Length required"}, 411)
        if int(length) > limit:
            receiver.metrics.delivery_refused("too_large")
            return JSONResponse({"error": f"body over {limit} bytes"}, 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                receiver.metrics.delivery_refused("too_large")
                return JSONResponse({"error": f"body over {limit} bytes"}, 413)
        return bytes(body)

    async def endpoint(request: Request) -> Response:
        if request.method == "POST":
            body = await read_body(request)
            if isinstance(body, Response):
                return body
            # SQLite writes block (up to the queue's lock timeout): off the event loop.
            status, payload = await run_in_threadpool(receiver.handle, request.headers, body)
            return JSONResponse(payload, status)
        path = request.url.path.rstrip("/")
        if path == "/health":
            return JSONResponse({"status": "ok", "queue": await run_in_threadpool(receiver.queue.counts)})
        if path == "/metrics":
            text = await run_in_threadpool(receiver.metrics.exposition, receiver.queue.counts)
            return Response(text, media_type=CONTENT_TYPE)
        return JSONResponse({"error": "POST deliveries; GET /health or /metrics"}, 404)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


@dataclass(frozen=True)
class ServeOptions:
    """How the HTTP side is served: address, HTTP worker processes, TLS."""

    host: str = "127.0.0.1"
    port: int = 8787
    http_workers: int = 1
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    def __post_init__(self) -> None:
        if self.http_workers < 1:
            raise UsageError(f"--http-workers must be at least 1, got {self.http_workers}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise UsageError("TLS needs both --ssl-certfile and --ssl-keyfile")
        for path in (self.ssl_certfile, self.ssl_keyfile):
            if path is not None and not Path(path).is_file():
                raise UsageError(f"{path}: no such file (a PEM certificate or key for TLS)")
        if self.ssl_certfile:
            try:  # here, so that a bad pair is a usage error, not uvicorn's traceback
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
            except ssl.SSLError as exc:
                pair = f"{self.ssl_certfile} and {self.ssl_keyfile}"
                raise UsageError(f"TLS: {pair} are not a PEM certificate and its key ({exc.reason or exc})") from None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_certfile else 'http'}://{self.host}:{self.port}/"


def app_from_environment() -> Starlette:
    """The app of one HTTP worker process (``--http-workers`` above 1): uvicorn imports this
    factory in each process; the queue is shared through SQLite, the counters through
    prometheus_client's multiprocess files."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    spec = json.loads(os.environ[SPEC_ENV])
    config = WebhookConfig(**{**spec["config"], "protected_aliases": tuple(spec["config"]["protected_aliases"])})
    return make_app(Receiver(JobQueue(spec["queue"]), check_secret(os.environ.get(SECRET_ENV)), config))


def _uvicorn_config(app, options: ServeOptions):
    import uvicorn

    tls = {}
    if options.ssl_certfile:
        tls = {"ssl_certfile": str(options.ssl_certfile), "ssl_keyfile": str(options.ssl_keyfile)}
    return uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        workers=options.http_workers,
        factory=isinstance(app, str),
        **tls,
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
    )


def serve(receiver: Receiver, workers, options: ServeOptions, ready: Callable[[str], None] = lambda url: None) -> None:
    """Serve until SIGINT or SIGTERM; then stop the workers, putting their jobs back."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # uvicorn handles the signals while it serves and raises them again when it has stopped:
    # this handler takes them then, so the workers are stopped here rather than killed.
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopped.set())
    sock = _bind(options.host, options.port)
    workers.start()
    try:
        if options.http_workers == 1:
            server = uvicorn.Server(_uvicorn_config(make_app(receiver), options))
            announce = threading.Thread(
                target=_announce, args=(server, options.url, ready), name="baerase-ready", daemon=True
            )
            announce.start()
            server.run(sockets=[sock])
        else:
            spec = {"queue": str(receiver.queue.path), "config": asdict(receiver.config)}
            os.environ[SPEC_ENV], os.environ[SECRET_ENV] = json.dumps(spec), receiver.secret
            ready(options.url)
            Multiprocess(_uvicorn_config(f"{__name__}:app_from_environment", options), sockets=[sock]).run()
    finally:
        workers.stop()
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here: uvicorn exits 1 on a port in use, which is a usage error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = f"{exc.strerror} (another receiver running? choose --port)"
        raise UsageError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)
    return sock


def _announce(server, url: str, ready: Callable[[str], None]) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        ready(url)


def check_secret(secret: str | None) -> str:
    if not secret or len(secret) < MIN_SECRET_CHARS:
        raise UsageError(
            f"a webhook secret of at least {MIN_SECRET_CHARS} characters is required (--secret or "
            "BAERASE_WEBHOOK_SECRET): without it anyone who reaches the receiver could queue scans and move aliases"
        )
    return secret


def register_webhook(client, url: str, secret: str, name: str = WEBHOOK_NAME, events: tuple[str, ...] = SUBSCRIBED):
    """Create the webhook on the server, or update the one of that name (idempotent)."""
    from mlflow.exceptions import MlflowException

    from baerase_mlops.errors import RegistryError
    from baerase_mlops.registry.versions import follow_pages

    check_secret(secret)
    try:
        existing = [w for w in follow_pages(client.list_webhooks, max_results=100) if w.name == name]
        if existing:
            return client.update_webhook(
                existing[0].webhook_id, url=url, events=list(events), secret=secret, status="ACTIVE"
            )
        return client.create_webhook(
            name=name,
            url=url,
            events=list(events),
            secret=secret,
            description="baerase-mlops: scan new versions, guard protected aliases",
        )
    except MlflowException as exc:
        raise RegistryError(f"the tracking server refused the webhook: {exc.message}") from exc
