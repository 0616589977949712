"""The event search's queries: the one read over raw events, paginated, bounded by time and backed by
the text index of migration 0040."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
import streamlit as st

from dashboards.queries.client import DT, LIST_TTL, STATUS_TTL, tenant_clause, tenant_frame
from eventpulse.aggregation.spec import ALL


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
    clauses = [f"timestamp >= {{start:{DT}}}", f"timestamp < {{end:{DT}}}", tenant_clause()]
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
