"""Sections of the health page that depend on other components (gateway, dataflow metrics)."""

import json
from datetime import datetime
from typing import Literal, cast

import polars as pl
import streamlit as st

from dashboards import charts, layout
from dashboards import formatting as fmt
from dashboards.controls import Filters, utc_now
from dashboards.queries import client as query_client
from dashboards.queries import health as health_queries
from dashboards.queries.probe import probe


def parse_metrics(body: str) -> pl.DataFrame:
    """Gateway metrics as rows of (metric, value): JSON objects are flattened, Prometheus text
    exposition is read line by line (``name{labels} value``); anything else gives no rows."""
    rows: list[tuple[str, float]] = []
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        stack = [("", doc)]
        while stack:
            prefix, node = stack.pop()
            for key, value in node.items():
                name = f"{prefix}.{key}" if prefix else str(key)
                if isinstance(value, dict):
                    stack.append((name, value))
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    rows.append((name, float(value)))
    elif doc is None:
        for line in body.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            try:
                rows.append((name.strip(), float(value)))
            except ValueError:
                continue
    return pl.DataFrame(rows, schema={"metric": pl.String, "value": pl.Float64}, orient="row").sort("metric")


def gateway_status(base_url: str, timeout_s: float) -> None:
    """Readiness and metrics of the ingestion gateway."""
    ready = probe(f"{base_url}/api/health/ready", timeout_s)
    with st.container(border=True):
        head = st.container(horizontal=True, vertical_alignment="center")
        head.markdown("**Gateway**")
        if ready.ok:
            head.badge("ready", icon=":material/check_circle:", color="green")
        elif ready.status is not None:
            head.badge(f"not ready (HTTP {ready.status})", icon=":material/error:", color="orange")
        else:
            head.badge("unreachable", icon=":material/cloud_off:", color="red")
        head.caption(f"`{base_url}`" + (f" · {ready.elapsed_ms:.0f} ms" if ready.elapsed_ms is not None else ""))
        if ready.error:
            st.caption(ready.error)
        elif not ready.ok and ready.body:
            st.code(ready.body[:500])
        if ready.status is None:
            return
        shared_state_line("Rate limits and ids", gateway_shared_state(base_url, timeout_s))
        metrics = probe(f"{base_url}/api/metrics", timeout_s)
        if not metrics.ok:
            st.caption(f"Metrics: {metrics.error or f'HTTP {metrics.status}'}")
            return
        table = parse_metrics(metrics.body)
        if table.is_empty():
            st.caption("Metrics: no numeric values in the response.")
        else:
            st.dataframe(table, hide_index=True, height=200, key="gateway_metrics")


_MODE_BADGES: dict[str, tuple[str, str, Literal["green", "orange", "gray"]]] = {
    "redis": ("shared (Redis)", ":material/hub:", "green"),
    "degraded": ("per process: Redis unreachable", ":material/warning:", "orange"),
    "local": ("per process: no Redis", ":material/info:", "gray"),
}


def gateway_shared_state(base_url: str, timeout_s: float) -> dict[str, str]:
    """What the gateway's ``/api/health`` says about its shared state ({} when it says nothing)."""
    health = probe(f"{base_url}/api/health", timeout_s)
    try:
        return json.loads(health.body).get("shared_state") or {}
    except (ValueError, AttributeError):
        return {}


def shared_state_line(label: str, state: dict[str, str]) -> None:
    """One line: ``label``, a badge for the mode (redis / degraded / local) and its detail."""
    mode = state.get("mode")
    if mode not in _MODE_BADGES:
        return
    text, icon, color = _MODE_BADGES[mode]
    line = st.container(horizontal=True, vertical_alignment="center")
    line.caption(label)
    line.badge(text, icon=icon, color=color)
    st.caption(state.get("detail", ""))


def query_cache_status() -> None:
    """The dashboards' own query cache: where it lives, its hit ratio and latencies (this process)."""
    cache = query_client.query_cache()
    stats = cache.stats()
    with st.container(border=True):
        st.markdown("**Query cache**")
        detail = {
            "redis": "results shared by every dashboard process through Redis, keyed by the data version",
            "degraded": "Redis unreachable: queries run uncached until it answers",
            "local": "no Redis (EVENTPULSE_REDIS_URL is empty): each process caches on its own (Streamlit's cache)",
        }[cache.mode]
        shared_state_line("Query results", {"mode": str(stats["mode"]), "detail": detail})
        cols = st.columns(3)
        ratio = stats["hit_ratio"]
        cols[0].metric("Hit ratio", "–" if ratio is None else f"{float(ratio):.0%}")
        hit, miss = stats["hit_p50_ms"], stats["miss_p50_ms"]
        cols[1].metric("Hit p50", "–" if hit is None else fmt.ms(float(hit)))
        cols[2].metric("Miss p50", "–" if miss is None else fmt.ms(float(miss)))
        st.caption(
            f"{stats['hits']} hits, {stats['misses']} misses, {stats['bypassed']} uncached,"
            f" {stats['errors']} Redis errors (this process)"
        )


RATES = ("events_in_per_s", "events_out_per_s", "window_rows_per_s", "dead_letters_per_s", "late_events_per_s")
SAMPLED = ("processing_latency_ms", "freshness_event_ms", "freshness_broker_ms")


