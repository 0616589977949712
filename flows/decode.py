"""Validate a micro-batch: raw rows, dead letters and the columnar frame the windows aggregate.

Every message goes through the shared `EventValidator.parse_wire` (the same rules as the gateway);
an event without an id gets ``topic:partition:offset``, so a replay names it the same way.
"""

import time
from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl

from eventpulse.aggregation.streaming import EVENT_SCHEMA
from eventpulse.events import EventValidator, Rejection
from flows.source import SourceBatch

FRAME_SCHEMA: dict[str, pl.DataType] = {
    **EVENT_SCHEMA,
    "id": pl.String(),
    "partition": pl.UInt32(),
    "offset": pl.UInt64(),
    "broker_ts": pl.Int64(),
}
"""Columns of `DecodedBatch.events`: the aggregation inputs plus what a late-event row needs."""


@dataclass(slots=True)
class DecodedBatch:
    """What one source batch became."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    consumed_at_ms: int
    raw_rows: list[tuple[Any, ...]]
    dead_rows: list[tuple[Any, ...]]
    dead_payloads: list[tuple[bytes | None, bytes]]  # (key, value) for the dead-letter topic
    events: pl.DataFrame
    max_ts: int | None  # largest valid event time in the batch

    @property
    def token(self) -> str:
        """Deduplication token part: ``topic:partition:first-last``."""
        return f"{self.topic}:{self.partition}:{self.first_offset}-{self.last_offset}"


def _tenant_of(key: bytes | None) -> str:
    if not key:
        return ""
    return key.decode(errors="replace").split(":", 1)[0][:128]


def decode_batch(validator: EventValidator, batch: SourceBatch, payload_limit: int) -> DecodedBatch:
    """Validate every message of ``batch``."""
    raw_rows: list[tuple[Any, ...]] = []
    dead_rows: list[tuple[Any, ...]] = []
    dead_payloads: list[tuple[bytes | None, bytes]] = []
    cols: dict[str, list[Any]] = {name: [] for name in FRAME_SCHEMA}
    now_ms = time.time_ns() // 1_000_000
    topic, partition = batch.topic, batch.partition
    for offset, key, value, broker_ts in zip(batch.offsets, batch.keys, batch.values, batch.broker_ts, strict=True):
        ident = f"{topic}:{partition}:{offset}"
        result = validator.parse_wire(value or b"", default_id=ident)
        if isinstance(result, Rejection):
            payload = (value or b"")[:payload_limit].decode(errors="replace")
            dead_rows.append(
                (
                    ident,
                    _tenant_of(key),
                    "flow",
                    result.reason.value,
                    result.field or "",
                    result.detail[:2000],
                    payload,
                    topic,
                    partition,
                    offset,
                    broker_ts if broker_ts > 0 else now_ms,
                )
            )
            dead_payloads.append((key, orjson.dumps({**result.as_dict(), "id": ident, "payload": payload})))
            continue
        raw_rows.append(result.raw_row(partition, offset))
        cols["ts"].append(result.timestamp_ms)
        cols["tenant"].append(result.tenant)
        cols["type"].append(result.type)
        cols["source"].append(result.source)
        cols["user_id"].append(result.user_id)
        cols["latency_ms"].append(result.latency_ms)
        cols["is_error"].append(int(result.is_error))
        cols["id"].append(result.id)
        cols["partition"].append(partition)
        cols["offset"].append(offset)
        cols["broker_ts"].append(broker_ts)
    events = pl.DataFrame(cols, schema=FRAME_SCHEMA)
    return DecodedBatch(
        topic=topic,
        partition=partition,
        first_offset=batch.first_offset,
        last_offset=batch.last_offset,
        consumed_at_ms=batch.consumed_at_ms,
        raw_rows=raw_rows,
        dead_rows=dead_rows,
        dead_payloads=dead_payloads,
        events=events,
        max_ts=max(cols["ts"]) if cols["ts"] else None,
    )
