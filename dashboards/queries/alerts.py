"""The alerts page's queries: episodes, silences and notifications (operator tables, `frame`), and the
pre-episode firing history of the ``alerts`` table (consumer lag and pipeline incidents, `tenant_frame`)."""

from datetime import datetime

import polars as pl
import streamlit as st

from dashboards.queries.client import DT, STATUS_TTL, frame, table_exists, tenant_clause, tenant_frame

_EPISODES = """
    SELECT episode_id, rule, severity, status, opened_at, resolved_at, tenants, series, peak_value, threshold,
           notifications, notified_at, escalated_at, message,
           a.first_by AS acked_by, a.first_at AS acked_at
    FROM (SELECT * FROM alert_episodes FINAL) AS e
    LEFT JOIN (SELECT episode_id, min(acked_at) AS first_at, argMin(acked_by, acked_at) AS first_by
               FROM alert_acks GROUP BY episode_id) AS a USING (episode_id)
    WHERE (status = 'firing' OR (opened_at < {end:DT} AND coalesce(resolved_at, opened_at) >= {start:DT}))
      AND ({tenant:String} = '' OR has(tenants, {tenant:String}))
    ORDER BY status = 'firing' DESC, opened_at DESC
    LIMIT {limit:UInt32}""".replace(":DT}", f":{DT}}}")


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def episodes(tenant: str, start: datetime, end: datetime, limit: int = 500) -> pl.DataFrame:
    """Open episodes, and those of the range, open ones first (with who acknowledged them)."""
    if not table_exists("alert_episodes"):
        return pl.DataFrame()
    return frame(_EPISODES, {"tenant": tenant, "start": start, "end": end, "limit": limit})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def silences(now: datetime) -> pl.DataFrame:
    """Silences active at ``now``, latest end first."""
    if not table_exists("alert_silences"):
        return pl.DataFrame()
    sql = f"""
        SELECT silence_id, rule, tenant, starts_at, ends_at, created_by, reason
        FROM (SELECT * FROM alert_silences FINAL)
        WHERE starts_at <= {{now:{DT}}} AND ends_at > {{now:{DT}}} ORDER BY ends_at DESC"""
    return frame(sql, {"now": now})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def notifications(start: datetime, end: datetime, limit: int = 200) -> pl.DataFrame:
    """Notifications sent (or tried) in the range, newest first."""
    if not table_exists("alert_notifications"):
        return pl.DataFrame()
    sql = f"""
        SELECT sent_at, episode_id, rule, kind, channel, destination, ok, attempts, error FROM alert_notifications
        WHERE sent_at >= {{start:{DT}}} AND sent_at < {{end:{DT}}} ORDER BY sent_at DESC LIMIT {{limit:UInt32}}"""
    return frame(sql, {"start": start, "end": end, "limit": limit})


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def alert_history(tenant: str, start: datetime, end: datetime, limit: int = 500) -> pl.DataFrame:
    """Pipeline alerts (consumer lag, incidents) in the range, newest first (latest delivery state of each)."""
    if not table_exists("alerts"):
        return pl.DataFrame()
    sql = f"""
        SELECT fired_at, rule, severity, tenant, type, metric, value, comparison, threshold, window_seconds,
               window_start, status, delivered, attempts, last_error, message
        FROM alerts FINAL
        WHERE fired_at >= {{start:{DT}}} AND fired_at < {{end:{DT}}} AND {tenant_clause()}
        ORDER BY fired_at DESC
        LIMIT {{limit:UInt32}}"""
    return tenant_frame(sql, tenant, {"start": start, "end": end, "tenant": tenant, "limit": limit})


def clear() -> None:
    """Forget cached results after an acknowledgement or a silence, so the page shows it at once."""
    for query in (episodes, silences, notifications):
        query.clear()
