"""The query API's engine: tenant-scoped SQL and metric series, cached briefly, limited per key.

Every query runs through the scoped read path (`eventpulse.access.scoped_sql`) as the
warehouse's reader, scoped to the key's tenant whatever the SQL or the parameters say. Results
are kept in an in-process cache for ``query_cache_ttl_s`` (the stream's provisional windows are
re-emitted about every second, so older answers would be stale); each key has its own token
bucket of queries (``query_rate_per_s``, ``query_burst``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from eventpulse.access.scoped_sql import Scope, ScopedReader
from eventpulse.aggregation.spec import ALL
from eventpulse.config.access import AccessSettings
from gateway.rate_limit import TokenBucket

METRICS: dict[str, str] = {
    "event_count": "sum(event_count)",
    "error_count": "sum(error_count)",
    "error_rate": "if(sum(event_count) = 0, 0., sum(error_count) / sum(event_count))",
    "distinct_users": "sum(distinct_users)",
    "latency_avg": "if(sum(latency_count) = 0, NULL, sum(latency_sum) / sum(latency_count))",
    "latency_p50": "if(sum(latency_count) = 0, NULL, sum(ifNull(latency_p50, 0) * latency_count) / sum(latency_count))",
    "latency_p95": "if(sum(latency_count) = 0, NULL, sum(ifNull(latency_p95, 0) * latency_count) / sum(latency_count))",
    "latency_p99": "if(sum(latency_count) = 0, NULL, sum(ifNull(latency_p99, 0) * latency_count) / sum(latency_count))",
}
"""Metric name -> how windows merge into a bucket (percentiles: latency-count-weighted means)."""
BREAKDOWNS = ("type", "source")


class BadQuery(ValueError):
    """A metric query whose parameters make no sense (answered 400)."""


@dataclass(frozen=True)
class MetricQuery:
    """``GET /api/metrics/query``: one metric over ``[start, end)`` in buckets of ``granularity_s``."""

    metric: str
    start: datetime
    end: datetime
    granularity_s: int = 60
    breakdown: str | None = None
    types: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    window_s: int = 60
    """The tumbling window family read (the service picks the longest that divides the granularity)."""

    def validate(self, max_buckets: int) -> None:
        if self.metric not in METRICS:
            raise BadQuery(f"unknown metric {self.metric!r} (known: {', '.join(METRICS)})")
        if self.breakdown is not None and self.breakdown not in BREAKDOWNS:
            raise BadQuery(f"breakdown must be one of {', '.join(BREAKDOWNS)}")
        if self.end <= self.start:
            raise BadQuery("end must be after start")
        if self.granularity_s < 1:
            raise BadQuery("granularity must be at least 1 second")
        if (self.end - self.start).total_seconds() / self.granularity_s > max_buckets:
            raise BadQuery(f"more than {max_buckets} buckets: choose a coarser granularity or a shorter range")

    def sql(self) -> tuple[str, dict[str, Any]]:
        """SQL over the tumbling windows of ``window_aggregates`` and its bound parameters."""
        dt = "DateTime64(3, 'UTC')"
        params: dict[str, Any] = {"start": self.start, "end": self.end, "g": self.granularity_s, "ws": self.window_s}
        where = [
            "window_seconds = {ws:UInt32}",
            "slide_seconds = {ws:UInt32}",
            f"window_start >= {{start:{dt}}}",
            f"window_start < {{end:{dt}}}",
        ]
        detailed = self.breakdown is not None or self.types or self.sources
        where.append(f"type != '{ALL}'" if detailed else f"type = '{ALL}'")
        if self.types:
            where.append("type IN {types:Array(String)}")
            params["types"] = list(self.types)
        if self.sources:
            where.append("source IN {sources:Array(String)}")
            params["sources"] = list(self.sources)
        group = "bucket" + (f", {self.breakdown}" if self.breakdown else "")
        select = "toStartOfInterval(window_start, toIntervalSecond({g:UInt32})) AS bucket"
        if self.breakdown:
            select += f", {self.breakdown}"
        sql = (
            f"SELECT {select}, {METRICS[self.metric]} AS value FROM window_aggregates FINAL "
            f"WHERE {' AND '.join(where)} GROUP BY {group} ORDER BY {group}"
        )
        return sql, params


@dataclass(frozen=True)
class QueryAnswer:
    columns: list[str]
    rows: list[list[Any]]
    cached: bool
    elapsed_ms: float


class _TtlCache:
    """A small LRU whose entries expire after ``ttl_s`` (one lock: hits are a dict lookup)."""

    def __init__(self, ttl_s: float, entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._entries, self._clock = ttl_s, entries, clock
        self._data: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any | None:
        with self._lock:
            found = self._data.get(key)
            if found is None or self._clock() - found[0] > self._ttl:
                return None
            self._data.move_to_end(key)
            return found[1]

    def put(self, key: Any, value: Any) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._data[key] = (self._clock(), value)
            self._data.move_to_end(key)
            while len(self._data) > self._entries:
                self._data.popitem(last=False)


class QueryService:
    """Runs the query API's queries for one tenant at a time (clients are thread-safe per call)."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        limits: AccessSettings,
        *,
        cache_ttl_s: float,
        cache_entries: int,
        rate_per_s: float,
        burst: int,
        window_lengths: Sequence[int] = (60,),
        max_buckets: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = client_factory
        self._limits = limits
        self._reader: ScopedReader | None = None
        self._cache = _TtlCache(cache_ttl_s, cache_entries, clock)
        self._rate, self._burst, self._clock = rate_per_s, burst, clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self.max_buckets = max_buckets
        self._windows = sorted(set(window_lengths))

    def allow(self, key_id: str) -> bool:
        """Charge one query to ``key_id``'s bucket (called on the event loop)."""
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = TokenBucket(self._rate, self._burst, self._clock)
        return bucket.take(1)

    def reader(self) -> ScopedReader:
        with self._lock:
            if self._reader is None:
                client = self._factory()
                self._reader = ScopedReader(client, client.database or "default", self._limits)
            return self._reader

    def sql(self, tenant: str, sql: str, params: Mapping[str, Any] | None = None) -> QueryAnswer:
        """Free SQL for ``tenant`` (raises `eventpulse.access.statements.Refused` or a driver error)."""
        return self._run(tenant, sql, dict(params or {}))

    def metric_sql(self, query: MetricQuery) -> tuple[str, dict[str, Any]]:
        """The SQL of a metric query (raises `BadQuery`), over the longest window dividing its buckets."""
        query.validate(self.max_buckets)
        fitting = [w for w in self._windows if query.granularity_s % w == 0] or self._windows[:1]
        return replace(query, window_s=fitting[-1]).sql()

    def metric(self, tenant: str, query: MetricQuery) -> QueryAnswer:
        return self._run(tenant, *self.metric_sql(query))

    def cached(self, tenant: str, sql: str, params: Mapping[str, Any]) -> QueryAnswer | None:
        """A cached answer, without touching the warehouse (cheap: call it on the event loop)."""
        hit = self._cache.get(_cache_key(tenant, sql, dict(params)))
        return None if hit is None else QueryAnswer(hit[0], hit[1], True, 0.0)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.client.close()

    def _run(self, tenant: str, sql: str, params: dict[str, Any]) -> QueryAnswer:
        started = time.perf_counter()
        key = _cache_key(tenant, sql, params)
        hit = self._cache.get(key)
        if hit is not None:
            columns, rows = hit
            return QueryAnswer(columns, rows, True, (time.perf_counter() - started) * 1000)
        reader = self.reader()
        scoped = reader.scoped(sql, Scope.of(tenant), params)
        result = reader.client.query(scoped.sql, parameters=scoped.params, settings=reader.settings())
        columns = list(result.column_names)
        rows = [[_plain(value) for value in row] for row in result.result_rows]
        self._cache.put(key, (columns, rows))
        return QueryAnswer(columns, rows, False, (time.perf_counter() - started) * 1000)


def _cache_key(tenant: str, sql: str, params: dict[str, Any]) -> tuple:
    return (tenant, sql, tuple(sorted((k, repr(v)) for k, v in params.items())))


def _plain(value: Any) -> Any:
    """A JSON-ready value (datetimes as ISO 8601 UTC)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value
