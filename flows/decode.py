"""Validate micro-batches: raw events (Arrow), dead letters and the frame the windows aggregate.

Every message goes through the shared validation (`validate_wire_batch`: the gateway's rules,
straight into columns); an event without an id gets ``topic:partition:offset``, so a replay names
it the same way; one without ``received_at`` (another producer's) is judged against its broker
timestamp. The tenant is the message key's (`eventpulse.events.validation.message_tenant`), for
events and dead letters alike. The raw events become one Arrow table that is both what the sink inserts and,
without copying, the polars frame the windows read.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from eventpulse.events import EventValidator
from eventpulse.events.arrow import DEAD_LETTER_SCHEMA, RAW_EVENT_SCHEMA
from eventpulse.events.wire_batch import WIRE_COLUMNS, validate_wire_batch
from flows.source import SourceBatch
from flows.window_state import EVENT_SCHEMA

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


@dataclass(frozen=True, slots=True)
class Progress:
    """How far one partition got in a decoded batch."""

    partition: int
    first_offset: int
    last_offset: int
    max_ts: int | None  # largest valid event time of the partition's messages (None: no valid one)
    consumed_at_ms: int
    incarnation: str = ""  # the topic incarnation the offsets belong to (flows.source)


@dataclass(slots=True)
class DecodedBatch:
    """What the source batches of one step (one per partition that delivered) became."""

    topic: str
    progress: list[Progress]  # one per source batch
    raw_events: pa.Table  # eventpulse.events.arrow.RAW_EVENT_SCHEMA, then DATA_SCHEMA_VERSION
    dead_letters: pa.Table | list  # eventpulse.events.arrow.DEAD_LETTER_SCHEMA ([] when none)
    dead_payloads: list[tuple[bytes | None, bytes]]  # (key, value) for the dead-letter topic
    events: pl.DataFrame  # FRAME_SCHEMA

    @property
    def token(self) -> str:
        """Deduplication token part: ``topic@incarnation:partition:first-last`` of each source batch.

        Offsets name a message only within one incarnation of the topic (a recreated topic, or a
        broker restarted with memory storage, starts from 0 again), so the incarnation is part of
        the token: without it the warehouse would drop a new log's batch as a retry of an old one.
        A replay of the same incarnation repeats the token, and the server drops the retry. Without
        an incarnation (``EVENTPULSE_STREAM_TOKEN_INCARNATION=false``, tests only) the token is
        ``topic:partition:first-last``.
        """
        return ",".join(
            f"{self.topic}{'@' + p.incarnation if p.incarnation else ''}:{p.partition}:{p.first_offset}-{p.last_offset}"
            for p in self.progress
        )


def _array(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array of ``kind``; epoch-ms integers become timestamps as a view of
    their int64 array, ~50x faster than pyarrow converting each Python int to a timestamp."""
    if pa.types.is_timestamp(kind):
        return pa.array(values, pa.int64()).view(kind)
    return pa.array(values, kind)


def warm_up() -> None:
    """Pay pyarrow's one-time cost of its first Python-to-Arrow conversion before any message.

    The first ``pa.array`` call asks whether pandas is installed (pyarrow checks its inputs for
    pandas objects); in the flow's own process pandas is kept out (`flows.no_pandas`), elsewhere it
    is imported here, 1-2 s of CPU that would otherwise delay the first micro-batch. Called while
    the flow is built, with the rest of start-up.
    """
    pa.array([], pa.string())


