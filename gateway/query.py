"""The query API's engine: tenant-scoped SQL and metric series, cached by data freshness, limited per key.

Every query runs through the scoped read path (`eventpulse.access.scoped_sql`) as the
warehouse's reader, scoped to the key's tenant whatever the SQL or the parameters say; the
rewrite of each SQL text is remembered, so repeated queries are not parsed again. Answers are
cached by the data version of the tables they read (`gateway.query_cache`), in the process and,
with Redis, across replicas. Each key has its own token bucket of queries (``query_rate_per_s``,
``query_burst``), in Redis when it is configured (`gateway.shared_rate_limit`), so the limit holds
across replicas.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from eventpulse.access.scoped_sql import Scope, ScopedQuery, ScopedReader
from eventpulse.aggregation.spec import grouping_filter
from eventpulse.cache.query_cache import data_version, moves_with_clock
from eventpulse.config.access import AccessSettings
from gateway.metrics import GatewayMetrics
from gateway.query_cache import ResultCache
from gateway.rate_limit import Decision, Limiter

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
        where.append(grouping_filter(("type", "source") if detailed else ()))
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


class QueryService:
    """Runs the query API's queries for one tenant at a time (clients are thread-safe per call)."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        limits: AccessSettings,
        *,
        cache: ResultCache,
        limiter: Limiter,
        rate_per_s: float,
        burst: int,
        metrics: GatewayMetrics,
        window_lengths: Sequence[int] = (60,),
        max_buckets: int = 10_000,
    ) -> None:
        self._factory = client_factory
        self._limits = limits
        self._reader: ScopedReader | None = None
        self.cache = cache
        self._limiter, self._rate, self._burst = limiter, rate_per_s, burst
        self._metrics = metrics
        self._lock = threading.Lock()
        self.max_buckets = max_buckets
        self._windows = sorted(set(window_lengths))

    async def admit(self, key_id: str) -> Decision | None:
        """Charge one query to ``key_id``'s bucket: None if admitted, else the refusal (for 429)."""
        bucket = self._limiter.bucket(f"key:{key_id}", self._rate, self._burst)
        if await bucket.admit(1):
            return None
        self._metrics.queries_rate_limited += 1
        return bucket.refusal(1)

    def reader(self) -> ScopedReader:
        with self._lock:
            if self._reader is None:
                client = self._factory()
                self._reader = ScopedReader(client, client.database or "default", self._limits)
            return self._reader

    def metric_sql(self, query: MetricQuery) -> tuple[str, dict[str, Any]]:
        """The SQL of a metric query (raises `BadQuery`), over the longest window dividing its buckets."""
        query.validate(self.max_buckets)
        fitting = [w for w in self._windows if query.granularity_s % w == 0] or self._windows[:1]
        return replace(query, window_s=fitting[-1]).sql()

    def peek(self, tenant: str, sql: str, params: Mapping[str, Any]) -> QueryAnswer | None:
        """A cached answer from this process's memory only, or None (never blocks: call it on the
        event loop; it raises `Refused` for a statement refused before)."""
        started = time.perf_counter()
        reader, scope = self._reader, Scope.of(tenant)
        if reader is None or not self.cache.enabled or moves_with_clock(sql):
            return None
        scoped = reader.scoped_if_known(sql, scope, params)
        if scoped is None:
            return None
        version = self.cache.peek_version(scoped.tables)
        if version is None:
            return None
        hit = self.cache.peek(self.cache.key((tenant,), sql, dict(params), version))
        return None if hit is None else self._hit(hit, started)

    async def answer(self, tenant: str, sql: str, params: Mapping[str, Any] | None = None) -> QueryAnswer:
        """The answer for ``tenant``: cached when the data did not change, else run (raises
        `eventpulse.access.statements.Refused` or a driver error)."""
        started = time.perf_counter()
        params, scope = dict(params or {}), Scope.of(tenant)
        reader = self._reader
        if reader is None:
            reader = await asyncio.to_thread(self.reader)
        scoped = reader.scoped_if_known(sql, scope, params)
        if scoped is None:
            scoped = await asyncio.to_thread(reader.scoped, sql, scope, params)
        if not self.cache.enabled or moves_with_clock(sql):
            self._metrics.query_cache_bypassed += 1
            return self._missed(await asyncio.to_thread(self._run, reader, scoped), started)
        version = await self.cache.version(scoped.tables, lambda tables: data_version(reader.client, list(tables)))
        key = self.cache.key((tenant,), sql, params, version)
        hit = await self.cache.get(key)
        if hit is not None:
            return self._hit(hit, started)
        answer = await asyncio.to_thread(self._run, reader, scoped)
        await self.cache.put(key, answer)
        self._metrics.query_cache_misses += 1
        return self._missed(answer, started)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.client.close()

    def _hit(self, hit: tuple[list[str], list[list[Any]]], started: float) -> QueryAnswer:
        elapsed = time.perf_counter() - started
        self._metrics.query_cache_hits += 1
        self._metrics.observe_query_hit(elapsed)
        return QueryAnswer(hit[0], hit[1], True, elapsed * 1000)

    def _missed(self, answer: tuple[list[str], list[list[Any]]], started: float) -> QueryAnswer:
        elapsed = time.perf_counter() - started
        self._metrics.observe_query_miss(elapsed)
        return QueryAnswer(answer[0], answer[1], False, elapsed * 1000)

    @staticmethod
    def _run(reader: ScopedReader, scoped: ScopedQuery) -> tuple[list[str], list[list[Any]]]:
        result = reader.client.query(scoped.sql, parameters=scoped.params, settings=reader.settings())
        return list(result.column_names), [[_plain(value) for value in row] for row in result.result_rows]


def _plain(value: Any) -> Any:
    """A JSON-ready value (datetimes as ISO 8601 UTC)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value
