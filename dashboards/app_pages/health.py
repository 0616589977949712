"""Pipeline health: is data flowing, how late is it, what was refused, how is storage doing.

Tables written by other components (``pipeline_metrics``, ``late_events``, ``archive_manifests``)
may not exist yet in a given deployment; each section then says so instead of failing.
"""

import streamlit as st

from dashboards import controls, health_views
from dashboards import formatting as fmt
from dashboards.queries import health as health_queries
from eventpulse.settings import Settings

settings = Settings().dashboard
picked = controls.filters()
st.title("Pipeline health")
st.caption(f"{picked.tenant_label} · {picked.label} · probes time out after {settings.http_timeout_s:g} s")

# ---------------------------------------------------------------- services
st.subheader("Services")
gateway, warehouse = st.columns(2)
with gateway:
    health_views.gateway_status(settings.gateway_url.rstrip("/"), settings.http_timeout_s)
with warehouse:
    parts = health_queries.warehouse_parts()
    with st.container(border=True):
        st.markdown("**Warehouse**")
        if parts.is_empty():
            st.info("No data parts yet: start the pipeline with traffic (`make run`) to fill the warehouse.")
        else:
            compressed, raw = int(parts["compressed_bytes"].sum()), int(parts["uncompressed_bytes"].sum())
            top, bottom = st.columns(2), st.columns(2)
            top[0].metric("Rows", fmt.count(int(parts["rows"].sum())))
            top[1].metric("Active parts", fmt.count(int(parts["parts"].sum())))
            bottom[0].metric("On disk", fmt.size(compressed))
            bottom[1].metric("Compression", f"{raw / compressed:.1f}×" if compressed else "–")

health_views.query_cache_status()

# ---------------------------------------------------------------- stream
st.subheader("Dataflow")
health_views.pipeline_section(picked)

st.subheader("Incidents")
health_views.incidents_section()

# ---------------------------------------------------------------- refused and late
st.subheader("Dead letters and late events")
left, right = st.columns(2)
with left:
    reasons = health_queries.dead_letter_reasons(picked.tenant, picked.start, picked.end)
    total = int(reasons["letters"].sum()) if reasons.height else 0
    st.metric("Dead letters", fmt.count(total), border=True)
    if reasons.height:
        st.dataframe(
            reasons,
            hide_index=True,
            key="dead_reasons",
            column_config={"last_seen": st.column_config.DatetimeColumn("last seen (UTC)", format="MM-DD HH:mm:ss")},
        )
with right:
    health_views.late_events_section(picked)
if total:
    with st.expander("Latest dead letters"):
        st.dataframe(
            health_queries.recent_dead_letters(picked.tenant, picked.start, picked.end),
            hide_index=True,
            key="dead_recent",
        )

# ---------------------------------------------------------------- storage
st.subheader("Warehouse tables")
if parts.height:
    st.dataframe(
        parts,
        hide_index=True,
        key="parts",
        column_config={
            "rows": st.column_config.NumberColumn("rows", format="localized"),
            "compressed_bytes": st.column_config.NumberColumn("compressed", format="bytes"),
            "uncompressed_bytes": st.column_config.NumberColumn("uncompressed", format="bytes"),
            "compression_ratio": st.column_config.NumberColumn("ratio", format="%.1f×"),
            "last_modified": st.column_config.DatetimeColumn("last write (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        },
    )

st.subheader("Batch recomputes")
recomputes = health_queries.batch_recomputes()
if recomputes.is_empty():
    st.info("No batch recompute yet: days are recomputed by Dagster's daily schedule or a backfill.")
else:
    st.dataframe(
        recomputes,
        hide_index=True,
        key="batch_recomputes",
        column_config={
            "recomputed_at": st.column_config.DatetimeColumn("recomputed at (UTC)", format="YYYY-MM-DD HH:mm:ss")
        },
    )

st.subheader("Archive runs")
runs = health_queries.archive_runs()
if runs.is_empty():
    st.info("No archive runs recorded yet: Dagster's archive job writes them (run it from the Dagster UI).")
else:
    st.dataframe(runs, hide_index=True, key="archive_runs")
