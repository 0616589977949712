"""Every query the dashboards run, in one place, cached with TTLs that suit each page.

All values travel as bound parameters (``{name:Type}``); only our own identifiers (table names
from `dashboards.sources.TABLES`, grouping columns from a fixed set) are formatted into SQL.
Results come back as Arrow and are returned as polars frames. The client is created once per
process and warehouse (`client`), with no HTTP session, so Streamlit's threads can share it.

Pages read aggregates and rollups only; the one query over raw events (`search_events`) is
paginated, bounded by time and backed by the text index of migration 0040.

Every tenant-facing query (live, historical, search, dead letters, late events, alerts, the SQL
console) runs through `tenant_frame`: the scoped read path (`eventpulse.access.scoped_sql`)
rewrites each table reference to the selected tenant's rows or refuses the query. Operator pages
(pipeline health, archive runs) read platform tables without a tenant column through `frame`.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import polars as pl
import streamlit as st
from clickhouse_connect.driver.client import Client

from dashboards import signin
from dashboards.sources import TABLES, Segment, as_utc, plan_sources
from eventpulse.access.scoped_sql import Scope, ScopedReader
from eventpulse.aggregation.spec import ALL
from eventpulse.cache.client import sync_client
from eventpulse.cache.query_cache import QueryCache
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client

LIVE_TTL = 1
"""Seconds a live result may be reused: below the refresh period, shared by concurrent viewers."""
HISTORY_TTL = 60
STATUS_TTL = 5
LIST_TTL = 300
_QUERY_SETTINGS = {"max_execution_time": 30}
_DT = "DateTime64(3, 'UTC')"
BREAKDOWNS = ("type", "source", "tenant")


@st.cache_resource(show_spinner=False)
def _client_for(url: str, database: str) -> Client:
    settings = Settings().warehouse
    if (settings.url, settings.database) != (url, database):  # settings changed between the two reads
        settings = settings.model_copy(update={"url": url, "database": database})
    return create_client(settings, role="reader", autogenerate_session_id=False)


def client() -> Client:
    """The process's client for the configured warehouse (one per URL and database)."""
    settings = Settings().warehouse
    return _client_for(settings.url, settings.database)


@st.cache_resource(show_spinner=False)
def _query_cache_for(url: str, prefix: str, ttl_s: float, version_s: float, retry_s: float) -> QueryCache:
    redis = Settings().redis.model_copy(update={"url": url, "key_prefix": prefix, "retry_s": retry_s})
    return QueryCache(sync_client(redis), prefix=prefix, ttl_s=ttl_s, version_s=version_s, retry_s=retry_s)


def query_cache() -> QueryCache:
    """The process's query cache: shared by every dashboard process through Redis when
    ``EVENTPULSE_REDIS_URL`` is set, a pass-through otherwise (see `eventpulse.cache.query_cache`)."""
    settings = Settings()
    r = settings.redis
    d = settings.dashboard
    return _query_cache_for(r.url, r.key_prefix, d.query_cache_ttl_s, d.query_cache_version_s, r.retry_s)


def frame(sql: str, params: dict[str, Any] | None = None, settings: dict[str, Any] | None = None) -> pl.DataFrame:
    """Run ``sql`` with bound ``params`` (or take its result from the query cache, when the tables it
    reads have not changed since) and return the result as a polars frame (operator pages)."""
    return query_cache().frame(client(), sql, params or {}, {**_QUERY_SETTINGS, **(settings or {})})


@st.cache_resource(show_spinner=False)
def _scoped_for(url: str, database: str) -> ScopedReader:
    return ScopedReader(_client_for(url, database), database, Settings().access)


def scoped_reader() -> ScopedReader:
    """The process's scoped read path for the configured warehouse."""
    settings = Settings().warehouse
    return _scoped_for(settings.url, settings.database)


def scope_for(tenant: str) -> Scope:
    """The tenant selector's choice as a scope: one tenant, or every tenant ("" = the operator view).

    The signed-in user decides what may be asked (`dashboards.signin.scope_tenant`): a tenant user
    gets their own tenant or `ScopeError`, whatever a widget or the URL says.
    """
    tenant = signin.scope_tenant(tenant)
    return Scope.of(tenant) if tenant else Scope.everyone()


