"""``/api/health/ready``: can the gateway reach the broker and the warehouse right now?

Each check runs on a worker thread with a short timeout; results are cached for a second so a busy
load balancer does not turn readiness probes into load on the dependencies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from clickhouse_connect.driver.client import Client
from confluent_kafka.admin import AdminClient

from gateway.schemas import DependencyStatus, Readiness

CACHE_S = 1.0


class ReadinessProbe:
    def __init__(
        self, admin_factory: Callable[[], AdminClient], client_factory: Callable[[], Client], timeout_s: float = 2.0
    ) -> None:
        self._admin_factory = admin_factory
        self._client_factory = client_factory
        self._admin: AdminClient | None = None
        self._client: Client | None = None
        self._timeout = timeout_s
        self._cached: tuple[float, Readiness] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> Readiness:
        async with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < CACHE_S:
                return self._cached[1]
            broker, warehouse = await asyncio.gather(
                asyncio.to_thread(self._timed, self._broker), asyncio.to_thread(self._timed, self._warehouse)
            )
            ok = broker.ok and warehouse.ok
            result = Readiness("ready" if ok else "unavailable", {"broker": broker, "warehouse": warehouse})
            self._cached = (time.monotonic(), result)
            return result

    def close(self) -> None:
        self._admin = None
        if self._client is not None:
            self._client.close()

    def _timed(self, check: Callable[[], None]) -> DependencyStatus:
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:
            return DependencyStatus(False, None, f"{type(exc).__name__}: {exc}"[:500])
        return DependencyStatus(True, round((time.perf_counter() - started) * 1000, 3))

    def _broker(self) -> None:
        if self._admin is None:
            self._admin = self._admin_factory()
        metadata = self._admin.list_topics(timeout=self._timeout)  # all topics: a named one would be auto-created
        if not metadata.brokers:
            raise ConnectionError("no broker in the cluster metadata")

    def _warehouse(self) -> None:
        if self._client is None:
            self._client = self._client_factory()
        try:
            self._client.command("SELECT 1")
        except Exception:
            self._client = None
            raise
