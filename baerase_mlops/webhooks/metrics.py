"""Prometheus metrics of the webhook receiver (``GET /metrics``); a registry scan's textfile
(``baerase scan-registry --metrics-file``) is written by baerase_mlops/registry/registry_scan.py.

What an on-call engineer alerts on:

* ``baerase_webhook_deliveries_accepted_total{event}`` and
  ``baerase_webhook_deliveries_refused_total{reason}``: a rise of ``bad_signature`` is a
  wrong secret or someone probing; ``stale`` is clock skew or a delayed retry.
* ``baerase_webhook_jobs{kind,state}``: the durable queue's depth, read from the queue at
  each scrape, so it is right whichever process (HTTP worker, a restart) wrote it.
* ``baerase_scan_duration_seconds{action}``: a histogram of the receiver's scans.
* ``baerase_scan_verdicts_total{verdict}``: ``backdoor``/``cleaned``/``clean``/``error``.
* ``baerase_alias_reverts_total{alias,action}``: protected aliases taken off a version that
  had not passed (``moved_back`` or ``removed``).

With more than one HTTP worker (``--http-workers``) the counters live in prometheus_client's
multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set before prometheus_client is imported)
and every worker's ``/metrics`` answers the sum; with one, in this process's memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Scans take seconds (a reused verdict) to many minutes (a large model on CPU).
SCAN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
# Every reason a delivery is refused: pre-declared so that each series exists at 0 and a
# rate() alert works from the first scrape.
REFUSED_REASONS = (
    "unsigned",
    "bad_signature",
    "bad_timestamp",
    "stale",
    "replay",
    "malformed",
    "too_large",
    "no_length",
)
VERDICTS = ("clean", "backdoor", "cleaned", "error")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class QueueCollector:
    """The queue's counts at scrape time (a custom collector: no state of its own)."""

    def __init__(self, counts: Callable[[], dict[str, dict[str, int]]]):
        self.counts = counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        counts = self.counts()
        jobs = GaugeMetricFamily(
            "baerase_webhook_jobs", "Jobs in the durable queue, by kind and state.", labels=["kind", "state"]
        )
        for kind, states in counts.items():
            if kind == "deliveries":
                continue
            for state, n in states.items():
                jobs.add_metric([kind, state], n)
        yield jobs
        remembered = counts.get("deliveries", {}).get("remembered", 0)
        yield GaugeMetricFamily(
            "baerase_webhook_deliveries_remembered", "Delivery ids remembered to refuse replays.", value=remembered
        )


class ReceiverMetrics:
    """The receiver's and its workers' counters. Each instance has its own registry, so that
    tests and several receivers in one process never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter(
            "baerase_webhook_deliveries_accepted", "Deliveries verified and queued, by event.", ["event"], registry=r
        )
        self.refused = Counter(
            "baerase_webhook_deliveries_refused", "Deliveries refused, by reason.", ["reason"], registry=r
        )
        self.scan_seconds = Histogram(
            "baerase_scan_duration_seconds",
            "Seconds per scan job the receiver ran, by action.",
            ["action"],
            buckets=SCAN_BUCKETS,
            registry=r,
        )
        self.verdicts = Counter(
            "baerase_scan_verdicts", "Verdicts of the receiver's scans, by verdict.", ["verdict"], registry=r
        )
        self.alias_reverts = Counter(
            "baerase_alias_reverts",
            "Protected aliases taken off a version that had not passed.",
            ["alias", "action"],
            registry=r,
        )
        for reason in REFUSED_REASONS:
            self.refused.labels(reason)
        for verdict in VERDICTS:
            self.verdicts.labels(verdict)

    def delivery_refused(self, reason: str) -> None:
        self.refused.labels(reason).inc()

    def delivery_accepted(self, event: str) -> None:
        self.accepted.labels(event).inc()

    def scan_finished(self, action: str, verdict: str | None, seconds: float) -> None:
        self.scan_seconds.labels(action).observe(seconds)
        self.verdicts.labels("error" if action == "error" else (verdict or "none")).inc()

    def alias_reverted(self, alias: str, action: str) -> None:
        self.alias_reverts.labels(alias, action).inc()

    def exposition(self, queue_counts: Callable[[], dict[str, dict[str, int]]]) -> bytes:
        """The text a scrape gets: the counters (summed over HTTP workers) and the queue."""
        registry = CollectorRegistry()
        path = multiprocess_dir()
        if path:
            MultiProcessCollector(registry, path)
        else:
            registry.register(_Forward(self.registry))
        registry.register(QueueCollector(queue_counts))
        return generate_latest(registry)


class _Forward:
    """One registry's metrics collected through another."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()
