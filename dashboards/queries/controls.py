"""The sidebar's choices (`dashboards.controls`)."""

import streamlit as st

from dashboards.queries.client import LIST_TTL, frame
from eventpulse.aggregation.spec import grouping_filter


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def tenants() -> list[str]:
    """Tenants seen in the aggregates of the last 30 days (the selector's choices)."""
    sql = f"""
        SELECT DISTINCT tenant FROM window_aggregates
        WHERE window_start >= now64(3) - INTERVAL 30 DAY AND {grouping_filter()}
        ORDER BY tenant"""
    return frame(sql)["tenant"].to_list()
