"""Verifying an MLflow webhook delivery: its HMAC signature, then its age.

MLflow signs ``"{delivery id}.{timestamp}.{raw body}"`` with HMAC-SHA256 under the
webhook's secret and sends ``X-MLflow-Signature: v1,<base64>`` beside the delivery id and
the Unix timestamp (mlflow/webhooks/delivery.py). Replays (a delivery id seen before)
are caught by the queue, which remembers ids in the same transaction that queues the jobs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from mlflow.webhooks.constants import (
    WEBHOOK_DELIVERY_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_SIGNATURE_VERSION,
    WEBHOOK_TIMESTAMP_HEADER,
)

HEADERS = (WEBHOOK_DELIVERY_ID_HEADER, WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER)


class DeliveryRejected(Exception):
    """A delivery that is not processed: ``status`` is the HTTP answer, ``code`` a short
    name of why (the receiver's refusal metric's label)."""

    def __init__(self, status: int, reason: str, code: str = "refused"):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    timestamp: int


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The signature header value MLflow sends for this delivery."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{WEBHOOK_SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float, tolerance_s: float) -> Delivery:
    """The delivery, if its signature matches and its timestamp is within ``tolerance_s`` of ``now``."""
    missing = [h for h in HEADERS if not headers.get(h)]
    if missing:
        raise DeliveryRejected(
            401, f"missing header(s) {', '.join(missing)}: only signed deliveries are accepted", "unsigned"
        )
    delivery_id, timestamp, signatures = (headers[h].strip() for h in HEADERS)
    expected = sign(secret, delivery_id, timestamp, body)
    # Several space-separated signatures may come while a secret is being rotated.
    if not any(hmac.compare_digest(expected.encode(), s.encode()) for s in signatures.split()):
        raise DeliveryRejected(
            401, "the signature does not match (wrong secret, or the delivery was altered)", "bad_signature"
        )
    try:
        sent = int(timestamp)
    except ValueError:
        raise DeliveryRejected(
            400, f"bad {WEBHOOK_TIMESTAMP_HEADER} {timestamp!r}: expected Unix seconds", "bad_timestamp"
        ) from None
    if abs(now - sent) > tolerance_s:
        raise DeliveryRejected(
            401, f"stale delivery: sent {now - sent:+.0f} s from now, beyond the {tolerance_s:.0f} s tolerance", "stale"
        )
    return Delivery(delivery_id, sent)
