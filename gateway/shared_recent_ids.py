"""The memory of acknowledged event ids in Redis: shared by the replicas, kept across restarts.

Each acknowledged ``(tenant, id, timestamp)`` is one key with a TTL of
``EVENTPULSE_GATEWAY_RECENT_IDS_TTL_S`` (the gateway's idempotency horizon), written after the
broker acked the event and before the client is answered, so a retry sent to any replica, or to
this one after a restart, within the horizon answers ``duplicate: true`` and is not produced again.
A batch's ids are looked up in one ``MGET`` and written in one pipeline. The tenant is the key's
hash tag, so a tenant's ids live in one slot (``MGET`` works on a Redis Cluster too).

The process's own `RecentIds` stays in front (what this process acknowledged needs no round trip)
and is what is left when Redis is unreachable: then the memory is this process's only, as without
Redis, and the failure is counted (``shared_state_errors``, ``idempotency_fail_open``) and logged
once per outage. The warehouse deduplicates by id anyway; this memory only spares the broker and
the stream the copies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from eventpulse.cache.client import REDIS_ERRORS, Outage
from gateway.metrics import GatewayMetrics
from gateway.recent_ids import RecentIds


class SharedRecentIds:
    def __init__(
        self,
        client: Any,
        local: RecentIds,
        *,
        prefix: str,
        ttl_s: float,
        retry_s: float,
        metrics: GatewayMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.local = local
        self._prefix = prefix
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._metrics = metrics
        self._outage = Outage("acknowledged ids are remembered by this process only", retry_s, clock)

    @property
    def enabled(self) -> bool:
        return self.local.enabled

    def _key(self, tenant: str, key: tuple[str, int]) -> str:
        return f"{self._prefix}ids:{{{tenant}}}:{key[1]}:{key[0]}"

    async def seen_among(self, tenant: str, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        found = await self.local.seen_among(tenant, keys)
        rest = [key for key in keys if key not in found]
        if not rest or not self.enabled or not self._outage.up:
            return found
        try:
            values = await self.client.mget([self._key(tenant, key) for key in rest])
        except REDIS_ERRORS as exc:
            self._went_down(exc)
            return found
        self._back()
        found.update(key for key, value in zip(rest, values, strict=True) if value is not None)
        return found

    async def add(self, tenant: str, keys: list[tuple[str, int]]) -> None:
        if not self.enabled or not keys:
            return
        self.local.remember(tenant, keys)
        if not self._outage.up:
            self._metrics.idempotency_fail_open += len(keys)
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(self._key(tenant, key), b"1", px=self._ttl_ms)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            self._went_down(exc)
            self._metrics.idempotency_fail_open += len(keys)
            return
        self._back()

    def _went_down(self, exc: BaseException) -> None:
        self._metrics.shared_state_errors += 1
        self._outage.failed(exc)

    def _back(self) -> None:
        self._outage.succeeded()
