"""Client configs, topics, offsets and lag for any Kafka-API broker (Tansu, Redpanda, Kafka).

Nothing here reads topic configs (``describe_configs`` returns nothing on Tansu), and topic
metadata is always read for *all* topics: Tansu auto-creates a topic named in a metadata
request, so ``list_topics(topic)`` would create it.

librdkafka options are passed through unchanged; dotted keys go in with ``**{...}``::

    producer = Producer(producer_config(settings.broker, **{"linger.ms": 0}))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from eventpulse.config.broker import BrokerSettings

log = logging.getLogger(__name__)

Offsets = dict[int, tuple[int, int]]
"""``{partition: (low, high)}``: the first retained offset and the log end offset."""


def admin_client(settings: BrokerSettings, **overrides: Any) -> AdminClient:
    """An ``AdminClient`` for ``settings.bootstrap``."""
    return AdminClient(
        {
            "bootstrap.servers": settings.bootstrap,
            "client.id": "eventpulse-admin",
            **settings.client_security(),
            **overrides,
        }
    )


def platform_topics(settings: BrokerSettings) -> dict[str, int]:
    """The topics the platform needs, ``{name: partitions}``: events and dead letters."""
    return {settings.events_topic: settings.partitions, settings.dead_letter_topic: settings.partitions}


def producer_config(settings: BrokerSettings, **overrides: Any) -> dict[str, Any]:
    """An idempotent, ``acks=all`` producer: the broker acks only what it will never duplicate.

    ``message.timeout.ms`` is 30 s rather than librdkafka's 5 min so a gateway waiting for the
    ack fails the request in bounded time instead of holding it. Compression comes from
    ``settings.compression`` (see :class:`BrokerSettings`).
    """
    return {
        "bootstrap.servers": settings.bootstrap,
        "client.id": "eventpulse-producer",
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": settings.compression,
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "message.timeout.ms": 30_000,
        **settings.client_security(),
        **overrides,
    }


def consumer_config(settings: BrokerSettings, group_id: str = "eventpulse", **overrides: Any) -> dict[str, Any]:
    """A consumer that never commits on its own and starts at the earliest retained offset.

    Use it with ``assign()``: offsets are the caller's business (Bytewax keeps them in its
    recovery snapshots). librdkafka requires a ``group.id`` even when no group is joined.
    """
    return {
        "bootstrap.servers": settings.bootstrap,
        "client.id": "eventpulse-consumer",
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        **settings.client_security(),
        **overrides,
    }


def topic_partitions(client: AdminClient | Consumer, timeout: float = 10.0) -> dict[str, int]:
    """``{topic: partition count}`` of every topic on the broker (internal ``__`` topics left out)."""
    metadata = client.list_topics(timeout=timeout)
    return {name: len(t.partitions) for name, t in metadata.topics.items() if not name.startswith("__")}


def ensure_topics(
    admin: AdminClient,
    topics: Mapping[str, int] | Iterable[str],
    partitions: int = 1,
    replication_factor: int = 1,
    *,
    timeout: float = 10.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    ``topics`` is ``{name: partitions}`` or a list of names that all get ``partitions``.
    Existing topics are left as they are (a warning is logged if one has fewer partitions than
    asked), so calling this twice, or from two processes at once, is fine. Returns once the
    broker's metadata lists every topic.
    """
    wanted = dict(topics) if isinstance(topics, Mapping) else dict.fromkeys(topics, partitions)
    existing = topic_partitions(admin, timeout)
    for name, count in wanted.items():
        if name in existing and existing[name] < count:
            log.warning("topic %s exists with %d partitions (wanted %d); left as is", name, existing[name], count)
    new = [NewTopic(name, count, replication_factor) for name, count in wanted.items() if name not in existing]
    created: list[str] = []
    if new:
        for name, future in admin.create_topics(new, request_timeout=timeout).items():
            try:
                future.result(timeout)
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # lost a race: fine
                    raise
    _wait_for_topics(admin, wanted, timeout)
    return created


