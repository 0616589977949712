"""A Bytewax source over confluent-kafka that hands over whole micro-batches with partition info.

One source partition per topic partition; each ``next_batch`` returns at most one `SourceBatch`
(up to ``batch_size`` messages of one partition, as columns), so the flow decodes and aggregates
many messages per step and every batch knows its partition, offset range and the topic's
*incarnation*: the per-partition watermark and the insert deduplication tokens are built from
that. No consumer group, no broker commits: the resume state is a `PartitionState`
``(incarnation, next_offset, topic_id)`` kept in Bytewax's recovery snapshots.

Incarnations. Offsets identify a message only within one life of a topic: a topic deleted and
created again, or a broker restarted with memory storage, starts from offset 0 again, and a token
``topic:partition:first-last`` of the new log would equal one of the old log and the warehouse
would drop the insert. The incarnation is the broker's topic id (DescribeTopics; Kafka, Redpanda
and Tansu report one), else an id generated when a partition starts without resume state or
resets. It is kept in the resume state, so a replay after a crash carries the same tokens and the
server drops what it already has.

Invalid positions. A resumed (or running) position beyond the log end or before its start, or a
topic id that changed under the partition, is never left to stall silently (Tansu answers a
fetch past the end with nothing, no error): the partition resets by the ``offset_reset`` policy
(``earliest``: replay what the log holds; ``latest``: skip to the end), starts a new incarnation,
records an `Incident` and goes on. On Tansu the ListOffsets high watermark trails the log end (the
last batch's base offset + 1), so "past the end" is judged on the high watermark of the fetch
responses (librdkafka's cached watermarks), which is exact; librdkafka's own silent
``auto.offset.reset`` is off (``error``), so a broker that answers OFFSET_OUT_OF_RANGE
(Kafka, Redpanda) reaches the same path.

With ``tail=False`` a partition ends at its end of log (librdkafka's partition EOF event, which is
exact on Tansu even though its ListOffsets high watermark is not), so the flow finishes.
"""

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from eventpulse.broker.admin import admin_client, consumer_config, topic_id
from eventpulse.config.broker import BrokerSettings
from eventpulse.incidents import Incarnation, Incident, IncidentLog

log = logging.getLogger(__name__)

OffsetReset = Literal["earliest", "latest"]
_CONFIRM_S = 0.5  # an invalid position must hold this long, with nothing read, before a reset
_LIST_RETRY_S = 30.0  # how long a listing may fail while the client's metadata catches up with the broker
# Errors a just-restarted or just-recreated topic answers until the client's metadata is refreshed.
_TRANSIENT_LISTING = frozenset(
    {
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
    }
)


class PartitionState(NamedTuple):
    """The resume state of one source partition."""

    incarnation: str
    next_offset: int
    topic_id: str | None  # the broker's topic id when the state was taken (None: not reported)


@dataclass(slots=True)
class SourceBatch:
    """Messages of one partition, in offset order, as parallel lists."""

    topic: str
    partition: int
    offsets: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    broker_ts: list[int]
    consumed_at_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    incarnation: str = ""  # empty: tokens without incarnation (the negative control)

    @property
    def first_offset(self) -> int:
        return self.offsets[0]

    @property
    def last_offset(self) -> int:
        return self.offsets[-1]


@dataclass(frozen=True, slots=True)
class _Options:
    batch_size: int
    tail: bool
    idle_ms: int
    offset_reset: OffsetReset
    check_s: float
    token_incarnation: bool


def listed_watermarks(
    consumer: Consumer, tp: TopicPartition, retry_s: float = _LIST_RETRY_S, pause_s: float = 0.25
) -> tuple[int, int]:
    """The broker's (low, high) watermarks of ``tp`` (ListOffsets), retried on transient errors.

    Right after a broker restart (or a topic recreated) librdkafka's metadata may not know the
    partition yet and answers ``_UNKNOWN_PARTITION``; that is not a reason to stop the flow. Any
    other error, or a transient one that lasts longer than ``retry_s``, is raised."""
    deadline = time.monotonic() + retry_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            code = error.code() if isinstance(error, KafkaError) else None
            if code not in _TRANSIENT_LISTING or time.monotonic() >= deadline:
                raise
            log.warning("listing %s[%d] failed (%s); refreshing metadata and retrying", tp.topic, tp.partition, error)
            time.sleep(pause_s)
            with contextlib.suppress(KafkaException):
                consumer.list_topics(tp.topic, timeout=5)  # a metadata request for the topic now


