"""A short-lived memory of the events each tenant had acknowledged, so a client retry that resends
the same events is answered without producing them again.

Keyed by ``(id, timestamp)``, the warehouse's own dedup key within a tenant. It is an optimisation
only: two concurrent retries may both produce, and the warehouse (ReplacingMergeTree on
``(tenant, timestamp, id)``) still removes the copy.

`RecentIds` is one process's memory, lost on restart; `gateway.shared_recent_ids.SharedRecentIds`
keeps it in Redis, shared by the replicas and kept across their restarts. The handlers use the
async pair `seen_among` / `add`, which both have.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable


class RecentIds:
    def __init__(self, ttl_s: float, per_tenant: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._cap = per_tenant
        self._clock = clock
        self._seen: dict[str, dict[tuple[str, int], float]] = {}

    @property
    def enabled(self) -> bool:
        return self._ttl > 0 and self._cap > 0

    async def seen_among(self, tenant: str, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        """Those of ``keys`` acknowledged recently."""
        return {key for key in keys if self.seen(tenant, *key)}

    async def add(self, tenant: str, keys: list[tuple[str, int]]) -> None:
        """Remember ``keys`` as acknowledged (after the broker acked them)."""
        self.remember(tenant, keys)

    def seen(self, tenant: str, event_id: str, timestamp_ms: int) -> bool:
        table = self._seen.get(tenant)
        if not table:
            return False
        expiry = table.get((event_id, timestamp_ms))
        return expiry is not None and expiry > self._clock()

    def remember(self, tenant: str, keys: list[tuple[str, int]]) -> None:
        if not self.enabled or not keys:
            return
        table = self._seen.setdefault(tenant, {})
        expiry = self._clock() + self._ttl
        for key in keys:
            table.pop(key, None)  # re-insert at the end: insertion order is age order
            table[key] = expiry
        overflow = len(table) - self._cap
        if overflow > 0:
            for key in list(itertools.islice(table, overflow)):  # drop the oldest
                del table[key]
        now = self._clock()
        while table:  # drop expired entries from the old end
            first = next(iter(table))
            if table[first] > now:
                break
            del table[first]