def tenant_frame(
    sql: str, tenant: str, params: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
) -> pl.DataFrame:
    """Run a tenant-facing query scoped to ``tenant`` (every table filtered, or `Refused`)."""
    reader = scoped_reader()
    scoped = reader.scoped(sql, scope_for(tenant), params)
    limits = reader.settings(**{**_QUERY_SETTINGS, **(settings or {})})
    return query_cache().frame(reader.client, scoped.sql, scoped.params, limits)  # keyed by the scoped SQL


def _tenant_clause(column: str = "tenant") -> str:
    return f"({column} = {{tenant:String}} OR {{tenant:String}} = '')"


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def table_exists(name: str) -> bool:
    """Whether ``name`` exists in the dashboard's database (tables other helpers add later)."""
    sql = "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = {name:String}"
    return bool(client().query(sql, parameters={"name": name}).result_rows[0][0])


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def tenants() -> list[str]:
    """Tenants seen in the aggregates of the last 30 days (the selector's choices)."""
    sql = f"""
        SELECT DISTINCT tenant FROM window_aggregates
        WHERE window_start >= now64(3) - INTERVAL 30 DAY AND type = '{ALL}'
        ORDER BY tenant"""
    return frame(sql)["tenant"].to_list()


# ---------------------------------------------------------------------------------- live


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def window_lengths(start: datetime, end: datetime) -> list[int]:
    """Tumbling window lengths (s) present in ``window_aggregates`` for windows in the range."""
    sql = f"""
        SELECT DISTINCT window_seconds FROM window_aggregates
        WHERE window_start >= {{start:{_DT}}} AND window_start < {{end:{_DT}}}
          AND window_seconds = slide_seconds
        ORDER BY window_seconds"""
    return frame(sql, {"start": start, "end": end})["window_seconds"].to_list()


def _window_rows_sql(where: str) -> str:
    """Tenant-wide rows per window, summed across the selected tenants.

    Percentiles of several tenants are latency-count-weighted means of the tenants' own
    percentiles (an approximation, exact for one tenant); a window is provisional when any of
    its rows is still open.
    """
    return f"""
        SELECT
            window_start, window_end, events, errors,
            if(events = 0, 0., errors / events) AS error_rate,
            users AS distinct_users,
            lat_n AS latency_count,
            if(lat_n = 0, NULL, lat_sum / lat_n) AS latency_avg,
            if(lat_n = 0, NULL, p50w / lat_n) AS latency_p50,
            if(lat_n = 0, NULL, p95w / lat_n) AS latency_p95,
            if(lat_n = 0, NULL, p99w / lat_n) AS latency_p99,
            is_final, emitted_at
        FROM (
            SELECT
                window_start,
                any(window_end) AS window_end,
                sum(event_count) AS events,
                sum(error_count) AS errors,
                sum(distinct_users) AS users,
                sum(latency_count) AS lat_n,
                sum(latency_sum) AS lat_sum,
                sum(ifNull(latency_p50, 0) * latency_count) AS p50w,
                sum(ifNull(latency_p95, 0) * latency_count) AS p95w,
                sum(ifNull(latency_p99, 0) * latency_count) AS p99w,
                min(is_final) AS is_final,
                max(emitted_at) AS emitted_at
            FROM window_aggregates FINAL
            WHERE {where}
            GROUP BY window_start
        )
        ORDER BY window_start"""


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def live_windows(tenant: str, window_seconds: int, start: datetime, end: datetime) -> pl.DataFrame:
    """One row per tumbling window of ``window_seconds`` starting in ``[start, end)``."""
    where = f"""window_seconds = {{ws:UInt32}} AND slide_seconds = {{ws:UInt32}}
          AND window_start >= {{start:{_DT}}} AND window_start < {{end:{_DT}}}
          AND type = '{ALL}' AND source = '{ALL}' AND {_tenant_clause()}"""
    params = {"ws": window_seconds, "start": start, "end": end, "tenant": tenant}
    df = tenant_frame(_window_rows_sql(where), tenant, params)
    return df.with_columns((pl.col("events") / window_seconds).alias("events_per_s"))


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def live_top(tenant: str, window_seconds: int, start: datetime, end: datetime, dim: str, limit: int = 10):
    """Top values of ``dim`` (type or source) by events over the windows in the range."""
    if dim not in ("type", "source"):
        raise ValueError(dim)
    sql = f"""
        SELECT {dim}, sum(event_count) AS events, sum(error_count) AS errors,
               if(events = 0, 0., errors / events) AS error_rate, min(is_final) AS is_final
        FROM window_aggregates FINAL
        WHERE window_seconds = {{ws:UInt32}} AND slide_seconds = {{ws:UInt32}}
          AND window_start >= {{start:{_DT}}} AND window_start < {{end:{_DT}}}
          AND type != '{ALL}' AND {_tenant_clause()}
        GROUP BY {dim}
        ORDER BY events DESC, {dim}
        LIMIT {{limit:UInt32}}"""
    return tenant_frame(
        sql, tenant, {"ws": window_seconds, "start": start, "end": end, "tenant": tenant, "limit": limit}
    )


