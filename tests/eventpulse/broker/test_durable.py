"""The durable local broker: acknowledged events survive kill -9 of the broker and of its object store.

Negative control: the same run on memory storage loses every acknowledged event, and the test
observes the loss.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from tests.support.services import BrokerProcesses, broker_processes

pytestmark = pytest.mark.integration

TOPIC = "events"  # created by the broker itself (the platform's topics), 4 partitions


def produce_acknowledged(bootstrap: str, count: int, topic: str = TOPIC) -> set[str]:
    """Produce ``count`` events (acks=all, idempotent) with unique ids; the ids the broker acked."""
    acked: set[str] = set()

    def delivered(err, msg) -> None:
        if err is None:
            acked.add(msg.value().decode())

    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5, "log_level": 0}
    )
    for i in range(count):
        producer.produce(topic, uuid.uuid4().hex.encode(), key=str(i % 13), on_delivery=delivered)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    return acked


def consume_all(bootstrap: str, topic: str = TOPIC, partitions: int = 4) -> list[str]:
    """Every message on the topic, from each partition's start to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[str] = []
    at_end: set[int] = set()
    idle = 0
    while len(at_end) < partitions and idle < 20:
        batch = consumer.consume(5000, timeout=1.0)
        idle = 0 if batch else idle + 1
        for msg in batch:
            if msg.error() is None:
                values.append(msg.value().decode())
            elif msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
    consumer.close()
    return values


def crash_and_restart(processes: BrokerProcesses) -> None:
    """kill -9 the broker and (s3) its object store, then start them again on the same data."""
    processes.kill_broker()
    if processes.storage == "s3":
        processes.kill_store()
        processes.start_store()
    processes.start_broker()


@pytest.mark.parametrize("storage", ["s3", "memory"])
def test_acknowledged_events_survive_kill_9_only_with_durable_storage(tmp_path: Path, storage: str) -> None:
    with broker_processes(tmp_path, storage=storage) as processes:
        acked = produce_acknowledged(processes.bootstrap, 20_000)
        assert len(acked) == 20_000
        crash_and_restart(processes)
        consumed = consume_all(processes.bootstrap)
        after = produce_acknowledged(processes.bootstrap, 1_000)  # and it goes on taking events
        consumed_after = consume_all(processes.bootstrap)
    lost = acked - set(consumed)
    if storage == "s3":
        assert lost == set(), f"{len(lost)} acknowledged events lost"
        assert len(consumed) == len(set(consumed)) == 20_000  # none twice
        assert set(consumed_after) == acked | after
    else:  # the negative control: memory storage loses what it acknowledged, and we see it
        assert len(lost) == 20_000 and consumed == []
        assert set(consumed_after) == after