def decode_batches(validator: EventValidator, batches: list[SourceBatch], payload_limit: int) -> DecodedBatch:
    """Validate every message of ``batches`` (one topic, any partitions) in one pass.

    Bytewax hands a step the batches of every partition it polled at once; validating and building
    the Arrow tables once for all of them pays the fixed costs (~0.5 ms a call) once, which is most
    of the work for the few hundred events per partition of a steady-state micro-batch.
    """
    topic = batches[0].topic
    if len(batches) == 1:
        (batch,) = batches
        partitions, offsets, keys, values, stamps = (
            [batch.partition] * len(batch.offsets),
            batch.offsets,
            batch.keys,
            batch.values,
            batch.broker_ts,
        )
    else:
        partitions = [b.partition for b in batches for _ in b.offsets]
        offsets = [o for b in batches for o in b.offsets]
        keys = [k for b in batches for k in b.keys]
        values = [v for b in batches for v in b.values]
        stamps = [t for b in batches for t in b.broker_ts]
    valid = validate_wire_batch(
        validator, values, lambda i: f"{topic}:{partitions[i]}:{offsets[i]}", keys=keys, broker_ts=stamps
    )
    dead_rows: list[tuple[Any, ...]] = []
    dead_payloads: list[tuple[bytes | None, bytes]] = []
    now_ms = time.time_ns() // 1_000_000
    # A dead letter's id names its message in this topic incarnation: a recreated topic (offsets from 0
    # again) must not replace an older dead letter of the same partition and offset.
    incarnation = {b.partition: b.incarnation for b in batches}
    for i, rejection in valid.rejections:
        where = f"{topic}@{incarnation[partitions[i]]}" if incarnation.get(partitions[i]) else topic
        ident, key, value, broker_ts = f"{where}:{partitions[i]}:{offsets[i]}", keys[i], values[i], stamps[i]
        payload = (value or b"")[:payload_limit].decode(errors="replace")
        dead_rows.append(
            (
                ident,
                validator.dead_letter_tenant(key, value),  # the tenant rule of the events (`message_tenant`)
                "flow",
                rejection.reason.value,
                rejection.field or "",
                rejection.detail[:2000],
                payload,
                topic,
                partitions[i],
                offsets[i],
                broker_ts if broker_ts > 0 else now_ms,
            )
        )
        dead_payloads.append((key, orjson.dumps({**rejection.as_dict(), "id": ident, "payload": payload})))

    index = valid.index
    all_valid = len(index) == len(offsets)
    columns = valid.columns
    arrays = [_array(columns[name], RAW_EVENT_SCHEMA.field(name).type) for name in WIRE_COLUMNS]
    arrays.append(pa.array(partitions if all_valid else [partitions[i] for i in index], type=pa.uint32()))
    arrays.append(pa.array(offsets if all_valid else [offsets[i] for i in index], type=pa.uint64()))
    raw = pa.Table.from_arrays(arrays, schema=RAW_EVENT_SCHEMA)
    raw = raw.append_column(DATA_SCHEMA_VERSION, _schema_versions(validator, columns, len(index)))
    frame = {name: raw.column(source) for source, name in _FRAME_SOURCES.items()}
    frame["ts"] = frame["ts"].cast(pa.int64())  # a view back to the epoch ms
    frame["broker_ts"] = pa.array(stamps if all_valid else [stamps[i] for i in index], pa.int64())
    events = pl.from_arrow(pa.table(frame))
    assert isinstance(events, pl.DataFrame)  # a table converts to a frame (typed as frame or series)
    return DecodedBatch(
        topic=topic,
        progress=_progress(batches, events["ts"].to_numpy(), events["partition"].to_numpy()),  # not via pandas
        raw_events=raw,
        dead_letters=pa.Table.from_arrays(
            [_array(c, f.type) for c, f in zip(zip(*dead_rows, strict=True), DEAD_LETTER_SCHEMA, strict=True)],
            schema=DEAD_LETTER_SCHEMA,
        )
        if dead_rows
        else [],
        dead_payloads=dead_payloads,
        events=events,
    )


DATA_SCHEMA_VERSION = "data_schema_version"
"""The column (migration 0161) naming the registered schema version each event's ``data`` was checked against."""


def _schema_versions(validator: EventValidator, columns: dict[str, list[Any]], count: int) -> pa.Array:
    """Per valid event, the version of its subject's schema in the snapshot that validated it (0: none)."""
    snapshot = validator.schemas.snapshot if validator.schemas is not None else None
    if snapshot is None or not snapshot.schemas:
        return pa.nulls(count, pa.uint32()).fill_null(0)
    version = snapshot.version_of
    return pa.array(list(map(version, columns["tenant"], columns["type"])), pa.uint32())


def _progress(batches: list[SourceBatch], ts: np.ndarray, partitions: np.ndarray) -> list[Progress]:
    """Each batch's partition progress; ``ts``/``partitions`` of the valid events."""
    out = []
    for b in batches:
        mine = ts if len(batches) == 1 else ts[partitions == b.partition]
        top = int(mine.max()) if len(mine) else None
        out.append(Progress(b.partition, b.first_offset, b.last_offset, top, b.consumed_at_ms, b.incarnation))
    return out