# ---------------------------------------------------------------------------------- historical


@st.cache_data(ttl=HISTORY_TTL, show_spinner=False)
def coverage() -> dict[str, tuple[datetime, datetime] | None]:
    """The stretch of time each aggregate table holds (rollups are filled day by day)."""
    out: dict[str, tuple[datetime, datetime] | None] = {}
    for table in TABLES:
        sql = f"""
            SELECT min(window_start), max(window_end), count() FROM {table.name}
            WHERE window_seconds = {{ws:UInt32}} AND slide_seconds = {{ws:UInt32}}"""
        lo, hi, n = client().query(sql, parameters={"ws": table.window_seconds}).result_rows[0]
        out[table.name] = (as_utc(lo), as_utc(hi)) if n else None
    return out


def _segments_sql(segments: Sequence[Segment], columns: str, where: str, params: dict[str, Any]) -> str:
    """UNION ALL of the segments' rows; adds each segment's bounds to ``params``."""
    parts = []
    for i, seg in enumerate(segments):
        params[f"s{i}"], params[f"e{i}"], params[f"w{i}"] = seg.start, seg.end, seg.table.window_seconds
        parts.append(
            f"""SELECT {columns} FROM {seg.table.name} FINAL
            WHERE window_seconds = {{w{i}:UInt32}} AND slide_seconds = {{w{i}:UInt32}}
              AND window_start >= {{s{i}:{_DT}}} AND window_start < {{e{i}:{_DT}}} AND {where}"""
        )
    return "\nUNION ALL\n".join(parts)


_ROW_COLUMNS = (
    "tenant, type, source, window_start, event_count, error_count, distinct_users, latency_count, "
    "latency_sum, latency_p50, latency_p95, latency_p99, is_final"
)


def history_plan(start: datetime, end: datetime, bucket_seconds: int) -> list[Segment]:
    """The tables a historical chart reads (see `dashboards.sources.plan_sources`)."""
    return plan_sources(start, end, bucket_seconds, coverage())


