"""Query API answers keyed by the query and the freshness of the data it reads, in the process and
in Redis.

An answer is stored under a hash of (the caller's tenants, the SQL, its bound parameters, the *data
version* of the tables the scoped query reads). The version comes from ``system.parts``
(`eventpulse.cache.query_cache.data_version`: every insert, merge or mutation changes it) and is
reused for ``query_cache_version_s`` (``EVENTPULSE_GATEWAY_QUERY_CACHE_VERSION_S``, 1 s): new rows
show in answers within that long, and a hit costs no warehouse round trip at all. One probe per
table set and period per process (concurrent requests wait for the one in flight); with Redis the
version is shared too, so N replicas probe about once per period between them. ``0`` probes on
every request (exact, and one warehouse round trip per hit). An answer nobody asked for again
expires after ``query_cache_ttl_s``; an answer of stale data is never read again (its key is gone).

Without Redis, answers are kept in this process only (``query_cache_entries`` of them, least
recently used dropped first); with ``EVENTPULSE_REDIS_URL`` they are also shared by every replica.
Redis unreachable: this process's cache only, logged once per outage and counted
(``shared_state_errors``). Queries whose answer moves with the clock (``now()``, ``rand()``) are
never cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import orjson

from eventpulse.cache.client import REDIS_ERRORS, Outage
from gateway.metrics import GatewayMetrics

Answer = tuple[list[str], list[list[Any]]]
"""Column names and rows (JSON-ready values)."""


class _Lru:
    """A bounded LRU whose entries expire ``ttl_s`` after they were stored (one lock)."""

    def __init__(self, entries: int, ttl_s: float, clock: Callable[[], float]) -> None:
        self._entries, self._ttl, self._clock = entries, ttl_s, clock
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            found = self._data.get(key)
            if found is None or self._clock() - found[0] > self._ttl:
                return None
            self._data.move_to_end(key)
            return found[1]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._data[key] = (self._clock(), value)
            self._data.move_to_end(key)
            while len(self._data) > self._entries:
                self._data.popitem(last=False)


class ResultCache:
    """Answers by (tenants, SQL, parameters, data version); see the module docstring.

    ``peek_version`` and ``peek`` only read this process's memory (call them on the event loop for
    hits without a thread hop); `version`, `get` and `put` may go to Redis or the warehouse.
    """

    def __init__(
        self,
        redis: Any | None,
        *,
        prefix: str,
        ttl_s: float,
        version_s: float,
        entries: int,
        retry_s: float,
        metrics: GatewayMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.enabled = ttl_s > 0
        self._prefix, self._versions_prefix = f"{prefix}qa:", f"{prefix}qv:"
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._version_s = version_s
        self._clock = clock
        self._answers = _Lru(entries, ttl_s, clock)
        self._versions: dict[tuple[str, ...], tuple[float, str]] = {}
        self._probes: dict[tuple[str, ...], asyncio.Future[str]] = {}
        self._metrics = metrics
        self.outage = Outage("query API answers cached per process", retry_s, clock)

    def key(self, tenants: Sequence[str], sql: str, params: dict[str, Any], version: str) -> str:
        doc = [list(tenants), sql, sorted(params.items()), version]
        return hashlib.sha256(orjson.dumps(doc, default=repr, option=orjson.OPT_NON_STR_KEYS)).hexdigest()

    def peek_version(self, tables: tuple[str, ...]) -> str | None:
        """The version of ``tables`` if this process read it less than ``version_s`` ago."""
        if not tables:
            return ""
        known = self._versions.get(tables)
        if known is None or self._clock() - known[0] >= self._version_s:
            return None
        return known[1]

    async def version(self, tables: tuple[str, ...], probe: Callable[[tuple[str, ...]], str]) -> str:
        """The version of ``tables``: this process's, Redis's, or ``probe``'s (run in a thread, one
        at a time per table set: the others wait for it)."""
        known = self.peek_version(tables)
        if known is not None:
            return known
        shared_key = f"{self._versions_prefix}{','.join(tables)}"
        if self._version_s > 0 and (shared := await self._redis_get(shared_key)) is not None:
            version = shared.decode()
            self._versions[tables] = (self._clock(), version)
            return version
        running = self._probes.get(tables)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._probes[tables] = future
        try:
            started = self._clock()
            version = await asyncio.to_thread(probe, tables)
            self._versions[tables] = (started, version)
            future.set_result(version)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._probes[tables]
        if self._version_s > 0:
            await self._redis_call("set", shared_key, version, px=max(1, int(self._version_s * 1000)))
        return version

    def peek(self, key: str) -> Answer | None:
        return self._answers.get(key) if self.enabled else None

    async def get(self, key: str) -> Answer | None:
        """This process's answer, or Redis's (then kept here too)."""
        if not self.enabled:
            return None
        found = self._answers.get(key)
        if found is not None:
            return found
        shared = await self._redis_get(self._prefix + key)
        if shared is None:
            return None
        columns, rows = orjson.loads(shared)
        self._answers.put(key, (columns, rows))
        self._metrics.query_cache_shared_hits += 1
        return columns, rows

    async def put(self, key: str, answer: Answer) -> None:
        if not self.enabled:
            return
        self._answers.put(key, answer)
        await self._redis_call("set", self._prefix + key, orjson.dumps(answer), px=self._ttl_ms)

    async def _redis_get(self, key: str) -> bytes | None:
        return await self._redis_call("get", key)

    async def _redis_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.redis is None or not self.outage.up:
            return None
        try:
            result = await getattr(self.redis, method)(*args, **kwargs)
        except REDIS_ERRORS as exc:
            self._metrics.shared_state_errors += 1
            self.outage.failed(exc)
            return None
        self.outage.succeeded()
        return result
