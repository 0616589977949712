"""Event search: raw events by words in their payload, id, user, type and time, page by page.

Words use the text index on ``events.data`` (``hasAllTokens``: every word must appear as a whole
token, case-sensitive); "substring" mode scans payloads instead. Id and user lookups use bloom
filter indexes. The page count stops at `COUNT_CAP` so a broad search stays cheap.
"""

import math
from datetime import timedelta

import streamlit as st

from dashboards import controls
from dashboards import formatting as fmt
from dashboards.queries import search as search_queries
from eventpulse.settings import Settings

COUNT_CAP = 10_000
ANY = "any type"
UNFILTERED_MAX = timedelta(hours=1)

settings = Settings().dashboard
picked = controls.filters()
st.title("Event search")

with st.form("search", border=True):
    text = st.text_input("Payload contains", key="q_text", placeholder="e.g. checkout 503")
    cols = st.columns([2, 2, 2, 2])
    mode = cols[0].radio("Match", ["words (indexed)", "substring"], key="q_mode", horizontal=True)
    event_id = cols[1].text_input("Event id", key="q_id")
    user_id = cols[2].text_input("User id", key="q_user")
    event_type = cols[3].selectbox("Type", [ANY, *search_queries.event_types(picked.tenant)], key="q_type")
    st.form_submit_button("Search", icon=":material/search:", type="primary")

q = search_queries.EventQuery(
    start=picked.start,
    end=picked.end,
    tenant=picked.tenant,
    text=text.strip(),
    event_id=event_id.strip(),
    user_id=user_id.strip(),
    event_type="" if event_type == ANY else event_type,
    substring=mode == "substring",
)
if q.text and not q.substring and not search_queries.search_tokens(q.text):
    st.warning("The text has no letters or digits to look up; use substring mode for punctuation.")
    st.stop()
if not (q.text or q.event_id or q.user_id) and picked.end - picked.start > UNFILTERED_MAX:
    st.info("Enter words, an event id or a user id, or pick a range of an hour or less, to list raw events.")
    st.stop()

total = search_queries.count_events(q, COUNT_CAP)
pages = max(1, math.ceil(total / settings.search_page_size))
summary = f"{fmt.count(total)}{'+' if total >= COUNT_CAP else ''} matching events"
st.caption(f"{summary} · {picked.tenant_label} · {picked.label} · newest first")
if not total:
    st.info(
        "No event matches: widen the time range in the sidebar, drop a filter, or switch to substring mode "
        "(words must match whole tokens, case-sensitive)."
    )
    st.stop()

page = st.pagination(pages, key="q_page", max_visible_pages=7) if pages > 1 else 1
rows = search_queries.search_events(q, page - 1, settings.search_page_size)
st.dataframe(
    rows,
    hide_index=True,
    key="search_results",
    column_config={
        "timestamp": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss.SSS"),
        "latency_ms": st.column_config.NumberColumn("latency (ms)", format="%.1f"),
        "is_error": st.column_config.CheckboxColumn("error"),
        "data": st.column_config.TextColumn("data", width="large"),
        "received_at": st.column_config.DatetimeColumn("received (UTC)", format="HH:mm:ss.SSS"),
    },
)
if rows.height:
    with st.expander("Payload of the first event on this page"):
        st.json(rows["data"][0])
