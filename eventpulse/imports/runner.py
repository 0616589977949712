"""Produce a file's events onto the events topic, chunk by chunk, and checkpoint what the broker acknowledged.

Each chunk is read, validated and encoded (`eventpulse.imports.columnar` for tables, else
`eventpulse.imports.rows`), its refused rows written to dead letters, and its messages produced
with the platform's idempotent ``acks=all`` producer (`eventpulse.broker.admin.producer_config`).
Up to ``chunks_in_flight`` chunks wait for their acks while the next is prepared; the checkpoint
moves past a chunk only once it and every chunk before it is acknowledged. A delivery failure
stops the import (`ImportFailed`); run it again to resume from the checkpoint.

Messages go to the partition librdkafka's default partitioner picks for their key (CRC-32 of the
key modulo the partition count, as for the gateway's), chosen here so that only the *last* message
of each partition in a chunk carries a delivery callback: librdkafka reports a partition's
deliveries in order, and with idempotence a message fails only together with those after it, so
that message's ack stands for the chunk's messages of its partition. A Python callback (and a
``Message`` object) per message cost about as much as the rest of the import's work per event.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Producer

from eventpulse.broker.admin import producer_config
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.imports import ImportSettings
from eventpulse.events.submitted import SubmittedEventParser
from eventpulse.imports.checkpoints import Checkpoint, CheckpointStore
from eventpulse.imports.columnar import ColumnarEncoder
from eventpulse.imports.dead_letters import DeadLetterSink
from eventpulse.imports.files import ImportFile
from eventpulse.imports.reading import Chunk, read_chunks
from eventpulse.imports.rows import Encoded, RowEncoder


class ImportFailed(Exception):
    """The broker did not acknowledge every message of a chunk; the checkpoint is before it."""


@dataclass(frozen=True, slots=True)
class FileResult:
    url: str
    identity: str
    rows: int  # rows of the file read in this run (from the resume point)
    accepted: int
    rejected: int
    resumed_at: int
    skipped: bool = False  # already imported completely


def import_producer(broker: BrokerSettings) -> Producer:
    """The platform's producer, with room for several chunks in flight."""
    options = {"linger.ms": 20, "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 2_097_151}
    return Producer(producer_config(broker, **{"client.id": "eventpulse-import", **options}))


class _Acks:
    """Delivery reports of one chunk: librdkafka calls it for the last message of each partition."""

    __slots__ = ("end", "errors", "remaining", "totals")

    def __init__(self, count: int, end: int, totals: tuple[int, int]) -> None:
        self.remaining, self.end, self.totals = count, end, totals
        self.errors: list[str] = []

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        self.remaining -= 1
        if err is not None:
            self.errors.append(str(err))


class Importer:
    """Imports files for one tenant; ``progress(rows)`` is told of every chunk acknowledged."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        parser: SubmittedEventParser,
        tenant: str,
        settings: ImportSettings,
        dead_letters: DeadLetterSink,
        checkpoints: CheckpointStore | None,
        *,
        max_event_bytes: int,
        progress: Callable[[int], None] = lambda rows: None,
    ) -> None:
        self.producer, self.topic, self.tenant, self.settings = producer, topic, tenant, settings
        self.dead_letters, self.checkpoints, self.progress = dead_letters, checkpoints, progress
        self.rows = RowEncoder(parser, tenant, max_event_bytes)
        self.columnar = ColumnarEncoder(self.rows) if settings.columnar else None
        self._partitions = 0
        self._partition_of: dict[bytes, int] = {}

    def encode(self, chunk: Chunk, identity: str, received_ms: int) -> Encoded:
        if chunk.lines is not None:
            return self.rows.encode_lines(chunk.lines, chunk.first, identity, received_ms)
        assert chunk.table is not None
        if self.columnar is not None:
            return self.columnar.encode_table(chunk.table, chunk.first, identity, received_ms)
        return self.rows.encode_table(chunk.table, chunk.first, identity, received_ms)

    def import_file(
        self, file: ImportFile, mapping: dict[str, str] | None = None, *, restart: bool = False
    ) -> FileResult:
        """Import ``file`` from its checkpoint (from row 0 with ``restart`` or without a checkpoint store)."""
        identity = file.identity()
        store = self.checkpoints
        done = store.load(identity) if store is not None and not restart else None
        if done is not None and done.complete:
            return FileResult(file.url, identity, 0, done.accepted, done.rejected, done.rows, skipped=True)
        start = done.rows if done else 0
        accepted, rejected = (done.accepted, done.rejected) if done else (0, 0)
        in_flight: deque[_Acks] = deque()
        position = start
        for chunk in read_chunks(file, self.settings.chunk_rows, start, mapping):
            encoded = self.encode(chunk, identity, time.time_ns() // 1_000_000)
            self.dead_letters.write(identity, self.tenant, encoded.rejected, time.time_ns() // 1_000_000)
            accepted += len(encoded.values)
            rejected += len(encoded.rejected)
            acks = _Acks(len(encoded.values), chunk.first + chunk.count, (accepted, rejected))
            self._produce(encoded, acks)
            in_flight.append(acks)
            if not self.settings.checkpoint_after_ack:  # the negative control: checkpoint what was only produced
                self._save(identity, file.url, acks)
            while in_flight:
                self.producer.poll(0 if len(in_flight) < self.settings.chunks_in_flight else 0.01)
                if not self._settle(identity, file.url, in_flight) and len(in_flight) < self.settings.chunks_in_flight:
                    break
            position = acks.end
        deadline = time.monotonic() + self.settings.ack_timeout_s
        while in_flight:
            self.producer.poll(0.01)
            self._settle(identity, file.url, in_flight)
            if in_flight and time.monotonic() > deadline:
                raise ImportFailed(f"{file.url}: the broker did not acknowledge rows before {position} in time")
        if store is not None:
            store.save(identity, Checkpoint(file.url, position, accepted, rejected, complete=True))
        return FileResult(file.url, identity, position - start, accepted, rejected, start)

    def _produce(self, encoded: Encoded, acks: _Acks) -> None:
        if not self._partitions:
            found = self.producer.list_topics(timeout=10).topics.get(self.topic)  # all topics: see broker.admin
            self._partitions = len(found.partitions) if found is not None else 0
            if not self._partitions:
                raise ImportFailed(f"topic {self.topic!r} does not exist")
        keys, partitions = encoded.keys, self._partitions_of(encoded.keys)
        last = {partition: k for k, partition in enumerate(partitions)}
        acks.remaining = len(last)
        produce, poll, topic = self.producer.produce, self.producer.poll, self.topic
        for k, value in enumerate(encoded.values):
            callback = acks if last[partitions[k]] == k else None
            while True:
                try:
                    produce(topic, value, keys[k], partitions[k], callback)
                    break
                except BufferError:  # librdkafka's queue is full: serve acks and retry
                    poll(0.05)

    def _partitions_of(self, keys: list[bytes]) -> list[int]:
        """The partition of each key: librdkafka's ``consistent_random`` for a non-empty key (CRC-32)."""
        known, count = self._partition_of, self._partitions
        if len(known) > 1_000_000:
            known.clear()
        out = []
        for key in keys:
            partition = known.get(key)
            if partition is None:
                partition = known[key] = zlib.crc32(key) % count
            out.append(partition)
        return out

    def _settle(self, identity: str, url: str, in_flight: deque[_Acks]) -> bool:
        """Checkpoint past the acknowledged chunks at the head; whether any was."""
        settled = False
        while in_flight and in_flight[0].remaining == 0:
            acks = in_flight.popleft()
            if acks.errors:
                raise ImportFailed(f"{url}: the broker refused {len(acks.errors)} message(s): {acks.errors[0]}")
            if self.settings.checkpoint_after_ack:
                self._save(identity, url, acks)
            self.progress(acks.end)
            settled = True
        return settled

    def _save(self, identity: str, url: str, acks: _Acks) -> None:
        if self.checkpoints is not None:
            self.checkpoints.save(identity, Checkpoint(url, acks.end, *acks.totals))
