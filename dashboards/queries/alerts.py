"""The alerts page's query: the firing history of the alert rules."""

from datetime import datetime

import polars as pl
import streamlit as st

from dashboards.queries.client import DT, STATUS_TTL, table_exists, tenant_clause, tenant_frame


@st.cache_data(ttl=STATUS_TTL, show_spinner=False)
def alert_history(tenant: str, start: datetime, end: datetime, limit: int = 500) -> pl.DataFrame:
    """Alert firings in the range, newest first (latest delivery state of each)."""
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
