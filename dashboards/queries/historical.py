"""The historical page's queries: series and breakdowns over the coarsest aggregate tables that answer
(`dashboards.sources.plan_sources`)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl
import streamlit as st

from dashboards.queries.client import DT, HISTORY_TTL, client, tenant_clause, tenant_frame
from dashboards.sources import TABLES, Segment, as_utc, plan_sources
from eventpulse.aggregation.spec import ALL, grouping_filter

BREAKDOWNS = ("type", "source", "tenant")
"""What a breakdown may group by."""


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
              AND window_start >= {{s{i}:{DT}}} AND window_start < {{e{i}:{DT}}} AND {where}"""
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
    rows = _segments_sql(segments, _ROW_COLUMNS, f"type = '{ALL}' AND source = '{ALL}' AND {tenant_clause()}", params)
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
    rows_filter = grouping_filter(() if dim == "tenant" else ("type", "source"))
    rows = _segments_sql(segments, _ROW_COLUMNS, f"{rows_filter} AND {tenant_clause()}", params)
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
