"""The signature of a webhook delivery: HMAC-SHA256 over the timestamp and the body, Stripe's scheme.

The sender puts ``X-EventPulse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``
on each delivery. Several ``v1=`` entries may be sent (a sender moving to a new secret signs with both).
The gateway accepts the delivery when one of them matches, in constant time, and ``t`` is within the
tolerance of its clock; a signature seen before within that window is a replay (`gateway.webhooks`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

HEADER = "X-EventPulse-Signature"
DELIVERY_HEADER = "X-EventPulse-Delivery"
SCHEME = "v1"


def sign(secret: str, timestamp_s: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp_s`` (what a sender computes)."""
    return f"t={timestamp_s},{SCHEME}={_digest(secret, timestamp_s, body)}"


def _digest(secret: str, timestamp_s: int, body: bytes) -> str:
    return hmac.new(secret.encode(), b"%d." % timestamp_s + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Verified:
    timestamp_s: int
    signature: str  # the matching hex digest (what the replay memory keeps)


@dataclass(frozen=True, slots=True)
class Refused:
    error: str  # missing_signature | invalid_signature | stale_timestamp
    detail: str


def verify(header: str | None, body: bytes, secret: str, now_s: float, tolerance_s: int) -> Verified | Refused:
    """Check ``header`` against ``body`` signed with ``secret``; the timestamp within ``tolerance_s`` of ``now_s``."""
    if not header:
        return Refused("missing_signature", f"sign the delivery: {HEADER}: t=<unix seconds>,{SCHEME}=<hex HMAC-SHA256>")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == SCHEME and value:
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        return Refused("invalid_signature", f"{HEADER} must hold t=<unix seconds> and {SCHEME}=<hex digest>")
    expected = _digest(secret, timestamp, body)
    matched = next((c for c in candidates if hmac.compare_digest(c.encode(), expected.encode())), None)
    if matched is None:
        return Refused("invalid_signature", "the signature does not match the body and timestamp")
    if abs(now_s - timestamp) > tolerance_s:
        detail = f"the signed timestamp {timestamp} is more than {tolerance_s} s from the gateway's clock"
        return Refused("stale_timestamp", detail)
    return Verified(timestamp, matched)