@st.cache_data(ttl=HISTORY_TTL, show_spinner=False)
def history_series(tenant: str, start: datetime, end: datetime, bucket_seconds: int) -> pl.DataFrame:
    """Tenant-wide metrics per bucket of ``bucket_seconds`` over ``[start, end)``.

    ``peak_users`` is the largest distinct-user count of one source window in the bucket
    (distinct counts of separate windows cannot be added); percentiles are
    latency-count-weighted means of the windows' percentiles.
    """
    segments = history_plan(start, end, bucket_seconds)
    if not segments:
        return pl.DataFrame()
    params: dict[str, Any] = {"tenant": tenant, "bucket": bucket_seconds}
    rows = _segments_sql(segments, _ROW_COLUMNS, f"type = '{ALL}' AND source = '{ALL}' AND {_tenant_clause()}", params)
    sql = f"""
        SELECT
            toDateTime64(toStartOfInterval(window_start, INTERVAL {{bucket:UInt32}} SECOND), 3, 'UTC') AS bucket,
            sum(events) AS events,
            sum(errors) AS errors,
            if(events = 0, 0., errors / events) AS error_rate,
            events / {{bucket:UInt32}} AS events_per_s,
            max(users) AS peak_users,
            sum(lat_n) AS latency_count,
            if(latency_count = 0, NULL, sum(lat_sum) / latency_count) AS latency_avg,
            if(latency_count = 0, NULL, sum(p50w) / latency_count) AS latency_p50,
            if(latency_count = 0, NULL, sum(p95w) / latency_count) AS latency_p95,
            if(latency_count = 0, NULL, sum(p99w) / latency_count) AS latency_p99,
            min(final) AS is_final
        FROM (
            SELECT window_start, sum(event_count) AS events, sum(error_count) AS errors,
                   sum(distinct_users) AS users, sum(latency_count) AS lat_n, sum(latency_sum) AS lat_sum,
                   sum(ifNull(latency_p50, 0) * latency_count) AS p50w,
                   sum(ifNull(latency_p95, 0) * latency_count) AS p95w,
                   sum(ifNull(latency_p99, 0) * latency_count) AS p99w,
                   min(is_final) AS final
            FROM ({rows})
            GROUP BY window_start
        )
        GROUP BY bucket
        ORDER BY bucket"""
    return tenant_frame(sql, tenant, params)


@st.cache_data(ttl=HISTORY_TTL, show_spinner=False)
def history_breakdown(tenant: str, start: datetime, end: datetime, bucket_seconds: int, dim: str) -> pl.DataFrame:
    """Totals over the range per ``dim`` (type, source or tenant), largest first."""
    if dim not in BREAKDOWNS:
        raise ValueError(dim)
    segments = history_plan(start, end, bucket_seconds)
    if not segments:
        return pl.DataFrame()
    params: dict[str, Any] = {"tenant": tenant}
    rows_filter = f"type = '{ALL}'" if dim == "tenant" else f"type != '{ALL}'"
    rows = _segments_sql(segments, _ROW_COLUMNS, f"{rows_filter} AND {_tenant_clause()}", params)
    sql = f"""
        SELECT
            {dim},
            sum(event_count) AS events,
            sum(error_count) AS errors,
            if(events = 0, 0., errors / events) AS error_rate,
            sum(latency_count) AS lat_n,
            if(lat_n = 0, NULL, sum(latency_sum) / lat_n) AS latency_avg,
            if(lat_n = 0, NULL, sum(ifNull(latency_p95, 0) * latency_count) / lat_n) AS latency_p95
        FROM ({rows})
        GROUP BY {dim}
        ORDER BY events DESC, {dim}"""
    df = tenant_frame(sql, tenant, params).rename({"lat_n": "latency_count"})
    total = df["events"].sum() if df.height else 0
    return df.with_columns((pl.col("events") / max(total, 1)).alias("share"))


