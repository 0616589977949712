"""Send generated messages straight to the events topic (bypassing the gateway)."""

from collections.abc import Iterable

from confluent_kafka import Producer

from devstack.traffic.generator import GeneratedMessage


def send_to_topic(producer: Producer, topic: str, batch: Iterable[GeneratedMessage]) -> int:
    """Produce one batch (keys and values as generated) and return how many were queued."""
    count = 0
    for message in batch:
        while True:
            try:
                producer.produce(topic, message.value, message.key)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
    producer.poll(0)
    return count
