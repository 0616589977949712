"""An asyncio front for librdkafka's idempotent producer: ``await deliver(messages)`` returns once the
broker acknowledged every message, or the deadline passed.

Delivery callbacks run on one poll thread. Each request owns a `_Pending` counter; the thread
collects the requests whose last message was acknowledged and wakes the event loop once per poll
round (not once per message), which keeps the per-event cost low.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Producer

log = logging.getLogger(__name__)


# Errors after which this producer instance will not deliver again. PRODUCER_FENCED: after a timed-out
# request (broker frozen or partitioned) librdkafka bumps its epoch and Tansu fences it for good.
_BROKEN_PRODUCER = frozenset(
    {
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError._FENCED,
        KafkaError._FATAL,
    }
)


class QueueFull(Exception):
    """The producer already holds ``max_queued`` unacknowledged events: shed load."""


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What became of one request's messages: indexes (into the request's list) that were not acked."""

    failed: tuple[int, ...]
    timed_out: bool
    latency_s: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


class _Pending:
    """One request's messages in flight. Called from the poll thread only (one per message)."""

    __slots__ = ("errors", "failed_values", "future", "owner", "remaining")

    def __init__(self, count: int, future: asyncio.Future, owner: AckingProducer) -> None:
        self.remaining = count
        self.future = future
        self.owner = owner
        self.failed_values: list[bytes] = []
        self.errors: list[str] = []

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.failed_values.append(msg.value())
            self.errors.append(str(err))
            if err.fatal() or err.code() in _BROKEN_PRODUCER:
                self.owner._fatal = True
        self.remaining -= 1
        if self.remaining == 0:
            self.owner._completed.append(self)


class AckingProducer:
    """Idempotent, ``acks=all`` producing with per-request acknowledgement and bounded queueing."""

    def __init__(self, config: dict[str, Any], topic: str, max_queued: int) -> None:
        self.topic = topic
        self.max_queued = max_queued
        self._config = {
            **config,
            "enable.idempotence": True,
            "acks": "all",
            "queue.buffering.max.messages": max(max_queued * 2, 100_000),
            "error_cb": self._on_error,
        }
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._completed: list[_Pending] = []
        self._fatal = False
        self.last_error: str | None = None
        self.restarts = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._producer = Producer(self._config)
        self._running = True
        self._thread = threading.Thread(target=self._poll_loop, name="producer-poll", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued (bounded by ``timeout``), stop the poll thread; returns messages left."""
        self._running = False
        if self._thread:
            self._thread.join()
        left = self._producer.flush(timeout) if self._producer else 0
        self._resolve(self._take_completed())
        self._producer = None  # let librdkafka's threads go
        return left

    @property
    def queued(self) -> int:
        """Messages produced and not yet acknowledged (or failed)."""
        return len(self._producer) if self._producer else 0

    async def deliver(self, messages: Sequence[tuple[bytes, bytes]], timeout: float) -> DeliveryReport:
        """Produce ``(key, value)`` pairs and wait for the broker's acks, at most ``timeout`` seconds.

        Raises `QueueFull` (before producing anything) when accepting them would queue more than
        ``max_queued`` events.
        """
        producer = self._producer
        if producer is None or self._loop is None:
            raise RuntimeError("producer not started")
        count = len(messages)
        started = time.perf_counter()
        if count == 0:
            return DeliveryReport((), False, 0.0)
        if len(producer) + count > self.max_queued:
            raise QueueFull(f"{len(producer)} events are waiting for the broker")
        future = self._loop.create_future()
        pending = _Pending(count, future, self)
        produce, topic = producer.produce, self.topic
        for index, (key, value) in enumerate(messages):
            try:
                produce(topic, value, key, on_delivery=pending)
            except BufferError:
                # librdkafka's own queue is full: the rest is not produced; wait for what was.
                not_sent = count - index
                pending.failed_values.extend(v for _, v in messages[index:])
                pending.errors.append("producer queue full")
                pending.remaining -= not_sent
                if pending.remaining == 0:
                    future.set_result(None)
                break
        timed_out = False
        if not future.done():
            try:
                await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                timed_out = True
        latency = time.perf_counter() - started
        if timed_out or pending.failed_values:
            return self._failure_report(messages, pending, timed_out, latency)
        return DeliveryReport((), False, latency)

    def _failure_report(
        self, messages: Sequence[tuple[bytes, bytes]], pending: _Pending, timed_out: bool, latency: float
    ) -> DeliveryReport:
        if timed_out:
            # Unknown which were acked individually without per-message bookkeeping: everything
            # not confirmed counts as not accepted; a retry with the same ids is deduplicated.
            failed = tuple(range(len(messages)))
            return DeliveryReport(failed, True, latency, self.last_error or "broker did not acknowledge in time")
        failed_values = set(pending.failed_values)
        failed = tuple(i for i, (_, value) in enumerate(messages) if value in failed_values)
        return DeliveryReport(failed, False, latency, pending.errors[0] if pending.errors else None)

    def _poll_loop(self) -> None:
        producer, loop = self._producer, self._loop
        assert producer is not None and loop is not None
        while self._running:
            if self._fatal:
                producer = self._replace_producer(producer)
            producer.poll(0.05)
            if self._completed:
                done = self._take_completed()
                try:
                    loop.call_soon_threadsafe(self._resolve, done)
                except RuntimeError:  # loop closed during shutdown
                    return

    def _replace_producer(self, old: Producer) -> Producer:
        """After a fatal error (e.g. the broker fenced our producer id after an outage) librdkafka's
        producer is unusable: start a new one and fail what the old one still held (answered 503)."""
        self._fatal = False
        self.restarts += 1
        log.warning("producer hit a fatal error; replacing it", extra={"error": self.last_error})
        new = Producer(self._config)
        self._producer = new
        try:
            old.purge(in_queue=True, in_flight=True)
        except Exception as exc:  # purge may refuse on a fatal instance; pending requests then time out
            log.warning("purge of the failed producer failed", extra={"error": str(exc)})
        old.poll(0)
        return new

    def _take_completed(self) -> list[_Pending]:
        done, self._completed = self._completed, []
        return done

    @staticmethod
    def _resolve(done: list[_Pending]) -> None:
        for pending in done:
            if not pending.future.done():
                pending.future.set_result(None)

    def _on_error(self, err: KafkaError) -> None:
        self.last_error = str(err)
        if err.fatal() or err.code() in _BROKEN_PRODUCER:
            self._fatal = True
        log.warning("producer error", extra={"error": str(err), "fatal": err.fatal()})