# ---------------------------------------------------------------------------------- health


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def dead_letter_reasons(tenant: str, start: datetime, end: datetime) -> pl.DataFrame:
    """Dead letters per stage and reason in the range."""
    sql = f"""
        SELECT stage, reason, count() AS letters, max(received_at) AS last_seen
        FROM dead_letters FINAL
        WHERE received_at >= {{start:{_DT}}} AND received_at < {{end:{_DT}}} AND {_tenant_clause()}
        GROUP BY stage, reason
        ORDER BY letters DESC, stage, reason"""
    return tenant_frame(sql, tenant, {"start": start, "end": end, "tenant": tenant})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def recent_dead_letters(tenant: str, start: datetime, end: datetime, limit: int = 20) -> pl.DataFrame:
    sql = f"""
        SELECT received_at, tenant, stage, reason, field, detail, topic_partition, topic_offset,
               substring(payload, 1, 200) AS payload
        FROM dead_letters FINAL
        WHERE received_at >= {{start:{_DT}}} AND received_at < {{end:{_DT}}} AND {_tenant_clause()}
        ORDER BY received_at DESC
        LIMIT {{limit:UInt32}}"""
    return tenant_frame(sql, tenant, {"start": start, "end": end, "tenant": tenant, "limit": limit})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def warehouse_parts() -> pl.DataFrame:
    """Active parts, rows, bytes and compression per table of the dashboard's database."""
    sql = """
        SELECT table, count() AS parts, sum(rows) AS rows,
               sum(data_compressed_bytes) AS compressed_bytes,
               sum(data_uncompressed_bytes) AS uncompressed_bytes,
               if(compressed_bytes = 0, 0., uncompressed_bytes / compressed_bytes) AS compression_ratio,
               toDateTime64(max(modification_time), 0, 'UTC') AS last_modified
        FROM system.parts
        WHERE database = currentDatabase() AND active
        GROUP BY table
        ORDER BY compressed_bytes DESC, table"""
    return frame(sql)


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def archive_runs(limit: int = 10) -> pl.DataFrame:
    """The latest archive manifests (one per day, latest record wins)."""
    if not table_exists("archive_manifests"):
        return pl.DataFrame()
    sql = """
        SELECT day, status, row_count, tenant_count, file_count, bytes, archived_at, raw_dropped_at, run_id
        FROM archive_manifests FINAL
        ORDER BY archived_at DESC
        LIMIT {limit:UInt32}"""
    return frame(sql, {"limit": limit})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def batch_recomputes(limit: int = 10) -> pl.DataFrame:
    """The latest batch recomputes (Dagster backfills and daily runs), one row per day of event time.

    Read from the warehouse itself: a recompute swaps in rows with ``origin = 'batch'``, so what is
    shown is what queries see now, whichever Dagster instance ran it."""
    sql = """
        SELECT toDate(window_start) AS recomputed_day, max(emitted_at) AS recomputed_at,
               count() AS window_rows, uniqExact(tenant) AS tenants
        FROM window_aggregates FINAL
        WHERE origin = 'batch'
        GROUP BY recomputed_day
        ORDER BY recomputed_at DESC, recomputed_day DESC
        LIMIT {limit:UInt32}"""
    return frame(sql, {"limit": limit})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def pipeline_incidents(limit: int = 20) -> pl.DataFrame:
    """The latest pipeline incidents (``pipeline_incidents``: e.g. an offset reset), newest first."""
    if not table_exists("pipeline_incidents"):
        return pl.DataFrame()
    sql = """
        SELECT time, component, kind, topic, partition, expected_offset, log_start, log_end, action, detail
        FROM pipeline_incidents FINAL
        ORDER BY time DESC, incident_id
        LIMIT {limit:UInt32}"""
    return frame(sql, {"limit": limit})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def pipeline_latest(start: datetime, end: datetime, fresh_seconds: int = 30) -> pl.DataFrame:
    """The latest value of every (process, metric, label) reported in the ``fresh_seconds``
    before the newest report in the range (the dataflow's current state as last reported)."""
    sql = f"""
        WITH (SELECT max(time) FROM pipeline_metrics
              WHERE time >= {{start:{_DT}}} AND time < {{end:{_DT}}}) AS newest
        SELECT process, metric, label, argMax(value, time) AS latest, max(time) AS reported_at
        FROM pipeline_metrics
        WHERE time >= newest - toIntervalSecond({{fresh:UInt32}}) AND time <= newest
        GROUP BY process, metric, label
        ORDER BY metric, label, process"""
    return frame(sql, {"start": start, "end": end, "fresh": fresh_seconds})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def service_restarts(start: datetime, end: datetime) -> pl.DataFrame:
    """Restarts of the local stack's services in the range (written by `eventpulse up`'s supervisor)."""
    sql = f"""
        SELECT label AS service, countIf(metric = 'service_restarts_total') AS restarts,
               toInt64(argMaxIf(value, time, metric = 'service_exit_status')) AS last_exit_status, max(time) AS last_exit,
               toBool(countIf(metric = 'service_gave_up') > 0) AS gave_up
        FROM pipeline_metrics
        WHERE time >= {{start:{_DT}}} AND time < {{end:{_DT}}}
          AND metric IN ('service_restarts_total', 'service_exit_status', 'service_gave_up')
        GROUP BY label
        ORDER BY restarts DESC, service"""
    return frame(sql, {"start": start, "end": end})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def pipeline_series(start: datetime, end: datetime, bucket_seconds: int, metrics: tuple[str, ...]) -> pl.DataFrame:
    """``metrics`` per bucket: each process's mean over the bucket, summed over processes."""
    sql = f"""
        SELECT bucket, metric, label, sum(v) AS value FROM (
            SELECT toDateTime64(toStartOfInterval(time, toIntervalSecond({{bucket:UInt32}})), 3, 'UTC') AS bucket,
                   process, metric, label, avg(value) AS v
            FROM pipeline_metrics
            WHERE time >= {{start:{_DT}}} AND time < {{end:{_DT}}} AND metric IN {{metrics:Array(String)}}
            GROUP BY bucket, process, metric, label
        )
        GROUP BY bucket, metric, label
        ORDER BY bucket, metric, label"""
    return frame(sql, {"start": start, "end": end, "bucket": bucket_seconds, "metrics": list(metrics)})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def late_event_summary(tenant: str, start: datetime, end: datetime) -> pl.DataFrame:
    """Late events per window family in the range: how many, how late, when last seen."""
    sql = f"""
        SELECT window_seconds, slide_seconds, uniqExact(id) AS events, count() AS window_updates_refused,
               quantile(0.5)(lateness_ms) AS lateness_p50_ms, max(lateness_ms) AS lateness_max_ms,
               max(detected_at) AS last_seen
        FROM late_events FINAL
        WHERE timestamp >= {{start:{_DT}}} AND timestamp < {{end:{_DT}}} AND {_tenant_clause()}
        GROUP BY window_seconds, slide_seconds
        ORDER BY window_seconds, slide_seconds"""
    return tenant_frame(sql, tenant, {"start": start, "end": end, "tenant": tenant})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def late_event_count(tenant: str, start: datetime, end: datetime) -> int:
    """Distinct late events (an event late for several windows counts once)."""
    sql = f"""
        SELECT uniqExact(id) AS n FROM late_events FINAL
        WHERE timestamp >= {{start:{_DT}}} AND timestamp < {{end:{_DT}}} AND {_tenant_clause()}"""
    return int(tenant_frame(sql, tenant, {"start": start, "end": end, "tenant": tenant})["n"][0])


