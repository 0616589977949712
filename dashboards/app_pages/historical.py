"""Historical: any range in minute, hour or day buckets, against the previous period.

Buckets come from the coarsest table that covers each stretch of the range (daily and hourly
rollups, then the stream's 60 s windows; see `dashboards.sources`). Everything shown can be
downloaded as CSV or Parquet.
"""

import io
from datetime import datetime, timedelta
from typing import cast

import polars as pl
import streamlit as st

from dashboards import charts, controls, layout
from dashboards import formatting as fmt
from dashboards.queries import historical as historical_queries
from dashboards.sources import GRANULARITIES, auto_granularity, floor_to

AUTO = "auto"


def totals(series: pl.DataFrame) -> dict[str, float | None]:
    """The range's totals from its buckets (events and errors add up; latency is weighted)."""
    if series.is_empty():
        return {"events": 0, "errors": 0, "error_rate": None, "latency_avg": None, "latency_p95": None}
    # Series.sum() is typed int | float | Decimal: these columns are integer counts and float latencies
    events, errors = int(series["events"].sum()), int(series["errors"].sum())
    n = int(series["latency_count"].sum())
    weighted = float((series["latency_p95"].fill_null(0) * series["latency_count"]).sum())
    return {
        "events": events,
        "errors": errors,
        "error_rate": errors / events if events else None,
        "latency_avg": float((series["latency_avg"].fill_null(0) * series["latency_count"]).sum()) / n if n else None,
        "latency_p95": weighted / n if n else None,
    }


def downloads(df: pl.DataFrame, name: str, key: str) -> None:
    """CSV and Parquet downloads of exactly ``df``."""
    left, right, _ = st.columns([1, 1, 4])
    left.download_button(
        "CSV",
        df.write_csv(),
        f"{name}.csv",
        "text/csv",
        key=f"{key}_csv",
        icon=":material/download:",
        on_click="ignore",
    )
    buffer = io.BytesIO()
    df.write_parquet(buffer)
    right.download_button(
        "Parquet",
        buffer.getvalue(),
        f"{name}.parquet",
        "application/vnd.apache.parquet",
        key=f"{key}_parquet",
        icon=":material/download:",
        on_click="ignore",
    )


picked = controls.filters()
st.title("Historical")

bar = st.columns([2, 2, 2], vertical_alignment="bottom")
choice = bar[0].segmented_control(
    "Granularity", [AUTO, *GRANULARITIES], default=AUTO, key="hist_granularity", required=True
)
granularity = auto_granularity(picked.start, picked.end) if choice in (None, AUTO) else choice
bucket = GRANULARITIES[granularity]
compare = bar[1].toggle("Compare with previous period", value=True, key="hist_compare")

start = floor_to(picked.start, bucket)
end = (
    picked.end
    if floor_to(picked.end, bucket) == picked.end
    else floor_to(picked.end, bucket) + timedelta(seconds=bucket)
)
span = end - start
series = historical_queries.history_series(picked.tenant, start, end, bucket)
previous = historical_queries.history_series(picked.tenant, start - span, start, bucket) if compare else pl.DataFrame()

plan = historical_queries.history_plan(start, end, bucket)
st.caption(
    f"{picked.tenant_label} · {picked.label} ({start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC) · "
    f"{granularity} buckets · read from " + ", ".join(f"`{seg.table.name}`" for seg in plan)
)
if series.is_empty():
    st.info(
        f"No aggregates for {picked.tenant_label} in this range. Pick a longer time range or another tenant in the "
        "sidebar; on a fresh stack, start traffic (`make run`, or `eventpulse demo` for a week of history).",
        icon=":material/search_off:",
    )
    st.stop()
open_buckets = series.filter(pl.col("is_final") == 0)
if open_buckets.height:
    first_open = cast(datetime, open_buckets["bucket"].min())  # a non-empty Datetime column
    st.badge(
        f"Provisional from {first_open:%Y-%m-%d %H:%M} UTC: {open_buckets.height} bucket(s) still open, their numbers "
        "still growing (hollow orange points)",
        icon=":material/hourglass_top:",
        color="orange",
    )

now, before = totals(series), totals(previous) if compare else {}
kpis = layout.tiles(5)
kpis[0].metric("Events", fmt.count(now["events"]), fmt.delta_percent(now["events"], before.get("events")), border=True)
kpis[1].metric(
    "Errors", fmt.count(now["errors"]), fmt.delta_percent(now["errors"], before.get("errors")), "inverse", border=True
)
kpis[2].metric(
    "Error rate",
    fmt.percent(now["error_rate"]),
    fmt.delta_percent(now["error_rate"], before.get("error_rate")),
    "inverse",
    border=True,
)
kpis[3].metric(
    "Avg latency",
    fmt.ms(now["latency_avg"]),
    fmt.delta_percent(now["latency_avg"], before.get("latency_avg")),
    "inverse",
    border=True,
)
kpis[4].metric(
    "Latency p95 ≈",
    fmt.ms(now["latency_p95"]),
    fmt.delta_percent(now["latency_p95"], before.get("latency_p95")),
    "inverse",
    border=True,
    help="Latency-count-weighted mean of the windows' p95 (percentiles of separate windows do not merge exactly).",
)

shifted = previous.with_columns(pl.col("bucket") + span) if previous.height else previous
left, right = st.columns(2)
left.altair_chart(charts.line_with_previous(series, shifted, "events_per_s", "Events per second", "events/s"))
right.altair_chart(charts.line_with_previous(series, shifted, "error_rate", "Error rate", "error rate"))
left, right = st.columns(2)
left.altair_chart(charts.latency_lines(series, "bucket", "Latency (ms, ≈ per bucket)"))
right.altair_chart(
    charts.line_with_previous(series, shifted, "peak_users", "Distinct users (largest window in bucket)", "users")
)

st.subheader("Breakdown")
dim = (
    st.segmented_control("By", list(historical_queries.BREAKDOWNS), default="type", key="hist_dim", required=True)
    or "type"
)
breakdown = historical_queries.history_breakdown(picked.tenant, start, end, bucket, dim)
if breakdown.is_empty():
    st.info(f"No rows per {dim} in this range: pick a longer time range, or another tenant in the sidebar.")
else:
    left, right = st.columns([2, 3])
    left.altair_chart(charts.top_bars(breakdown.head(15), dim, f"Events by {dim}"))
    right.dataframe(
        breakdown,
        hide_index=True,
        key="hist_breakdown",
        column_config={
            "events": st.column_config.NumberColumn("events", format="localized"),
            "errors": st.column_config.NumberColumn("errors", format="localized"),
            "error_rate": st.column_config.NumberColumn("error rate", format="percent"),
            "latency_count": None,
            "latency_avg": st.column_config.NumberColumn("avg latency (ms)", format="%.1f"),
            "latency_p95": st.column_config.NumberColumn("p95 ≈ (ms)", format="%.1f"),
            "share": st.column_config.ProgressColumn("share", format="percent", min_value=0, max_value=1),
        },
    )
    downloads(breakdown, f"eventpulse-by-{dim}-{start:%Y%m%d%H%M}", "dl_breakdown")

with st.expander("Buckets", expanded=False):
    st.dataframe(series, hide_index=True, key="hist_series")
    downloads(series, f"eventpulse-{granularity}-{start:%Y%m%d%H%M}", "dl_series")
