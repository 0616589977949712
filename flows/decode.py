"""Validate a micro-batch: raw events (Arrow), dead letters and the frame the windows aggregate.

Every message goes through the shared validation (`validate_wire_batch`: the gateway's rules,
straight into columns); an event without an id gets ``topic:partition:offset``, so a replay names
it the same way. The raw events become one Arrow table that is both what the sink inserts and,
without copying, the polars frame the windows read.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from eventpulse.aggregation.streaming import EVENT_SCHEMA
from eventpulse.events import EventValidator
from eventpulse.events.arrow import DEAD_LETTER_SCHEMA, RAW_EVENT_SCHEMA
from eventpulse.events.wire_batch import WIRE_COLUMNS, validate_wire_batch
from flows.source import SourceBatch

FRAME_SCHEMA: dict[str, pl.DataType] = {
    **EVENT_SCHEMA,
    "id": pl.String(),
    "partition": pl.UInt32(),
    "offset": pl.UInt64(),
    "broker_ts": pl.Int64(),
}
"""Columns of `DecodedBatch.events`: the aggregation inputs plus what a late-event row needs."""

_FRAME_SOURCES = {
    "timestamp": "ts",
    "tenant": "tenant",
    "type": "type",
    "source": "source",
    "user_id": "user_id",
    "latency_ms": "latency_ms",
    "is_error": "is_error",
    "id": "id",
    "topic_partition": "partition",
    "topic_offset": "offset",
}


@dataclass(slots=True)
class DecodedBatch:
    """What one source batch became."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    consumed_at_ms: int
    raw_events: pa.Table  # eventpulse.events.arrow.RAW_EVENT_SCHEMA
    dead_letters: pa.Table | list  # eventpulse.events.arrow.DEAD_LETTER_SCHEMA ([] when none)
    dead_payloads: list[tuple[bytes | None, bytes]]  # (key, value) for the dead-letter topic
    events: pl.DataFrame  # FRAME_SCHEMA
    max_ts: int | None  # largest valid event time in the batch

    @property
    def token(self) -> str:
        """Deduplication token part: ``topic:partition:first-last``."""
        return f"{self.topic}:{self.partition}:{self.first_offset}-{self.last_offset}"


def _array(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array of ``kind``; epoch-ms integers become timestamps as a view of
    their int64 array, ~50x faster than pyarrow converting each Python int to a timestamp."""
    if pa.types.is_timestamp(kind):
        return pa.array(values, pa.int64()).view(kind)
    return pa.array(values, kind)


def warm_up() -> None:
    """Pay pyarrow's one-time cost of its first Python-to-Arrow conversion before any message.

    The first ``pa.array`` call imports pandas (pyarrow checks its inputs for pandas objects):
    1-2 s of CPU that would otherwise delay the first micro-batch and count against the flow's
    first seconds of processing. Called while the flow is built, with the rest of start-up.
    """
    pa.array([], pa.string())


def _tenant_of(key: bytes | None) -> str:
    if not key:
        return ""
    return key.decode(errors="replace").split(":", 1)[0][:128]


def decode_batch(validator: EventValidator, batch: SourceBatch, payload_limit: int) -> DecodedBatch:
    """Validate every message of ``batch``."""
    topic, partition, offsets = batch.topic, batch.partition, batch.offsets
    valid = validate_wire_batch(validator, batch.values, lambda i: f"{topic}:{partition}:{offsets[i]}")
    dead_rows: list[tuple[Any, ...]] = []
    dead_payloads: list[tuple[bytes | None, bytes]] = []
    now_ms = time.time_ns() // 1_000_000
    for i, rejection in valid.rejections:
        ident, key, value, broker_ts = (
            f"{topic}:{partition}:{offsets[i]}",
            batch.keys[i],
            batch.values[i],
            batch.broker_ts[i],
        )
        payload = (value or b"")[:payload_limit].decode(errors="replace")
        dead_rows.append(
            (
                ident,
                _tenant_of(key),
                "flow",
                rejection.reason.value,
                rejection.field or "",
                rejection.detail[:2000],
                payload,
                topic,
                partition,
                offsets[i],
                broker_ts if broker_ts > 0 else now_ms,
            )
        )
        dead_payloads.append((key, orjson.dumps({**rejection.as_dict(), "id": ident, "payload": payload})))

    index = valid.index
    all_valid = len(index) == len(offsets)
    event_offsets = offsets if all_valid else [offsets[i] for i in index]
    columns = valid.columns
    arrays = [_array(columns[name], RAW_EVENT_SCHEMA.field(name).type) for name in WIRE_COLUMNS]
    arrays.append(pa.array([partition] * len(index), type=pa.uint32()))
    arrays.append(pa.array(event_offsets, type=pa.uint64()))
    raw = pa.Table.from_arrays(arrays, schema=RAW_EVENT_SCHEMA)
    broker_ts = batch.broker_ts if all_valid else [batch.broker_ts[i] for i in index]
    frame = {name: raw.column(source) for source, name in _FRAME_SOURCES.items()}
    frame["ts"] = frame["ts"].cast(pa.int64())  # a view back to the epoch ms
    frame["broker_ts"] = pa.array(broker_ts, pa.int64())
    events = pl.from_arrow(pa.table(frame))
    return DecodedBatch(
        topic=topic,
        partition=partition,
        first_offset=batch.first_offset,
        last_offset=batch.last_offset,
        consumed_at_ms=batch.consumed_at_ms,
        raw_events=raw,
        dead_letters=pa.Table.from_arrays(
            [_array(c, f.type) for c, f in zip(zip(*dead_rows, strict=True), DEAD_LETTER_SCHEMA, strict=True)],
            schema=DEAD_LETTER_SCHEMA,
        )
        if dead_rows
        else [],
        dead_payloads=dead_payloads,
        events=events,
        max_ts=max(columns["timestamp"]) if index else None,
    )
