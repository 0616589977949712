"""Events as the gateway takes them, encoded once at capture so every retry sends the same bytes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.

    Ids made by the client are what makes a retry idempotent: the gateway and the warehouse
    recognise a resent event by its ``(id, timestamp)``; time-ordered ids keep the warehouse's
    sorted id columns compact.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a, rand_b = (rand >> 62) & 0xFFF, rand & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"  # formatted by hand: uuid.UUID(...) and str() cost twice as much
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def epoch_ms(timestamp: datetime | int | None) -> int:
    """``timestamp`` as Unix epoch milliseconds: now when None; an int is taken as milliseconds
    already; a naive datetime is UTC (as the gateway reads an ISO time without an offset)."""
    if timestamp is None:
        return time.time_ns() // 1_000_000
    if isinstance(timestamp, datetime):
        aware = timestamp if timestamp.tzinfo is not None else timestamp.replace(tzinfo=timezone.utc)
        return int(aware.timestamp() * 1000)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError(f"timestamp must be a datetime or epoch milliseconds (int), got {type(timestamp).__name__}")
    return timestamp


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """One captured event: its id, its JSON (encoded once) and its place in the client's queue."""

    id: str
    payload: bytes
    seq: int = 0
    enqueued_at: float = 0.0


def encode_event(
    type: str,
    source: str,
    data: Mapping[str, Any] | None = None,
    *,
    user_id: str | int | None = None,
    timestamp: datetime | int | None = None,
    id: str | None = None,
) -> tuple[str, bytes]:
    """The event's id and its JSON. Raises `TypeError`/`ValueError` here, in the caller, for what
    JSON cannot hold (or NaN), rather than losing the event later in the background."""
    if not isinstance(type, str) or not type:
        raise ValueError("type must be a non-empty string")
    if not isinstance(source, str) or not source:
        raise ValueError("source must be a non-empty string")
    body: dict[str, Any] = dict(data or {})
    if user_id is not None:
        body["user_id"] = user_id
    event_id = id if id is not None else uuid7()
    doc = {"id": event_id, "timestamp": epoch_ms(timestamp), "type": type, "source": source, "data": body}
    payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    return event_id, payload


def batch_body(events: list[QueuedEvent]) -> bytes:
    """A JSON array of the events, as ``POST /api/events/batch`` takes it."""
    return b"[" + b",".join(e.payload for e in events) + b"]"
