"""The pipeline health page's queries: dead letters, late events, storage, archives, recomputes, the
dataflow's reported metrics and the local stack's restarts."""

from datetime import datetime

import polars as pl
import streamlit as st

from dashboards.queries.client import DT, STATUS_TTL, frame, table_exists, tenant_clause, tenant_frame


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def dead_letter_reasons(tenant: str, start: datetime, end: datetime) -> pl.DataFrame:
    """Dead letters per stage and reason in the range."""
    sql = f"""
        SELECT stage, reason, count() AS letters, max(received_at) AS last_seen
        FROM dead_letters FINAL
        WHERE received_at >= {{start:{DT}}} AND received_at < {{end:{DT}}} AND {tenant_clause()}
        GROUP BY stage, reason
        ORDER BY letters DESC, stage, reason"""
    return tenant_frame(sql, tenant, {"start": start, "end": end, "tenant": tenant})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def recent_dead_letters(tenant: str, start: datetime, end: datetime, limit: int = 20) -> pl.DataFrame:
    sql = f"""
        SELECT received_at, tenant, stage, reason, field, detail, topic_partition, topic_offset,
               substring(payload, 1, 200) AS payload
        FROM dead_letters FINAL
        WHERE received_at >= {{start:{DT}}} AND received_at < {{end:{DT}}} AND {tenant_clause()}
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
              WHERE time >= {{start:{DT}}} AND time < {{end:{DT}}}) AS newest
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
        WHERE time >= {{start:{DT}}} AND time < {{end:{DT}}}
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
            WHERE time >= {{start:{DT}}} AND time < {{end:{DT}}} AND metric IN {{metrics:Array(String)}}
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
        WHERE timestamp >= {{start:{DT}}} AND timestamp < {{end:{DT}}} AND {tenant_clause()}
        GROUP BY window_seconds, slide_seconds
        ORDER BY window_seconds, slide_seconds"""
    return tenant_frame(sql, tenant, {"start": start, "end": end, "tenant": tenant})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def late_event_count(tenant: str, start: datetime, end: datetime) -> int:
    """Distinct late events (an event late for several windows counts once)."""
    sql = f"""
        SELECT uniqExact(id) AS n FROM late_events FINAL
        WHERE timestamp >= {{start:{DT}}} AND timestamp < {{end:{DT}}} AND {tenant_clause()}"""
    return int(tenant_frame(sql, tenant, {"start": start, "end": end, "tenant": tenant})["n"][0])
