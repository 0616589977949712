"""Rejected events go to the warehouse's ``dead_letters`` table (stage ``gateway``) in the background.

Requests only append to a bounded in-memory queue; a task writes it every ``flush_s`` in one insert
(on a worker thread), so a slow or absent warehouse never slows ingestion. When the queue is full
new rejects are dropped and counted (``dead_letters_dropped`` in the metrics). Rows have a
deterministic id (``gateway:<request id>:<index>``), so a retried insert replaces rather than adds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from eventpulse.events import Rejection
from eventpulse.events.model import DEAD_LETTER_COLUMNS
from gateway.periodic import PeriodicTask

log = logging.getLogger(__name__)

COLUMNS = DEAD_LETTER_COLUMNS
MAX_PAYLOAD_CHARS = 64 * 1024


class DeadLetterWriter:
    def __init__(self, client_factory: Callable[[], Client], flush_s: float, capacity: int) -> None:
        self._client_factory = client_factory
        self._client: Client | None = None
        self._rows: deque[list] = deque()
        self._capacity = capacity
        self._flusher = PeriodicTask("dead-letter-writer", flush_s, self.flush)
        self.dropped = 0
        self.written = 0
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        return len(self._rows)

    def add(self, row_id: str, tenant: str, rejection: Rejection, payload: bytes | str, received_ms: int) -> None:
        """Queue one rejected event (never blocks, never raises)."""
        if len(self._rows) >= self._capacity:
            self.dropped += 1
            return
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8", "replace")
        self._rows.append(
            [
                row_id,
                tenant,
                "gateway",
                rejection.reason.value,
                rejection.field or "",
                rejection.detail[:2000],
                payload[:MAX_PAYLOAD_CHARS],
                "",
                -1,
                -1,
                datetime.fromtimestamp(received_ms / 1000, UTC),
            ]
        )

    async def start(self) -> None:
        self._flusher.start()

    async def stop(self) -> None:
        await self._flusher.stop()
        await self.flush()
        if self._client is not None:
            self._client.close()

    async def flush(self) -> int:
        """Write what is queued now; on failure the rows stay queued for the next round."""
        if not self._rows:
            return 0
        rows = list(self._rows)
        try:
            await asyncio.to_thread(self._insert, rows)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("dead-letter write failed; will retry", extra={"error": self.last_error, "rows": len(rows)})
            return 0
        for _ in range(len(rows)):
            self._rows.popleft()
        self.written += len(rows)
        return len(rows)

    def _insert(self, rows: list[list]) -> None:
        if self._client is None:
            self._client = self._client_factory()
        try:
            self._client.insert("dead_letters", rows, column_names=list(COLUMNS))
        except Exception:
            self._client = None
            raise
