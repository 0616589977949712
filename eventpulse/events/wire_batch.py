"""Validate many topic messages at once, straight into columns.

The dataflow reads messages in micro-batches and writes raw events column by column, so building
a `ValidEvent` per message only to take it apart again is wasted work. `validate_wire_batch`
returns the columns of the ``events`` table directly.

Two ways through, one set of rules:

* the **fast path** takes messages in the exact form the gateway writes (`ValidEvent.to_wire`):
  ASCII, at most `_FAST_MAX_BYTES`, exactly the known top-level fields with their JSON types.
  msgspec decodes the typed top level in one call and keeps ``data`` as raw JSON, which orjson
  then decodes as the general path would (so JSON edge cases inside ``data`` behave the same).
  The checks below only *accept*: any message they are not sure of goes to
* the **general path**, `EventValidator.parse_wire`, which alone decides rejections and reasons.

The size bound keeps nesting below orjson's depth limit and ASCII rules out invalid UTF-8: the two
things msgspec does not check in the raw ``data`` it skips over. That both paths agree, field by
field, is a Hypothesis property test (tests/eventpulse/events/test_wire_batch.py).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from eventpulse.events.model import RAW_EVENT_COLUMNS, SCHEMA_VERSION, ValidEvent
from eventpulse.events.rejections import Rejection
from eventpulse.events.validation import LATEST_RECEIVED_AT_MS, MAX_SCHEMA_VERSION, EventValidator

WIRE_COLUMNS: tuple[str, ...] = RAW_EVENT_COLUMNS[:-2]
"""The columns `validate_wire_batch` fills: ``RAW_EVENT_COLUMNS`` without the topic position."""


class _WireEvent(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The wire format exactly as the gateway writes it."""

    id: str
    timestamp: int
    type: str
    source: str
    data: msgspec.Raw
    tenant: str
    received_at: int
    schema_version: int = SCHEMA_VERSION


_DECODER = msgspec.json.Decoder(_WireEvent)
_FAST_MAX_BYTES = 2000  # a document deeper than orjson's 1024 levels needs more than 2048 bytes


@dataclass(slots=True)
class WireBatch:
    """Valid events as columns (`WIRE_COLUMNS`), and where each came from.

    ``index[i]`` is the position in the input of the i-th valid event; ``rejections`` pairs the
    position of every refused message with why.
    """

    columns: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in WIRE_COLUMNS})
    index: list[int] = field(default_factory=list)
    rejections: list[tuple[int, Rejection]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.index)


def validate_wire_batch(
    validator: EventValidator,
    payloads: Sequence[bytes | None],
    default_id: Callable[[int], str],
) -> WireBatch:
    """Validate every message value of ``payloads``.

    ``default_id(i)`` names the i-th message when it carries no id (only asked then), so a replay
    names it the same way.
    """
    limits = validator.limits
    name_max, id_max, keys_max = limits.max_name_chars, limits.max_id_chars, limits.max_data_keys
    depth_max = limits.max_data_depth
    skew_ms, age_ms = limits.max_future_skew_s * 1000, limits.max_past_age_s * 1000
    fast_max = min(_FAST_MAX_BYTES, limits.max_event_bytes)
    out = WireBatch()
    cols = out.columns
    tenant_c, id_c, ts_c, type_c, source_c = cols["tenant"], cols["id"], cols["timestamp"], cols["type"], cols["source"]
    user_c, latency_c, error_c, data_c = cols["user_id"], cols["latency_ms"], cols["is_error"], cols["data"]
    extra_c, version_c, received_c = cols["extra"], cols["schema_version"], cols["received_at"]
    index = out.index
    decode, loads = _DECODER.decode, orjson.loads
    for i, payload in enumerate(payloads):
        if payload is not None and len(payload) <= fast_max and payload.isascii():
            try:
                wire = decode(payload)
                raw = memoryview(wire.data)
                data = loads(raw)
            except (msgspec.DecodeError, orjson.JSONDecodeError):
                data = None
            text = str(raw, "ascii") if type(data) is dict else ""
            # no more containers in the text than levels allowed: the depth limit holds
            if type(data) is dict and len(data) <= keys_max and text.count("{") + text.count("[") <= depth_max:
                tenant, ident, kind, source = wire.tenant, wire.id, wire.type, wire.source
                ts, received = wire.timestamp, wire.received_at
                user = data.get("user_id", "")
                user_type = type(user)
                user_id = user if user_type is str else str(user) if user_type is int else None
                latency = data.get("latency_ms")
                latency_type = type(latency)
                if latency_type is int:
                    latency = float(latency)
                    latency_type = float
                if (
                    user_id is not None
                    and len(user_id) <= name_max
                    and (latency is None or (latency_type is float and latency >= 0 and math.isfinite(latency)))
                    and 0 <= wire.schema_version <= MAX_SCHEMA_VERSION
                    and 0 <= received < LATEST_RECEIVED_AT_MS
                    and 0 <= ts <= received + skew_ms
                    and ts >= received - age_ms
                    and _name_ok(tenant, name_max)
                    and _name_ok(kind, name_max)
                    and _name_ok(source, name_max)
                    and _name_ok(ident, id_max)
                ):
                    status = data.get("status_code")
                    index.append(i)
                    tenant_c.append(tenant)
                    id_c.append(ident)
                    ts_c.append(ts)
                    type_c.append(kind)
                    source_c.append(source)
                    user_c.append(user_id)
                    latency_c.append(latency)
                    error_c.append(
                        int(
                            kind == "error"
                            or data.get("error") is True
                            or (type(status) in (int, float) and status >= 500)
                        )
                    )
                    data_c.append(text)
                    extra_c.append("{}")
                    version_c.append(wire.schema_version)
                    received_c.append(received)
                    continue
        result = validator.parse_wire(payload or b"", default_id=default_id(i))
        if isinstance(result, Rejection):
            out.rejections.append((i, result))
        else:
            _append(out, i, result)
    return out


def _name_ok(value: str, most: int) -> bool:
    return 0 < len(value) <= most and not value.isspace()


def _append(out: WireBatch, i: int, event: ValidEvent) -> None:
    row = event.raw_row(0, 0)[: len(WIRE_COLUMNS)]
    for column, value in zip(out.columns.values(), row, strict=True):
        column.append(value)
    out.index.append(i)