def _generated_incarnation(topic_id: str | None) -> str:
    """A new incarnation id: the topic id (if any) plus a random suffix, unique per reset."""
    suffix = uuid.uuid4().hex[:16]
    return f"{topic_id}~{suffix}" if topic_id else f"gen~{suffix}"


class _KafkaPartition(StatefulSourcePartition[SourceBatch, PartitionState]):
    def __init__(
        self,
        broker: BrokerSettings,
        topic: str,
        partition: int,
        resume: PartitionState | int | None,
        options: _Options,
        on_lag: Callable[[int, int], None] | None,
        incidents: IncidentLog | None,
        on_reset: Callable[[Incident], None] | None,
    ) -> None:
        self._on_lag, self._incidents, self._on_reset = on_lag, incidents, on_reset
        self._topic, self._partition, self._options = topic, partition, options
        self._idle = timedelta(milliseconds=options.idle_ms)
        config = consumer_config(
            broker,
            group_id=f"eventpulse-flow-{topic}",
            **{
                "enable.partition.eof": not options.tail,
                "client.id": f"eventpulse-flow-{partition}",
                "auto.offset.reset": "error",  # never reset silently: see _reset
            },
        )
        self._admin = admin_client(broker, **{"client.id": f"eventpulse-flow-admin-{partition}"})
        self._consumer = Consumer(config)
        self._topic_id = topic_id(self._admin, topic)
        self._next_check = time.monotonic() + options.check_s
        self._awake: datetime | None = None
        self._eof = False
        self._invalid_since: float | None = None
        self._broker_out_of_range = False
        if resume is None:
            low, _ = listed_watermarks(self._consumer, TopicPartition(topic, partition))
            self._start(max(low, 0), self._topic_id or _generated_incarnation(None), "start")
            self._validated = True
            return
        if isinstance(resume, int):  # a snapshot from before incarnations: same topic assumed
            resume = PartitionState(self._topic_id or _generated_incarnation(None), resume, self._topic_id)
        self._incarnation, self._next_offset = resume.incarnation, resume.next_offset
        self._validated = False
        self._consumer.assign([TopicPartition(topic, partition, resume.next_offset)])
        if self._topic_id and resume.topic_id and self._topic_id != resume.topic_id:
            self._reset(
                "topic_recreated", -1, -1, f"topic id {resume.topic_id} in the resume state, now {self._topic_id}"
            )

    # -- positions ---------------------------------------------------------------------------------

    def _start(self, offset: int, incarnation: str, reason: str) -> None:
        """Read from ``offset`` as ``incarnation`` (recorded in ``topic_incarnations``)."""
        self._incarnation, self._next_offset = incarnation, offset
        self._consumer.assign([TopicPartition(self._topic, self._partition, offset)])
        self._invalid_since, self._broker_out_of_range = None, False
        if self._incidents is not None:
            self._incidents.incarnation(
                Incarnation(self._topic, self._partition, incarnation, self._topic_id or "", offset, reason)
            )

    def _reset(self, kind: str, low: int, high: int, detail: str) -> None:
        """Go to the ``offset_reset`` end of the log as a new incarnation, and record the incident."""
        tp = TopicPartition(self._topic, self._partition)
        listed_low, listed_high = listed_watermarks(self._consumer, tp)
        cached_low, cached_high = self._consumer.get_watermark_offsets(tp, cached=True)
        # "latest": the exact end, i.e. the fetch responses' high watermark (Tansu's ListOffsets trails),
        # unless the topic was recreated: then the cached one may still be the old log's.
        fetched_high = -1 if kind == "topic_recreated" else cached_high
        earliest = self._options.offset_reset == "earliest"
        offset = max(listed_low, 0) if earliest else max(listed_high, fetched_high, 0)
        low = low if low >= 0 else listed_low
        high = high if high >= 0 else max(listed_high, fetched_high)
        known, self._topic_id = self._topic_id, topic_id(self._admin, self._topic, timeout=5) or self._topic_id
        if self._topic_id and (kind == "topic_recreated" or self._topic_id != known):
            incarnation = self._topic_id  # a new log under a new id: its offsets are its own
            detail += f"; topic id {self._topic_id}"
        else:  # same id, yet the log lost or dropped data: offsets may repeat, so a new id of our own
            incarnation = _generated_incarnation(self._topic_id)
        expected, previous = self._next_offset, self._incarnation
        self._start(offset, incarnation, "reset")
        self._validated = True
        incident = Incident(
            component="flow",
            kind=kind,
            topic=self._topic,
            partition=self._partition,
            expected_offset=expected,
            log_start=low,
            log_end=high,
            action=f"reset to {self._options.offset_reset} (offset {offset}) as incarnation {incarnation}",
            detail=f"{detail}; previous incarnation {previous}; cached watermarks ({cached_low}, {cached_high})",
        )
        if self._incidents is not None:
            self._incidents.record(incident)
        else:
            log.error("pipeline incident: %s (%s)", incident.describe(), incident.detail)
        if self._on_reset is not None:
            self._on_reset(incident)
        if self._on_lag is not None:
            self._on_lag(self._partition, high - offset if high >= 0 else -1)

    def _skipped(self, first: int) -> None:
        """The consumer delivered offsets above the position: the log start moved past it (broker
        retention deleted batches before they were read; Tansu then answers from its first kept batch,
        without OFFSET_OUT_OF_RANGE). Go on, same incarnation (offsets do not repeat), and record it."""
        incident = Incident(
            component="flow",
            kind="position_before_start",
            topic=self._topic,
            partition=self._partition,
            expected_offset=self._next_offset,
            log_start=first,
            log_end=-1,
            action=f"went on from offset {first}: offsets {self._next_offset}-{first - 1} were not read",
            detail=f"the consumer delivered offset {first} at position {self._next_offset} (broker retention?)",
        )
        if self._incidents is not None:
            self._incidents.record(incident)
        else:
            log.error("pipeline incident: %s (%s)", incident.describe(), incident.detail)
        if self._on_reset is not None:
            self._on_reset(incident)

    def _rewound(self, first: int) -> None:
        """The consumer delivered offsets below the position: something (librdkafka noticing a recreated
        topic, say) moved it back to a new log. Those messages are the new log's: keep them, but as a
        new incarnation (their offsets repeat the old log's), and record the incident."""
        known, self._topic_id = self._topic_id, topic_id(self._admin, self._topic, timeout=5) or self._topic_id
        changed = bool(self._topic_id) and self._topic_id != known
        incarnation = self._topic_id if changed and self._topic_id else _generated_incarnation(self._topic_id)
        incident = Incident(
            component="flow",
            kind="topic_recreated" if changed else "log_rewound",
            topic=self._topic,
            partition=self._partition,
            expected_offset=self._next_offset,
            log_start=-1,
            log_end=-1,
            action=f"went on from offset {first} as incarnation {incarnation}",
            detail=f"the consumer delivered offset {first} at position {self._next_offset}; "
            f"previous incarnation {self._incarnation}, topic id {self._topic_id}",
        )
        self._incarnation = incarnation
        if self._incidents is not None:
            self._incidents.incarnation(
                Incarnation(self._topic, self._partition, incarnation, self._topic_id or "", first, "reset")
            )
            self._incidents.record(incident)
        if self._on_reset is not None:
            self._on_reset(incident)

    def _check_topic(self) -> None:
        """Every ``check_s``: a topic id that changed means a new log under the same name."""
        self._next_check = time.monotonic() + self._options.check_s
        if self._incidents is not None:
            self._incidents.flush()
        now = topic_id(self._admin, self._topic, timeout=5)
        if now and self._topic_id and now != self._topic_id:
            self._reset("topic_recreated", -1, -1, f"topic id changed from {self._topic_id} while reading")
        elif now and not self._topic_id:
            self._topic_id = now

    def _check_position(self) -> None:
        """Nothing was read: is the position still inside the log (fetch-response watermarks)?"""
        low, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, self._partition), cached=True)
        if self._broker_out_of_range:
            self._reset("offset_out_of_range", low, high, "the broker answered OFFSET_OUT_OF_RANGE")
            return
        if high < 0:  # no fetch answered yet
            return
        if self._on_lag is not None:
            self._on_lag(self._partition, high - self._next_offset)  # negative: past the end, reported as is
        if low <= self._next_offset <= high:
            self._invalid_since, self._validated = None, True
            return
        now = time.monotonic()
        if self._invalid_since is None:
            self._invalid_since = now
        elif now - self._invalid_since >= _CONFIRM_S:
            kind = "position_past_end" if self._next_offset > high else "position_before_start"
            self._reset(kind, low, high, f"position {self._next_offset} outside the log [{low}, {high}]")

    # -- StatefulSourcePartition -------------------------------------------------------------------

    def next_batch(self) -> list[SourceBatch]:
        if self._eof:
            raise StopIteration
        if time.monotonic() >= self._next_check:
            self._check_topic()
        messages = self._consumer.consume(self._options.batch_size, 0)
        if any(msg.error() is not None for msg in messages):
            messages = self._without_errors(messages)
        if not messages:
            self._check_position()
            self._awake = datetime.now(UTC) + (self._idle if self._invalid_since is None else timedelta(0.05))
            return []
        offsets: list[int] = [msg.offset() for msg in messages]  # type: ignore[misc]  # consumed: never None
        keys: list[bytes | None] = [msg.key() for msg in messages]
        values: list[bytes | None] = [msg.value() for msg in messages]
        stamps = [msg.timestamp()[1] for msg in messages]
        if offsets[0] < self._next_offset and self._validated:
            self._rewound(offsets[0])
        elif offsets[0] > self._next_offset:
            self._skipped(offsets[0])
        self._awake, self._invalid_since, self._validated = None, None, True
        self._next_offset = offsets[-1] + 1
        if self._on_lag is not None:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, self._partition), cached=True)
            if high >= 0:
                self._on_lag(self._partition, high - self._next_offset)
        incarnation = self._incarnation if self._options.token_incarnation else ""
        return [SourceBatch(self._topic, self._partition, offsets, keys, values, stamps, incarnation=incarnation)]

    def _without_errors(self, messages: list) -> list:
        """The messages that carry data; notes the end of the partition and out-of-range answers,
        raises on fatal errors."""
        kept = []
        for msg in messages:
            error = msg.error()
            if error is None:
                kept.append(msg)
            elif error.code() == KafkaError._PARTITION_EOF:  # at the end: a valid position (past it: no EOF)
                self._eof = self._validated = True
            elif error.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                self._broker_out_of_range = True
            elif error.fatal():
                raise KafkaException(error)
            else:
                log.warning("consumer error on %s[%d]: %s", self._topic, self._partition, error)
        return kept

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> PartitionState:
        return PartitionState(self._incarnation, self._next_offset, self._topic_id)

    def close(self) -> None:
        self._consumer.close()
        if self._incidents is not None:
            self._incidents.flush()


