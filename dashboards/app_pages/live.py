"""Live: the last minutes of traffic, refreshed every couple of seconds.

Reads tenant-wide rows of the shortest tumbling window in ``window_aggregates FINAL``. The
headline numbers are those of the latest closed window (the latest open one when none has
closed yet, marked provisional); windows still open are drawn in another colour.
"""

from datetime import timedelta

import polars as pl
import streamlit as st

from dashboards import charts, controls, layout
from dashboards import formatting as fmt
from dashboards.queries import live as live_queries
from dashboards.sources import floor_to
from eventpulse.settings import Settings

LOOKBACKS = {"5 min": 5, "15 min": 15, "1 hour": 60}


def current_window(windows: pl.DataFrame) -> dict:
    """The window the headline numbers describe: the latest final one, else the latest."""
    final = windows.filter(pl.col("is_final") == 1)
    return (final if final.height else windows).row(-1, named=True)


settings = Settings().dashboard
picked = controls.filters()
st.title("Live")

default_lookback = next((k for k, v in LOOKBACKS.items() if v == settings.live_lookback_minutes), "15 min")
bar = st.columns([3, 2, 2], vertical_alignment="bottom")
lookback_label = bar[0].segmented_control(
    "Show the last", list(LOOKBACKS), default=default_lookback, key="live_lookback", required=True
)
lookback = LOOKBACKS[lookback_label or default_lookback]
paused = bar[2].toggle("Pause refresh", key="live_paused", help=f"Refreshes every {settings.refresh_seconds:g} s.")

now = controls.utc_now().replace(microsecond=0)
lengths = live_queries.window_lengths(
    floor_to(now, 60) - timedelta(minutes=lookback), floor_to(now, 60) + timedelta(minutes=2)
)
if not lengths:
    st.info(
        f"No windows in the last {lookback} minutes yet. Start the stack with traffic (`make run`, or "
        "`eventpulse up --traffic`), or send events to the gateway; this page refreshes on its own.",
        icon=":material/hourglass_empty:",
    )

    @st.fragment(run_every=None if paused else settings.refresh_seconds)
    def wait_for_windows() -> None:
        """Check again every refresh period; draw the page once windows exist."""
        now = controls.utc_now()
        if live_queries.window_lengths(
            floor_to(now, 60) - timedelta(minutes=lookback), floor_to(now, 60) + timedelta(minutes=2)
        ):
            st.rerun(scope="app")

    wait_for_windows()
    st.stop()
window_seconds = bar[1].selectbox(
    "Window", lengths, format_func=lambda s: f"{s} s windows", key="live_window", label_visibility="collapsed"
)


@st.fragment(run_every=None if paused else settings.refresh_seconds)
def live_panel(tenant: str, window_seconds: int, lookback: int) -> None:
    now = controls.utc_now().replace(microsecond=0)
    start, end = now - timedelta(minutes=lookback), now + timedelta(seconds=window_seconds)
    windows = live_queries.live_windows(tenant, window_seconds, start, end)
    if windows.is_empty():
        st.info(
            f"No {window_seconds} s windows for {tenant or 'any tenant'} in the last {lookback} minutes: pick a longer "
            "span above, another window length or another tenant in the sidebar."
        )
        return
    current = current_window(windows)
    state = "final" if current["is_final"] else "provisional"
    provisional = windows.filter(pl.col("is_final") == 0).height

    head = st.container(horizontal=True, vertical_alignment="center")
    head.badge(
        f"Window {fmt.moment(current['window_start'])}–{fmt.moment(current['window_end'])} UTC · {state}",
        icon=":material/check_circle:" if state == "final" else ":material/hourglass_top:",
        color="green" if state == "final" else "orange",
    )
    if provisional:
        head.badge(f"{provisional} provisional window(s), still open", icon=":material/schedule:", color="orange")
    head.caption(
        f"{tenant or controls.ALL_TENANTS} · {window_seconds} s windows · "
        f"updated {fmt.moment(now)} UTC" + (" · paused" if paused else "")
    )

    spark = windows.tail(30)
    kpis = layout.tiles(6)
    kpis[0].metric(
        "Events/s", fmt.rate(current["events_per_s"]), chart_data=spark["events_per_s"].to_list(), border=True
    )
    kpis[1].metric(
        "Error rate", fmt.percent(current["error_rate"]), chart_data=spark["error_rate"].to_list(), border=True
    )
    kpis[2].metric(
        "Distinct users",
        fmt.count(current["distinct_users"]),
        chart_data=spark["distinct_users"].to_list(),
        border=True,
        help="Users seen in the window (summed over tenants: a user belongs to one tenant).",
    )
    for col, q in zip(kpis[3:], ("p50", "p95", "p99"), strict=True):
        col.metric(
            f"Latency {q}",
            fmt.ms(current[f"latency_{q}"]),
            chart_data=spark[f"latency_{q}"].fill_null(0).to_list(),
            border=True,
            help=None if tenant else "All tenants: latency-weighted mean of the tenants' percentiles.",
        )

    total_events, total_errors = int(windows["events"].sum()), int(windows["errors"].sum())
    st.caption(
        f"Last {lookback} min: **{fmt.count(total_events)}** events, **{fmt.count(total_errors)}** errors "
        f"({fmt.percent(total_errors / total_events if total_events else 0)}), {windows.height} windows."
    )

    left, right = st.columns(2)
    left.altair_chart(charts.rate_bars(windows, "window_start", "events_per_s", "Events per second", "events/s"))
    right.altair_chart(charts.latency_lines(windows, "window_start"))
    left, right = st.columns(2)
    left.altair_chart(charts.rate_bars(windows, "window_start", "error_rate", "Error rate", "error rate"))
    right.altair_chart(charts.rate_bars(windows, "window_start", "distinct_users", "Distinct users", "users"))

    left, right = st.columns(2)
    for col, dim in ((left, "type"), (right, "source")):
        top = live_queries.live_top(tenant, window_seconds, start, end, dim)
        if top.is_empty():
            col.info(f"No {dim} breakdown yet: it appears with the first events that name a {dim}.")
            continue
        col.altair_chart(charts.top_bars(top, dim, f"Top event {dim}s (last {lookback} min)"))
        col.expander("Table").dataframe(
            top.select(dim, "events", "error_rate"),
            hide_index=True,
            key=f"live_top_{dim}",
            column_config={
                "events": st.column_config.NumberColumn("events", format="localized"),
                "error_rate": st.column_config.NumberColumn("error rate", format="percent"),
            },
        )


live_panel(picked.tenant, window_seconds, lookback)
