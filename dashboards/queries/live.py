"""The live page's queries: the latest tumbling windows and the top types and sources over them."""

from datetime import datetime

import polars as pl
import streamlit as st

from dashboards.queries.client import DT, LIVE_TTL, frame, tenant_clause, tenant_frame
from eventpulse.aggregation.spec import ALL, grouping_filter


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def window_lengths(start: datetime, end: datetime) -> list[int]:
    """Tumbling window lengths (s) present in ``window_aggregates`` for windows in the range."""
    sql = f"""
        SELECT DISTINCT window_seconds FROM window_aggregates
        WHERE window_start >= {{start:{DT}}} AND window_start < {{end:{DT}}}
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
          AND window_start >= {{start:{DT}}} AND window_start < {{end:{DT}}}
          AND type = '{ALL}' AND source = '{ALL}' AND {tenant_clause()}"""
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
          AND window_start >= {{start:{DT}}} AND window_start < {{end:{DT}}}
          AND {grouping_filter(("type", "source"))} AND {tenant_clause()}
        GROUP BY {dim}
        ORDER BY events DESC, {dim}
        LIMIT {{limit:UInt32}}"""
    return tenant_frame(
        sql, tenant, {"ws": window_seconds, "start": start, "end": end, "tenant": tenant, "limit": limit}
    )