def _wait_for_topics(admin: AdminClient, wanted: Mapping[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        missing = sorted(set(wanted) - set(topic_partitions(admin, timeout)))
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topics not visible in metadata after {timeout:g} s: {', '.join(missing)}")
        time.sleep(0.05)


def partition_offsets(client: AdminClient | Consumer, topic: str, timeout: float = 10.0) -> Offsets:
    """``{partition: (low, high)}`` of ``topic``, from an ``AdminClient`` or a ``Consumer``.

    On Tansu (v0.6.0-510f3e2) ``high`` is the base offset of the last record *batch* + 1, not
    the log end offset: after batches of 10, 10, 1 and 7 records it reports 22, not 28. It is
    exact on Redpanda and Kafka, and exact on Tansu when every batch holds one record.
    """
    partitions = client.list_topics(timeout=timeout).topics.get(topic)
    if partitions is None or partitions.error is not None:
        raise KeyError(f"topic {topic!r} not found on the broker")
    parts = [TopicPartition(topic, p) for p in sorted(partitions.partitions)]
    if isinstance(client, Consumer):
        result: Offsets = {}
        for tp in parts:
            low_offset, high_offset = client.get_watermark_offsets(tp, timeout=timeout)
            result[tp.partition] = (low_offset, high_offset)
        return result
    low = client.list_offsets({tp: OffsetSpec.earliest() for tp in parts}, request_timeout=timeout)
    high = client.list_offsets({tp: OffsetSpec.latest() for tp in parts}, request_timeout=timeout)
    lows = {tp.partition: f.result(timeout).offset for tp, f in low.items()}
    return {tp.partition: (lows[tp.partition], f.result(timeout).offset) for tp, f in high.items()}


PositionState = Literal["ok", "past_end", "before_start"]


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """How far one partition's reader trails the log, and whether its position is valid at all.

    ``lag`` is ``None`` when the position is invalid: beyond the log end (``past_end``: the broker
    lost data, or the topic was recreated and its offsets start from 0 again) or before the log
    start (``before_start``: retention or truncation removed what was never read). A lag of 0 then
    would read as "caught up" while the reader sees nothing, which is how a stall stays silent.
    """

    partition: int
    low: int
    high: int
    processed: int | None  # next offset to read; None: nothing processed yet
    lag: int | None
    state: PositionState

    @property
    def valid(self) -> bool:
        return self.state == "ok"


def partition_lag(offsets: Mapping[int, tuple[int, int]], processed: Mapping[int, int]) -> dict[int, PartitionLag]:
    """`PartitionLag` per partition of ``offsets`` for the next offsets in ``processed``.

    ``offsets`` must be exact (see :func:`log_end_offsets` on Tansu): a ``processed`` offset past
    ``high`` is reported as an invalid position, not clamped. A partition missing from ``processed``
    has processed nothing, so its whole retained range is lag.

    Example:
        >>> partition_lag({0: (0, 10)}, {0: 12})[0].state
        'past_end'
    """
    out: dict[int, PartitionLag] = {}
    for p, (low, high) in offsets.items():
        position = processed.get(p)
        if position is None:
            out[p] = PartitionLag(p, low, high, None, high - low, "ok")
        elif position > high:
            out[p] = PartitionLag(p, low, high, position, None, "past_end")
        elif position < low:
            out[p] = PartitionLag(p, low, high, position, None, "before_start")
        else:
            out[p] = PartitionLag(p, low, high, position, high - position, "ok")
    return out


def consumer_lag(offsets: Mapping[int, tuple[int, int]], processed: Mapping[int, int]) -> dict[int, int | None]:
    """Messages still to process per partition; ``None`` for a partition whose position is invalid.

    ``processed[p]`` is the next offset to read (Kafka's committed-offset convention); a
    partition missing from it has processed nothing, so its whole retained range is lag. A
    position beyond ``high`` or before ``low`` is never reported as 0 (see `partition_lag`):
    pass exact offsets (:func:`log_end_offsets`), since Tansu's ``list_offsets`` trails the end.

    Example:
        >>> consumer_lag({0: (0, 10), 1: (5, 8), 2: (0, 4)}, {0: 7, 2: 9})
        {0: 3, 1: 3, 2: None}
    """
    return {p: lag.lag for p, lag in partition_lag(offsets, processed).items()}


def log_end_offsets(settings: BrokerSettings, topic: str, timeout: float = 10.0) -> Offsets:
    """Exact ``{partition: (low, high)}`` of ``topic``, on Tansu too.

    Tansu's ListOffsets answer (what :func:`partition_offsets` reads) is the last record batch's
    base offset + 1, but its Fetch responses carry the true high watermark. So this reads one
    batch from ``high - 1`` of every partition and takes librdkafka's watermarks cached from that
    fetch: one small fetch per partition, exact on every broker.
    """
    consumer = Consumer(consumer_config(settings, group_id="eventpulse-offsets", **{"enable.partition.eof": True}))
    try:
        listed = partition_offsets(consumer, topic, timeout)
        probes = [TopicPartition(topic, p, max(low, high - 1)) for p, (low, high) in listed.items() if high > low]
        result = dict(listed)
        if probes:
            consumer.assign(probes)
            waiting = {tp.partition for tp in probes}
            deadline = time.monotonic() + timeout
            while waiting and time.monotonic() < deadline:
                for msg in consumer.consume(len(probes) * 100, 0.2):
                    error = msg.error()
                    if error is None or error.code() == KafkaError._PARTITION_EOF:
                        waiting.discard(msg.partition())
            for tp in probes:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), cached=True)
                if high >= 0:
                    result[tp.partition] = (max(low, 0), high)
        return result
    finally:
        consumer.close()


def topic_id(admin: AdminClient, topic: str, timeout: float = 10.0) -> str | None:
    """The broker's id of ``topic`` (a new one each time the topic is created), or ``None``.

    Kafka, Redpanda and Tansu answer DescribeTopics with a topic id; ``None`` when the broker
    reports none (the all-zero id), the topic does not exist or the broker did not answer within
    ``timeout`` (the flow's periodic check must not die of a broker restart). Does not create the topic.
    """
    try:
        future = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)[topic]
        described = future.result(timeout)
    except (KafkaException, TimeoutError) as exc:  # TimeoutError: the broker is away (restarting, say)
        log.debug("no topic id for %s: %s", topic, exc)
        return None
    ident = described.topic_id
    if ident is None or (ident.get_most_significant_bits() == 0 and ident.get_least_significant_bits() == 0):
        return None
    return str(ident)
