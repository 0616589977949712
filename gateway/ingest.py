"""Turning a request body into events: decoding (JSON object, JSON array, NDJSON) and validation.

Pure functions, no I/O: the handlers in `gateway.handlers` call them and decide the HTTP answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from eventpulse.events import EventValidator, Rejection, RejectReason, ValidEvent

NDJSON = "application/x-ndjson"
JSON = "application/json"


@dataclass(slots=True)
class BodyError:
    """The body as a whole is unusable (HTTP ``status``)."""

    status: int
    error: str
    detail: str


@dataclass(slots=True)
class Item:
    """One submitted event before validation: the decoded object, or why it could not be decoded."""

    obj: Any
    raw: bytes | None = None  # the NDJSON line, when there is one
    rejection: Rejection | None = None


@dataclass(slots=True)
class Checked:
    """Validation outcome of a batch."""

    valid: list[tuple[int, ValidEvent, bytes]]  # (index, event, wire value)
    rejected: list[tuple[int, Rejection, Any]]  # (index, why, what was sent)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_single(body: bytes) -> Any | BodyError:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return BodyError(400, RejectReason.MALFORMED_JSON.value, f"body is not valid JSON: {exc}")


def decode_batch(body: bytes, kind: str, max_events: int) -> list[Item] | BodyError:
    """Split a batch body into items; ``kind`` is `JSON` (an array) or `NDJSON` (one object a line)."""
    if kind == NDJSON:
        items: list[Item] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            if len(items) >= max_events:
                return _too_many(max_events)
            try:
                items.append(Item(orjson.loads(line), line))
            except orjson.JSONDecodeError as exc:
                items.append(Item(None, line, Rejection(RejectReason.MALFORMED_JSON, None, str(exc))))
        return items
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return BodyError(400, RejectReason.MALFORMED_JSON.value, f"body is not valid JSON: {exc}")
    if not isinstance(doc, list):
        return BodyError(400, "not_an_array", "a JSON batch is an array of events (or send application/x-ndjson)")
    if len(doc) > max_events:
        return _too_many(max_events)
    return [Item(obj) for obj in doc]


def _too_many(max_events: int) -> BodyError:
    return BodyError(413, "too_many_events", f"a batch holds at most {max_events} events")


def check(items: list[Item], validator: EventValidator, tenant: str, received_ms: int, max_event_bytes: int) -> Checked:
    """Validate every item for ``tenant`` (from the API key; a ``tenant`` in the body is ignored)."""
    valid: list[tuple[int, ValidEvent, bytes]] = []
    rejected: list[tuple[int, Rejection, Any]] = []
    parse = validator.parse_object
    for index, item in enumerate(items):
        if item.rejection is not None:
            rejected.append((index, item.rejection, item.raw))
            continue
        result = parse(item.obj, tenant=tenant, received_at_ms=received_ms)
        if isinstance(result, Rejection):
            rejected.append((index, result, item.raw if item.raw is not None else item.obj))
            continue
        wire = result.to_wire()
        if len(wire) > max_event_bytes:
            why = Rejection(
                RejectReason.PAYLOAD_TOO_LARGE, None, f"event is {len(wire)} bytes, the limit is {max_event_bytes}"
            )
            rejected.append((index, why, item.raw if item.raw is not None else item.obj))
            continue
        valid.append((index, result, wire))
    return Checked(valid, rejected)


def payload_text(sent: Any, limit: int = 64 * 1024) -> str:
    """What a client sent, as text for the dead-letter row (truncated to ``limit`` characters)."""
    if isinstance(sent, bytes):
        return sent[:limit].decode("utf-8", "replace")
    try:
        return orjson.dumps(sent)[:limit].decode("utf-8", "replace")
    except TypeError:
        return repr(sent)[:limit]
