"""Turning a request body into events: decoding (JSON object, JSON array, NDJSON) and validation.

Pure functions, no I/O: the handlers in `gateway.handlers` call them and decide the HTTP answer.
Bodies are decoded with orjson; events are validated by `SubmittedEventParser` (the shared rules
of `EventValidator.parse_object`, with a fast path for the common event).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from eventpulse.events import Rejection, RejectReason, ValidEvent
from eventpulse.events.encoding import encode_checked
from eventpulse.events.submitted import SubmittedEventParser
from eventpulse.events.validation import decode_rejection

NDJSON = "application/x-ndjson"
JSON = "application/json"


@dataclass(slots=True)
class BodyError:
    """The body as a whole is unusable (HTTP ``status``)."""

    status: int
    error: str
    detail: str


@dataclass(slots=True)
class Submitted:
    """The events of one request before validation.

    ``objects[i]`` is event ``i`` as decoded; for NDJSON ``lines[i]`` is its line (what the dead
    letter keeps) and ``malformed`` says why a line could not be decoded (its object is None).
    """

    objects: list[Any]
    lines: list[bytes] | None = None
    malformed: dict[int, Rejection] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.objects)

    def sent(self, index: int) -> Any:
        """What the client sent as event ``index`` (for dead letters)."""
        return self.lines[index] if self.lines is not None else self.objects[index]


@dataclass(slots=True)
class Checked:
    """Validation outcome of a request."""

    valid: list[tuple[int, ValidEvent, bytes]]  # (index, event, wire value)
    rejected: list[tuple[int, Rejection, Any]]  # (index, why, what was sent)


def media_type(content_type: bytes | None) -> str:
    """``application/json`` from ``b"Application/JSON; charset=utf-8"`` ("" when absent)."""
    if content_type is None:
        return ""
    return content_type.decode("latin-1").split(";", 1)[0].strip().lower()


def decode_batch(body: bytes, kind: str, max_events: int) -> Submitted | BodyError:
    """Split a batch body into events; ``kind`` is `JSON` (an array) or `NDJSON` (one object a line)."""
    if kind == NDJSON:
        batch = Submitted([], [])
        assert batch.lines is not None
        for line in body.splitlines():
            if not line.strip():
                continue
            if len(batch.objects) >= max_events:
                return _too_many(max_events)
            try:
                batch.objects.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                batch.malformed[len(batch.objects)] = decode_rejection(exc)
                batch.objects.append(None)
            batch.lines.append(line)
        return batch
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        elements = split_array(body) if str(exc).startswith("depth limit exceeded") else None
        if elements is None:
            return BodyError(400, RejectReason.MALFORMED_JSON.value, f"body is not valid JSON: {exc}")
        return _decode_elements(elements, max_events)
    if not isinstance(doc, list):
        return BodyError(400, "not_an_array", "a JSON batch is an array of events (or send application/x-ndjson)")
    if len(doc) > max_events:
        return _too_many(max_events)
    return Submitted(doc)


def _decode_elements(elements: list[bytes], max_events: int) -> Submitted | BodyError:
    """A JSON array orjson refused for its depth, decoded element by element: only the too deep
    ones are refused (at their index), as NDJSON lines are."""
    if len(elements) > max_events:
        return _too_many(max_events)
    batch = Submitted([], elements)
    for index, element in enumerate(elements):
        try:
            batch.objects.append(orjson.loads(element))
        except orjson.JSONDecodeError as exc:
            batch.malformed[index] = decode_rejection(exc)
            batch.objects.append(None)
    return batch


# A JSON string (escapes included) or a structural character; everything else is skipped.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)


def split_array(body: bytes) -> list[bytes] | None:
    """The element texts of the JSON array ``body``, or None if it is not one array.

    Only the structure is read (strings, brackets, commas at the top level), iteratively, so an
    element of any depth is split off without being decoded; each element is then decoded (and
    its syntax checked) on its own. For bodies orjson refuses for their depth only: it scans every
    string in Python's regex engine, ~10x slower than orjson.
    """
    elements: list[bytes] = []
    depth = 0
    start = end = -1
    for match in _TOKENS.finditer(body):
        char = body[match.start()]
        if char == 0x22:  # a string
            continue
        if char in b"[{":
            if depth == 0:
                if char != 0x5B or start >= 0:
                    return None
                start = match.end()
            depth += 1
        elif char in b"]}":
            depth -= 1
            if depth == 0:
                elements.append(body[start : match.start()])
                end = match.end()
                break
        elif depth == 1:  # a comma between two elements
            elements.append(body[start : match.start()])
            start = match.end()
    if end < 0 or body[: body.index(b"[")].strip() or body[end:].strip():
        return None
    if len(elements) == 1 and not elements[0].strip():
        return []  # "[]"
    return [element.strip() for element in elements]


def _too_many(max_events: int) -> BodyError:
    return BodyError(413, "too_many_events", f"a batch holds at most {max_events} events")


def check(
    submitted: Submitted, parser: SubmittedEventParser, tenant: str, received_ms: int, max_event_bytes: int
) -> Checked:
    """Validate every event for ``tenant`` (from the API key; a ``tenant`` in the body is ignored)."""
    valid: list[tuple[int, ValidEvent, bytes]] = []
    rejected: list[tuple[int, Rejection, Any]] = []
    malformed = submitted.malformed
    results = parser.parse_all(submitted.objects, tenant=tenant, received_at_ms=received_ms)
    for index, result in enumerate(results):
        if malformed and index in malformed:
            rejected.append((index, malformed[index], submitted.sent(index)))
            continue
        outcome = encode_checked(result, max_event_bytes)
        if isinstance(outcome, Rejection):
            rejected.append((index, outcome, submitted.sent(index)))
        else:
            valid.append((index, result, outcome))  # type: ignore[arg-type]
    return Checked(valid, rejected)


def check_one(
    obj: Any, parser: SubmittedEventParser, tenant: str, received_ms: int, max_event_bytes: int
) -> tuple[ValidEvent, bytes] | Rejection:
    """`check` for one decoded event (``POST /api/events``): the event and its wire value, or why not."""
    result = parser.parse(obj, tenant=tenant, received_at_ms=received_ms)
    outcome = encode_checked(result, max_event_bytes)
    if isinstance(outcome, Rejection):
        return outcome
    return result, outcome  # type: ignore[return-value]


def payload_text(sent: Any, limit: int = 64 * 1024) -> str:
    """What a client sent, as text for the dead-letter row (truncated to ``limit`` characters)."""
    if isinstance(sent, bytes):
        return sent[:limit].decode("utf-8", "replace")
    try:
        return orjson.dumps(sent)[:limit].decode("utf-8", "replace")
    except TypeError:
        return repr(sent)[:limit]
