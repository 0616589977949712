"""Live window aggregates per tenant, fanned out to WebSocket and SSE subscribers.

One poll task per tenant with subscribers reads the latest rows of ``window_aggregates FINAL`` for
that tenant (bound parameters) every ``poll_s`` and pushes the rows that changed (new version) to
each subscriber's bounded queue. A subscriber whose queue is full is dropped (its connection is
closed) instead of slowing the poller or the other subscribers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client

from eventpulse.access.scoped_sql import Scope, ScopedReader
from eventpulse.aggregation.spec import grouping_filter
from gateway.schemas import StreamMessage, WindowRow

log = logging.getLogger(__name__)

LATEST_WINDOWS_SQL = f"""
SELECT window_seconds, slide_seconds, toUnixTimestamp64Milli(window_start), toUnixTimestamp64Milli(window_end),
       type, source, event_count, error_count, error_rate, distinct_users,
       latency_p50, latency_p95, latency_p99, is_final, version
FROM window_aggregates FINAL
WHERE tenant = {{tenant:String}} AND (({grouping_filter(("type", "source"))}) OR ({grouping_filter()}))
ORDER BY window_start DESC, window_seconds, slide_seconds, type, source
LIMIT {{limit:UInt32}}
"""

DROPPED = object()  # put in a queue to tell its reader it was dropped


@dataclass(eq=False)
class Subscriber:
    tenant: str
    types: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(32))
    dropped: bool = False

    def wants(self, row: WindowRow) -> bool:
        return (not self.types or row.type in self.types) and (not self.sources or row.source in self.sources)


class _TenantFeed:
    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.versions: dict[tuple, int] = {}
        self.latest: list[WindowRow] = []
        self.task: asyncio.Task | None = None


class StreamHub:
    def __init__(self, client_factory: Callable[[], Client], poll_s: float, rows: int, queue_size: int) -> None:
        self._client_factory = client_factory
        self._client: Client | None = None
        self._reader: ScopedReader | None = None
        self._poll_s = poll_s
        self._rows = rows
        self._queue_size = queue_size
        self._feeds: dict[str, _TenantFeed] = {}
        self._query_lock = asyncio.Lock()
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        return sum(len(f.subscribers) for f in self._feeds.values())

    def subscribe(self, tenant: str, types: frozenset[str] = frozenset(), sources: frozenset[str] = frozenset()):
        sub = Subscriber(tenant, types, sources, asyncio.Queue(self._queue_size))
        feed = self._feeds.setdefault(tenant, _TenantFeed())
        feed.subscribers.add(sub)
        if feed.latest:  # a newcomer starts with the current picture
            self._offer(sub, [r for r in feed.latest if sub.wants(r)])
        if feed.task is None or feed.task.done():
            feed.task = asyncio.create_task(self._poll(tenant, feed), name=f"stream:{tenant}")
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        feed = self._feeds.get(sub.tenant)
        if feed is None:
            return
        feed.subscribers.discard(sub)
        if not feed.subscribers:
            if feed.task:
                feed.task.cancel()
            del self._feeds[sub.tenant]

    async def stop(self) -> None:
        tasks = [f.task for f in self._feeds.values() if f.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._feeds.clear()
        if self._client is not None:
            self._client.close()

    async def _poll(self, tenant: str, feed: _TenantFeed) -> None:
        while feed.subscribers:
            try:
                rows = await self._read(tenant)
            except Exception as exc:
                log.warning("live aggregates query failed", extra={"tenant": tenant, "error": str(exc)})
                rows = None
            if rows is not None:
                changed = []
                for row in rows:
                    key = (row.window_seconds, row.slide_seconds, row.window_start, row.type, row.source)
                    if feed.versions.get(key) != row.version:
                        feed.versions[key] = row.version
                        changed.append(row)
                feed.latest = rows
                if len(feed.versions) > 10 * self._rows:  # forget windows long gone
                    current = {(r.window_seconds, r.slide_seconds, r.window_start, r.type, r.source) for r in rows}
                    feed.versions = {k: v for k, v in feed.versions.items() if k in current}
                if changed:
                    for sub in list(feed.subscribers):
                        wanted = [r for r in changed if sub.wants(r)]
                        if wanted:
                            self._offer(sub, wanted)
            await asyncio.sleep(self._poll_s)

    def _offer(self, sub: Subscriber, rows: list[WindowRow]) -> None:
        if not rows or sub.dropped:
            return
        try:
            sub.queue.put_nowait(StreamMessage("window_aggregates", sub.tenant, rows))
        except asyncio.QueueFull:
            # Too slow: drop it. Make room for the marker so its reader wakes up and closes.
            sub.dropped = True
            self.dropped += 1
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait(DROPPED)
            self.unsubscribe(sub)

    async def _read(self, tenant: str) -> list[WindowRow]:
        async with self._query_lock:
            return await asyncio.to_thread(self._query, tenant)

    def _query(self, tenant: str) -> list[WindowRow]:
        if self._client is None:
            self._client = self._client_factory()
            self._reader = ScopedReader(self._client, self._client.database or "default")
        try:
            # through the scoped read path: the rows are the tenant's whatever the SQL says
            params = {"tenant": tenant, "limit": self._rows}
            assert self._reader is not None
            result = self._reader.query(LATEST_WINDOWS_SQL, Scope.of(tenant), params)
        except Exception:
            self._client = None
            raise
        return [
            WindowRow(
                int(r[0]),
                int(r[1]),
                int(r[2]),
                int(r[3]),
                r[4],
                r[5],
                int(r[6]),
                int(r[7]),
                float(r[8]),
                int(r[9]),
                r[10],
                r[11],
                r[12],
                bool(r[13]),
                int(r[14]),
            )
            for r in result.result_rows
        ]