def pipeline_snapshot(latest: pl.DataFrame) -> dict[str, float | None]:
    """Headline numbers from the latest report of each process: rates add up over processes,
    lag is the latest report per partition summed, delays and percentiles are the worst process."""

    def pick(metric: str, how: str) -> float | None:
        rows = latest.filter(pl.col("metric") == metric)
        if rows.is_empty():
            return None
        if how == "sum_by_label":  # the newest report of each partition, whichever process made it
            rows = rows.sort("reported_at").group_by("label").agg(pl.col("latest").last())
            return float(rows["latest"].sum())
        value = rows["latest"].sum() if how == "sum" else rows["latest"].max()
        return float(value)  # type: ignore[arg-type]  # a non-empty Float64 column: a float

    out = {rate: pick(rate, "sum") for rate in RATES}
    out["consumer_lag"] = pick("consumer_lag", "sum_by_label")
    out["watermark_delay_ms"] = pick("watermark_delay_ms", "max")
    for name in SAMPLED:
        for p in ("p50", "p95", "p99"):
            out[f"{name}_{p}"] = pick(f"{name}_{p}", "max")
    return out


def service_restarts(picked: Filters) -> None:
    """Services of the local stack that crashed and were restarted in the range (nothing if none)."""
    restarts = health_queries.service_restarts(picked.start, picked.end)
    if restarts.is_empty():
        return
    gave_up = restarts.filter(pl.col("gave_up"))["service"].to_list()
    text = f"{int(restarts['restarts'].sum())} service restart(s) in this range" + (
        f"; gave up on {', '.join(gave_up)}" if gave_up else ""
    )
    (st.error if gave_up else st.warning)(text, icon=":material/restart_alt:")
    st.dataframe(
        restarts,
        hide_index=True,
        key="service_restarts",
        column_config={"last_exit": st.column_config.DatetimeColumn("last exit (UTC)", format="MM-DD HH:mm:ss")},
    )


def pipeline_section(picked: Filters) -> None:
    """The dataflow's own metrics (``pipeline_metrics``), or a note that there are none yet."""
    if not query_client.table_exists("pipeline_metrics"):
        st.info(
            "No pipeline metrics yet: this warehouse has no `pipeline_metrics` table (the dataflow's "
            "migration has not been applied). Consumer lag, throughput and watermark delay appear here once it is."
        )
        return
    service_restarts(picked)
    latest = health_queries.pipeline_latest(picked.start, picked.end)
    if latest.is_empty():
        st.info("No pipeline metrics in this range: start the dataflow (`make run`), or pick a longer time range.")
        return
    snap = pipeline_snapshot(latest)
    last = cast(datetime, latest["reported_at"].max())  # a non-empty Datetime column
    age = (utc_now() - last).total_seconds()
    head = st.container(horizontal=True, vertical_alignment="center")
    head.badge(
        f"last report {fmt.moment(last)} UTC ({age:,.0f} s ago)",
        icon=":material/schedule:",
        color="green" if age < 60 else "orange",
    )
    head.caption(f"{latest['process'].n_unique()} flow process(es)")
    kpis = layout.tiles(6)
    kpis[0].metric("Throughput in", f"{fmt.rate(snap['events_in_per_s'])}/s", border=True)
    kpis[1].metric("Throughput out", f"{fmt.rate(snap['events_out_per_s'])}/s", border=True)
    kpis[2].metric("Consumer lag", fmt.count(snap["consumer_lag"]), border=True, help="Messages, all partitions.")
    kpis[3].metric("Watermark delay", fmt.ms(snap["watermark_delay_ms"]), border=True)
    kpis[4].metric(
        "Freshness p95", fmt.ms(snap["freshness_event_ms_p95"]), border=True, help="Event time → row visible."
    )
    kpis[5].metric(
        "Processing p95", fmt.ms(snap["processing_latency_ms_p95"]), border=True, help="Consumed → window updated."
    )

    left, right = st.columns(2)
    lag = (
        latest.filter(pl.col("metric") == "consumer_lag")
        .sort("reported_at")
        .group_by("label")
        .agg(pl.col("latest").last())
    )
    if lag.height:
        left.altair_chart(charts.lag_bars(lag.rename({"label": "partition", "latest": "lag"})))
    percentiles = pl.DataFrame(
        [
            {"measure": name, **{p: snap[f"{name}_{p}"] for p in ("p50", "p95", "p99")}}
            for name in SAMPLED
            if snap[f"{name}_p50"] is not None
        ]
    )
    if percentiles.height:
        right.markdown("**Latency percentiles (ms)**")
        right.dataframe(percentiles, hide_index=True, key="pipeline_percentiles")

    span = (picked.end - picked.start).total_seconds()
    bucket = max(10, int(span // 120) // 10 * 10)
    series = health_queries.pipeline_series(picked.start, picked.end, bucket, ("events_in_per_s", "events_out_per_s"))
    if series.height:
        st.altair_chart(charts.throughput_lines(series))


def late_events_section(picked: Filters) -> None:
    """Late events per window family (``late_events``), or a note that there are none yet."""
    if not query_client.table_exists("late_events"):
        st.metric("Late events", "–", border=True)
        st.caption("No `late_events` table yet: the dataflow records events past the allowed lateness there.")
        return
    count = health_queries.late_event_count(picked.tenant, picked.start, picked.end)
    st.metric(
        "Late events", fmt.count(count), border=True, help="Past the allowed lateness: a backfill repairs their day."
    )
    if count:
        st.dataframe(
            health_queries.late_event_summary(picked.tenant, picked.start, picked.end), hide_index=True, key="late"
        )


def incidents_section() -> None:
    """Recent pipeline incidents (offset resets, invalid positions), or a note that there are none."""
    incidents = health_queries.pipeline_incidents()
    if incidents.is_empty():
        st.success("No pipeline incidents recorded.")
        return
    st.metric("Incidents", fmt.count(incidents.height), border=True, help="The latest ones, newest first.")
    st.dataframe(
        incidents,
        hide_index=True,
        key="incidents",
        column_config={"time": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss")},
    )