class KafkaBatchSource(FixedPartitionedSource[SourceBatch, PartitionState]):
    """Micro-batches from every partition of ``topic``.

    Args:
        broker: where the broker is (``bootstrap``).
        topic: the topic to read.
        batch_size: most messages per batch.
        tail: keep reading for ever (True) or stop at the end of every partition (False).
        idle_ms: pause of a partition that found nothing to read.
        on_lag: called with (partition, messages behind the high watermark of the fetch responses)
            after each batch and each empty poll. Negative means the position lies beyond the log end
            (an invalid position, reported as is and then reset; never clamped to 0).
        offset_reset: where a partition with an invalid position goes: ``earliest`` or ``latest``.
        check_s: how often a partition checks the broker's topic id.
        token_incarnation: put the incarnation in the batches (False: the negative control only).
        incidents: where incidents and incarnations are written (None: logged only).
        on_reset: called with each `Incident` after a reset (e.g. to count ``offset_resets``).
    """

    def __init__(
        self,
        broker: BrokerSettings,
        topic: str,
        *,
        batch_size: int,
        tail: bool,
        idle_ms: int,
        on_lag: Callable[[int, int], None] | None = None,
        offset_reset: OffsetReset = "earliest",
        check_s: float = 10.0,
        token_incarnation: bool = True,
        incidents: IncidentLog | None = None,
        on_reset: Callable[[Incident], None] | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if offset_reset not in ("earliest", "latest"):
            raise ValueError(f"offset_reset must be 'earliest' or 'latest', not {offset_reset!r}")
        if check_s <= 0:
            raise ValueError("check_s must be positive")
        self._broker, self._topic = broker, topic
        self._options = _Options(batch_size, tail, idle_ms, offset_reset, check_s, token_incarnation)
        self._on_lag, self._incidents, self._on_reset = on_lag, incidents, on_reset

    def list_parts(self) -> list[str]:
        return [str(p) for p in topic_partition_ids(self._broker, self._topic)]

    def build_part(self, step_id: str, for_part: str, resume_state: PartitionState | int | None) -> _KafkaPartition:
        return _KafkaPartition(
            self._broker,
            self._topic,
            int(for_part),
            resume_state,
            self._options,
            self._on_lag,
            self._incidents,
            self._on_reset,
        )


def topic_partition_ids(broker: BrokerSettings, topic: str, timeout: float = 10.0) -> list[int]:
    """Partition ids of ``topic`` (metadata of all topics: naming one would auto-create it on Tansu)."""
    consumer = Consumer(consumer_config(broker, group_id="eventpulse-metadata"))
    try:
        metadata = consumer.list_topics(timeout=timeout).topics.get(topic)
    finally:
        consumer.close()
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise RuntimeError(f"topic {topic!r} not found on {broker.bootstrap}")
    return sorted(metadata.partitions)
