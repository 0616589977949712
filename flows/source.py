"""A Bytewax source over confluent-kafka that hands over whole micro-batches with partition info.

One source partition per topic partition; each ``next_batch`` returns at most one `SourceBatch`
(up to ``batch_size`` messages of one partition, as columns), so the flow decodes and aggregates
many messages per step and every batch knows its partition and offset range: the per-partition
watermark and the insert deduplication tokens are built from that. The resume state is the next
offset to read, kept in Bytewax's recovery snapshots (no consumer group, no broker commits).

With ``tail=False`` a partition ends at its end of log (librdkafka's partition EOF event, which is
exact on Tansu even though its high watermark is not), so the flow finishes.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from eventpulse.broker.admin import consumer_config
from eventpulse.config.broker import BrokerSettings

log = logging.getLogger(__name__)


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

    @property
    def first_offset(self) -> int:
        return self.offsets[0]

    @property
    def last_offset(self) -> int:
        return self.offsets[-1]


class _KafkaPartition(StatefulSourcePartition[SourceBatch, int]):
    def __init__(
        self,
        broker: BrokerSettings,
        topic: str,
        partition: int,
        start: int,
        batch_size: int,
        tail: bool,
        idle_ms: int,
        on_lag: Callable[[int, int], None] | None,
    ) -> None:
        self._on_lag = on_lag
        self._topic, self._partition = topic, partition
        self._batch_size, self._tail = batch_size, tail
        self._idle = timedelta(milliseconds=idle_ms)
        config = consumer_config(
            broker,
            group_id=f"eventpulse-flow-{topic}",
            **{"enable.partition.eof": not tail, "client.id": f"eventpulse-flow-{partition}"},
        )
        self._consumer = Consumer(config)
        self._consumer.assign([TopicPartition(topic, partition, start)])
        self._next_offset = start
        self._awake: datetime | None = None
        self._eof = False

    def next_batch(self) -> list[SourceBatch]:
        if self._eof:
            raise StopIteration
        messages = self._consumer.consume(self._batch_size, 0)
        if any(msg.error() is not None for msg in messages):
            messages = self._without_errors(messages)
        offsets = [msg.offset() for msg in messages]
        keys: list[bytes | None] = [msg.key() for msg in messages]
        values: list[bytes | None] = [msg.value() for msg in messages]
        stamps = [msg.timestamp()[1] for msg in messages]
        if not offsets:
            self._awake = datetime.now(UTC) + self._idle
            return []
        self._awake = None
        self._next_offset = offsets[-1] + 1
        if self._on_lag is not None:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, self._partition), cached=True)
            if high >= 0:
                self._on_lag(self._partition, max(0, high - self._next_offset))
        return [SourceBatch(self._topic, self._partition, offsets, keys, values, stamps)]

    def _without_errors(self, messages: list) -> list:
        """The messages that carry data; notes the end of the partition, raises on fatal errors."""
        kept = []
        for msg in messages:
            error = msg.error()
            if error is None:
                kept.append(msg)
            elif error.code() == KafkaError._PARTITION_EOF:
                self._eof = True
            elif error.fatal():
                raise KafkaException(error)
            else:
                log.warning("consumer error on %s[%d]: %s", self._topic, self._partition, error)
        return kept

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._next_offset

    def close(self) -> None:
        self._consumer.close()


class KafkaBatchSource(FixedPartitionedSource[SourceBatch, int]):
    """Micro-batches from every partition of ``topic``.

    Args:
        broker: where the broker is (``bootstrap``).
        topic: the topic to read.
        batch_size: most messages per batch.
        tail: keep reading for ever (True) or stop at the end of every partition (False).
        idle_ms: pause of a partition that found nothing to read.
        on_lag: called with (partition, messages behind the high watermark) after each batch
            (approximate: on Tansu the high watermark trails the log end).
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
    ) -> None:
        self._on_lag = on_lag
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        self._broker, self._topic = broker, topic
        self._batch_size, self._tail, self._idle_ms = batch_size, tail, idle_ms

    def list_parts(self) -> list[str]:
        return [str(p) for p in topic_partition_ids(self._broker, self._topic)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _KafkaPartition:
        start = OFFSET_BEGINNING if resume_state is None else resume_state
        return _KafkaPartition(
            self._broker, self._topic, int(for_part), start, self._batch_size, self._tail, self._idle_ms, self._on_lag
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