@dataclass(frozen=True)
class Probe:
    """The answer of one HTTP status probe."""

    url: str
    ok: bool
    status: int | None
    elapsed_ms: float | None
    body: str
    error: str = ""


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def probe(url: str, timeout_s: float) -> Probe:
    """GET ``url`` with a short timeout; never raises."""
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Probe(url, False, None, None, "", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    elapsed = response.elapsed.total_seconds() * 1000
    return Probe(url, response.is_success, response.status_code, elapsed, response.text[:20_000])


# ---------------------------------------------------------------------------------- alerts


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def alert_history(tenant: str, start: datetime, end: datetime, limit: int = 500) -> pl.DataFrame:
    """Alert firings in the range, newest first (latest delivery state of each)."""
    if not table_exists("alerts"):
        return pl.DataFrame()
    sql = f"""
        SELECT fired_at, rule, severity, tenant, type, metric, value, comparison, threshold, window_seconds,
               window_start, status, delivered, attempts, last_error, message
        FROM alerts FINAL
        WHERE fired_at >= {{start:{_DT}}} AND fired_at < {{end:{_DT}}} AND {_tenant_clause()}
        ORDER BY fired_at DESC
        LIMIT {{limit:UInt32}}"""
    return tenant_frame(sql, tenant, {"start": start, "end": end, "tenant": tenant, "limit": limit})


# ---------------------------------------------------------------------------------- search


@dataclass(frozen=True)
class EventQuery:
    """What the event search looks for; empty fields do not filter."""

    start: datetime
    end: datetime
    tenant: str = ""
    text: str = ""
    event_id: str = ""
    user_id: str = ""
    event_type: str = ""
    substring: bool = False
    """Match ``text`` as a substring (LIKE, scans payloads) instead of whole tokens (index)."""


def search_tokens(text: str) -> list[str]:
    """``text`` split the way the index's ``splitByNonAlpha`` tokenizer splits payloads."""
    return [token for token in "".join(c if c.isascii() and c.isalnum() else " " for c in text).split() if token]


def _search_where(q: EventQuery, params: dict[str, Any]) -> str:
    params.update(start=q.start, end=q.end, tenant=q.tenant)
    clauses = [f"timestamp >= {{start:{_DT}}}", f"timestamp < {{end:{_DT}}}", _tenant_clause()]
    if q.event_id:
        clauses.append("id = {event_id:String}")
        params["event_id"] = q.event_id
    if q.user_id:
        clauses.append("user_id = {user_id:String}")
        params["user_id"] = q.user_id
    if q.event_type:
        clauses.append("type = {event_type:String}")
        params["event_type"] = q.event_type
    if q.text and q.substring:
        clauses.append("positionCaseInsensitive(data, {text:String}) > 0")
        params["text"] = q.text
    elif q.text:
        clauses.append("hasAllTokens(data, {tokens:Array(String)})")
        params["tokens"] = search_tokens(q.text)
    return " AND ".join(clauses)


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def search_events(q: EventQuery, page: int, page_size: int) -> pl.DataFrame:
    """One page (0-based) of matching raw events, newest first."""
    params: dict[str, Any] = {"limit": page_size, "offset": page * page_size}
    sql = f"""
        SELECT timestamp, tenant, id, type, source, user_id, latency_ms, is_error, data, extra, received_at
        FROM events FINAL
        WHERE {_search_where(q, params)}
        ORDER BY timestamp DESC, id
        LIMIT {{limit:UInt32}} OFFSET {{offset:UInt64}}"""
    return tenant_frame(sql, q.tenant, params)


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def count_events(q: EventQuery, cap: int) -> int:
    """How many raw events match, counting no further than ``cap`` (for the pager)."""
    params: dict[str, Any] = {"cap": cap}
    sql = f"SELECT count() AS n FROM (SELECT 1 FROM events FINAL WHERE {_search_where(q, params)} LIMIT {{cap:UInt64}})"
    return int(tenant_frame(sql, q.tenant, params)["n"][0])


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def event_types(tenant: str = "") -> list[str]:
    """Event types ``tenant`` sent in the last 30 days of aggregates (the search's type filter)."""
    sql = f"""SELECT DISTINCT type FROM window_aggregates
              WHERE window_start >= now64(3) - INTERVAL 30 DAY AND type != '{ALL}' ORDER BY type"""
    return tenant_frame(sql, tenant)["type"].to_list()


# ---------------------------------------------------------------------------------- SQL console


@dataclass(frozen=True)
class ConsoleResult:
    """A console query's rows (at most ``limit``) and whether more were cut off."""

    rows: pl.DataFrame
    truncated: bool
    elapsed_s: float


def readonly_settings(max_execution_s: float, max_result_rows: int, max_rows_to_read: int) -> dict[str, Any]:
    """The console's limits as ClickHouse settings (on top of the scoped path's memory limit).

    Read-only is the reader user's (the warehouse refuses its writes, DDL and ``SET`` of
    ``readonly``); the scoped path refuses ``SETTINGS`` clauses that would loosen these limits.
    """
    return {
        "max_execution_time": max_execution_s,
        "timeout_overflow_mode": "throw",
        "max_rows_to_read": max_rows_to_read,
        "read_overflow_mode": "throw",
        "max_result_rows": max_result_rows,
        "result_overflow_mode": "break",
    }


def run_readonly(
    sql: str, *, tenant: str, max_execution_s: float, max_result_rows: int, max_rows_to_read: int
) -> ConsoleResult:
    """Run a user's query scoped to ``tenant`` ("" = every tenant) under `readonly_settings`.

    Never cached: each run is explicit. Raises `eventpulse.access.statements.Refused` for a
    query the scoped path will not run (other tenants' data, files, system tables...).
    """
    import time

    started = time.perf_counter()
    reader = scoped_reader()
    scoped = reader.scoped(sql, scope_for(tenant))
    settings = reader.settings(**readonly_settings(max_execution_s, max_result_rows, max_rows_to_read))
    table = reader.client.query_arrow(scoped.sql, parameters=scoped.params, settings=settings)
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    # `break` stops at a block boundary, so a few more rows than the limit may arrive.
    return ConsoleResult(df.head(max_result_rows), df.height >= max_result_rows, time.perf_counter() - started)
