"""Query results cached in Redis, keyed by the query and the freshness of the tables it reads.

A result is stored under a hash of (SQL, bound parameters, query settings, *data version*), where
the data version of the tables the query reads is read from ``system.parts``: the active parts'
count, rows, highest block number and data version. Every insert makes a new part with a higher
block number (a merge or mutation changes the parts too), so a result is never served once newer
rows landed: the next call has another key and runs the query. With ``version_s``
(``EVENTPULSE_DASHBOARD_QUERY_CACHE_VERSION_S``) the version itself is shared through Redis, so N
processes and queries probe ``system.parts`` once per table set and period instead of once per
call. Once a shared version is older than ``version_s``, one caller (elected by a Redis lock, across
processes) starts a probe on a background thread and every caller, that one included, goes on with
the version it has until the probe lands (stale-while-revalidate): no request waits for a probe
except the very first of a table set, and new rows show within ``version_s`` plus one probe.
Each process also keeps the versions it read (for what remains of their period) and its latest
results (``local_bytes``, least recently used out) in memory, keyed the same way: a hit on a
result this process already holds costs neither Redis round trip nor an Arrow decode, and is
exactly as fresh as one from Redis. Stale entries are never read again
and expire after ``EVENTPULSE_DASHBOARD_QUERY_CACHE_TTL_S``. A hit spares the query itself and is
shared by every dashboard process.

Queries that read no table of the warehouse's database (``system.*`` tables, table functions) or
whose answer moves with the clock (``now()``) are not cached: their time ranges come in as bound
parameters instead. Results travel as Arrow IPC. Without Redis, or when it is unreachable (counted, logged
once per outage), the query simply runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections import OrderedDict, deque
from typing import Any

import numpy as np
import orjson
import polars as pl
from clickhouse_connect.driver.client import Client

from eventpulse.cache.client import REDIS_ERRORS, Outage

_TABLES = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)\b(?!\s*\()", re.IGNORECASE)
_CLOCK = re.compile(r"\b(?:now|now64|today|yesterday|rand\w*|currentTimestamp|generateUUID\w*)\s*\(", re.IGNORECASE)
_TABLE_FUNCTION = re.compile(r"\b(?:FROM|JOIN)\s+[A-Za-z_]\w*\s*\(", re.IGNORECASE)
_VERSION_SQL = """
    SELECT table, count(), sum(rows), max(max_block_number), max(data_version)
    FROM system.parts
    WHERE database = currentDatabase() AND active AND table IN {tables:Array(String)}
    GROUP BY table ORDER BY table"""


def moves_with_clock(sql: str) -> bool:
    """Whether the answer of ``sql`` may change without the data changing (``now()``, ``rand()``...)."""
    return _CLOCK.search(sql) is not None


def data_version(client: Client, tables: list[str]) -> str:
    """The data version of ``tables`` of the client's database: their active parts' count, rows,
    highest block number and data version (every insert, merge or mutation changes it)."""
    rows = client.query(_VERSION_SQL, parameters={"tables": tables}).result_rows
    return orjson.dumps([list(map(str, row)) for row in rows]).decode()


def tables_read(sql: str) -> list[str] | None:
    """The tables ``sql`` reads, or None when it is not cacheable: it reads something else
    (``system.*``, another database, a table function) or its answer moves with the clock
    (``now()``, ``today()``, ``rand()``) rather than with the data. A name that is no table (a
    CTE's) has no parts and adds nothing to the version."""
    names = _TABLES.findall(sql)
    if not names or any("." in name for name in names) or _TABLE_FUNCTION.search(sql) or moves_with_clock(sql):
        return None
    return sorted(set(names))


class QueryCache:
    """``frame(client, sql, params, settings)``: the result, from Redis when the data has not changed.

    Counters (per process): ``hits``, ``misses``, ``bypassed`` (not cacheable or no Redis),
    ``errors``; `stats` adds the hit ratio and latency quantiles of hits and misses.
    """

    def __init__(
        self,
        redis: Any | None,
        *,
        prefix: str,
        ttl_s: float,
        version_s: float = 0.0,
        retry_s: float = 1.0,
        local_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.redis = redis
        self._prefix = f"{prefix}q:"
        self._versions = f"{prefix}v:"
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._version_ms = int(version_s * 1000)
        self._outage = Outage("dashboard queries run uncached", retry_s)
        self._lock = threading.Lock()  # Streamlit runs sessions on threads
        self._probe_lock = threading.Lock()
        self._keep_ms = max(60_000, 10 * self._version_ms)  # how long a stale version may still be used
        self._known_versions: dict[str, tuple[float, str]] = {}  # Redis key -> (probed at ms, version)
        self._local: OrderedDict[str, tuple[pl.DataFrame, int]] = OrderedDict()  # key -> (result, bytes)
        self._local_bytes, self._local_limit = 0, local_bytes
        self.hits = self.misses = self.bypassed = self.errors = 0
        self._hit_ms: deque[float] = deque(maxlen=2000)
        self._miss_ms: deque[float] = deque(maxlen=2000)

    @property
    def mode(self) -> str:
        if self.redis is None:
            return "local"
        return "redis" if self._outage.up else "degraded"

    def key(self, client: Client, sql: str, params: dict[str, Any], settings: dict[str, Any]) -> str | None:
        """The cache key of this query on the data as it is now (None: not cacheable)."""
        tables = tables_read(sql)
        if tables is None:
            return None
        doc = [sql, sorted(params.items()), sorted(settings.items()), self._version(client, tables)]
        digest = hashlib.sha256(orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS)).hexdigest()
        return self._prefix + digest

    def _version(self, client: Client, tables: list[str]) -> str:
        """The data version of ``tables``: read from ``system.parts``, or, with ``version_s``, the one
        shared in Redis (``<probed at ms>|<version>``), refreshed in the background once it is older
        than ``version_s`` (one probe per table set and period for every process)."""
        if not self._version_ms or self.redis is None:
            return self._probe(client, tables)
        shared = f"{self._versions}{','.join(tables)}"
        memo = self._known_versions.get(shared)
        if memo is not None and time.time() * 1000 - memo[0] < self._version_ms:
            return memo[1]
        known = self.redis.get(shared)
        if known is None:
            with self._probe_lock:  # the process's other threads wait for this first probe, not probe too
                known = self.redis.get(shared)
                if known is None:
                    return self._store_version(shared, self._probe(client, tables))
        probed_ms, _, version = known.decode().partition("|")
        self._known_versions[shared] = (int(probed_ms), version)
        if time.time() * 1000 - int(probed_ms) >= self._version_ms and self.redis.set(
            f"{shared}:refresh", b"1", nx=True, px=max(self._version_ms, 1000)
        ):
            threading.Thread(
                target=self._refresh, args=(client, tables, shared), name="query-cache-version", daemon=True
            ).start()
        return version

    def _refresh(self, client: Client, tables: list[str], shared: str) -> None:
        assert self.redis is not None  # only started with Redis
        try:
            self._store_version(shared, self._probe(client, tables))
        except Exception:  # a failed background probe is counted; the next stale read retries it
            with self._lock:
                self.errors += 1
        finally:
            with contextlib.suppress(*REDIS_ERRORS):
                self.redis.delete(f"{shared}:refresh")

    def _store_version(self, shared: str, version: str) -> str:
        assert self.redis is not None  # versions are shared only with Redis
        probed_ms = int(time.time() * 1000)
        self.redis.set(shared, f"{probed_ms}|{version}", px=self._keep_ms)
        self._known_versions[shared] = (probed_ms, version)
        return version

    def _remembered(self, key: str) -> pl.DataFrame | None:
        with self._lock:
            entry = self._local.get(key)
            if entry is None:
                return None
            self._local.move_to_end(key)
            return entry[0]

    def _remember(self, key: str, result: pl.DataFrame) -> None:
        size = int(result.estimated_size()) + 512  # + the key and the frame's own overhead: never 0
        if size > self._local_limit // 4:  # one big answer must not push every other out
            return
        with self._lock:
            if key in self._local:
                return
            self._local[key] = (result, size)
            self._local_bytes += size
            while self._local_bytes > self._local_limit:
                _, (_, dropped) = self._local.popitem(last=False)
                self._local_bytes -= dropped

    @staticmethod
    def _probe(client: Client, tables: list[str]) -> str:
        return data_version(client, tables)

    def frame(self, client: Client, sql: str, params: dict[str, Any], settings: dict[str, Any]) -> pl.DataFrame:
        started = time.perf_counter()
        if self.redis is None or not self._outage.up:
            return self._run(client, sql, params, settings, bypass=True)
        try:
            key = self.key(client, sql, params, settings)
            if key is None:
                return self._run(client, sql, params, settings, bypass=True)
            result = self._remembered(key)
            if result is None and (cached := self.redis.get(key)) is not None:
                result = pl.read_ipc(cached)
                self._remember(key, result)
        except REDIS_ERRORS as exc:
            self._went_down(exc)
            return self._run(client, sql, params, settings, bypass=True)
        if result is not None:
            with self._lock:
                self.hits += 1
                self._hit_ms.append((time.perf_counter() - started) * 1000)
            return result
        result = self._run(client, sql, params, settings)
        self._remember(key, result)
        try:
            self.redis.set(key, result.write_ipc(None).getvalue(), px=self._ttl_ms)
        except REDIS_ERRORS as exc:
            self._went_down(exc)
        with self._lock:
            self.misses += 1
            self._miss_ms.append((time.perf_counter() - started) * 1000)
        self._back()
        return result

    def stats(self) -> dict[str, float | int | str | None]:
        with self._lock:
            hits, misses, hit_ms, miss_ms = self.hits, self.misses, list(self._hit_ms), list(self._miss_ms)
        looked_up = hits + misses
        return {
            "mode": self.mode,
            "hits": hits,
            "misses": misses,
            "bypassed": self.bypassed,
            "errors": self.errors,
            "hit_ratio": hits / looked_up if looked_up else None,
            "hit_p50_ms": float(np.median(hit_ms)) if hit_ms else None,
            "miss_p50_ms": float(np.median(miss_ms)) if miss_ms else None,
        }

    def _run(
        self, client: Client, sql: str, params: dict[str, Any], settings: dict[str, Any], bypass: bool = False
    ) -> pl.DataFrame:
        if bypass:
            with self._lock:
                self.bypassed += 1
        return pl.from_arrow(client.query_arrow(sql, parameters=params, settings=settings))  # type: ignore[return-value]

    def _went_down(self, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
        self._outage.failed(exc)

    def _back(self) -> None:
        self._outage.succeeded()
