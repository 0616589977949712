"""The bounded queue both clients share: pure bookkeeping, no locks and no I/O (the clients add those)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from eventpulse_sdk.events import QueuedEvent


@dataclass
class Stats:
    """Counters of one client since it was created (`Client.stats` returns a copy)."""

    captured: int = 0  # events `capture` queued
    dropped: int = 0  # events the overflow policy dropped (never sent)
    delivered: int = 0  # events the gateway acknowledged (its broker has them)
    duplicates: int = 0  # of those, resends the gateway recognised and did not produce again
    rejected: int = 0  # events the gateway refused as invalid (it keeps them as dead letters)
    failed: int = 0  # events given up: retries exhausted, a permanent error, or closed before delivery
    requests: int = 0  # HTTP requests made
    retries: int = 0  # requests that were retries


@dataclass
class EventBuffer:
    """Events waiting to be sent, oldest first, and the events of the batch being sent.

    ``seq`` numbers events in capture order; a flush waits until every event numbered below its
    mark is resolved (delivered, rejected, failed or dropped), which `oldest_unresolved` tells.
    """

    capacity: int
    waiting: deque[QueuedEvent] = field(default_factory=deque)
    in_flight: list[QueuedEvent] = field(default_factory=list)
    next_seq: int = 0
    waiting_bytes: int = 0
    flush_mark: int = 0  # events numbered below it are sent without waiting for a full batch
    stats: Stats = field(default_factory=Stats)

    def __len__(self) -> int:
        return len(self.waiting) + len(self.in_flight)

    def full(self) -> bool:
        return len(self) >= self.capacity

    def append(self, event_id: str, payload: bytes, now: float) -> QueuedEvent:
        event = QueuedEvent(event_id, payload, self.next_seq, now)
        self.next_seq += 1
        self.waiting.append(event)
        self.waiting_bytes += len(payload)
        self.stats.captured += 1
        return event

    def drop_oldest(self) -> QueuedEvent | None:
        """Make room by dropping the oldest waiting event (one being sent cannot be taken back)."""
        if not self.waiting:
            return None
        event = self.waiting.popleft()
        self.waiting_bytes -= len(event.payload)
        self.stats.dropped += 1
        return event

    def requeue(self, events: list[QueuedEvent]) -> None:
        """Put events that were being sent back in front (a cancelled sender); same ids, so a resend is harmless."""
        self.waiting.extendleft(reversed(events))
        self.waiting_bytes += sum(len(e.payload) for e in events)

    def ready(self, batch_size: int, batch_max_bytes: int, flush_interval_s: float, now: float) -> float | None:
        """0 if a batch should be sent now, else seconds until the oldest waiting event is due (None: nothing waits)."""
        if not self.waiting:
            return None
        first = self.waiting[0]
        if len(self.waiting) >= batch_size or self.waiting_bytes >= batch_max_bytes or first.seq < self.flush_mark:
            return 0.0
        return max(0.0, first.enqueued_at + flush_interval_s - now)

    def take(self, batch_size: int, batch_max_bytes: int) -> list[QueuedEvent]:
        """The next batch (at least one event, at most ``batch_size`` and about ``batch_max_bytes``), now in flight."""
        batch: list[QueuedEvent] = []
        size = 0
        while self.waiting and len(batch) < batch_size:
            nxt = self.waiting[0]
            if batch and size + len(nxt.payload) + 1 > batch_max_bytes:
                break
            batch.append(self.waiting.popleft())
            size += len(nxt.payload) + 1
        self.waiting_bytes -= sum(len(e.payload) for e in batch)
        self.in_flight = batch
        return batch

    def settle(self) -> None:
        """The batch in flight is resolved."""
        self.in_flight = []

    def oldest_unresolved(self) -> int:
        """The lowest ``seq`` not yet resolved (``next_seq`` when every captured event is)."""
        if self.in_flight:
            return self.in_flight[0].seq
        if self.waiting:
            return self.waiting[0].seq
        return self.next_seq
