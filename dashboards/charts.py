"""Altair charts shared by the pages (time series, latency bands, breakdown bars).

Every time axis and tooltip is UTC on a 24-hour clock (`time_x`, `time_tooltip`): Vega-Lite's defaults are
the browser's time zone and a 12-hour clock without AM/PM.
"""

import altair as alt
import polars as pl

FINAL_COLOR = "#2563eb"
PROVISIONAL_COLOR = "#f59e0b"
PREVIOUS_COLOR = "#94a3b8"
STATUS_SCALE = alt.Scale(domain=["final", "provisional"], range=[FINAL_COLOR, PROVISIONAL_COLOR])
LATENCY_SCALE = alt.Scale(domain=["p50", "p95", "p99"], range=["#16a34a", "#f59e0b", "#dc2626"])
# A tick at midnight names the day; every other tick is HH:MM (seconds only where the ticks are that close).
TIME_LABELS = (
    "utcFormat(datum.value, '%H:%M:%S') == '00:00:00' ? utcFormat(datum.value, '%b %d')"
    " : utcFormat(datum.value, '%S') != '00' ? utcFormat(datum.value, '%H:%M:%S') : utcFormat(datum.value, '%H:%M')"
)


def time_x(field: str) -> alt.X:
    """A UTC time axis labelled on a 24-hour clock."""
    return alt.X(f"{field}:T", title=None, scale=alt.Scale(type="utc"), axis=alt.Axis(labelExpr=TIME_LABELS))


def time_tooltip(field: str, seconds: bool = True) -> alt.Tooltip:
    """A tooltip line for ``field`` in UTC, 24-hour (``2026-12-06 14:05:10``)."""
    if seconds:
        return alt.Tooltip(
            f"{field}:T", timeUnit="utcyearmonthdatehoursminutesseconds", format="%Y-%m-%d %H:%M:%S", title="time (UTC)"
        )
    return alt.Tooltip(
        f"{field}:T", timeUnit="utcyearmonthdatehoursminutes", format="%Y-%m-%d %H:%M", title="time (UTC)"
    )


def with_status(df: pl.DataFrame) -> pl.DataFrame:
    """Add a ``status`` column ("final" / "provisional") from ``is_final``."""
    return df.with_columns(
        pl.when(pl.col("is_final") == 1).then(pl.lit("final")).otherwise(pl.lit("provisional")).alias("status")
    )


def rate_bars(df: pl.DataFrame, x: str, y: str, title: str, y_title: str, height: int = 220) -> alt.Chart:
    """One bar per window, as wide as the window; provisional (still open) windows in another colour."""
    data = with_status(df).select(x, "window_end", y, "status")
    return (
        alt.Chart(data, title=title, height=height)
        .mark_bar(opacity=0.9, stroke="white", strokeWidth=0.5)
        .encode(
            x=time_x(x),
            x2="window_end:T",
            y=alt.Y(f"{y}:Q", title=y_title),
            y2=alt.datum(0),
            color=alt.Color("status:N", scale=STATUS_SCALE, legend=alt.Legend(orient="top", title=None)),
            tooltip=[time_tooltip(x), alt.Tooltip(f"{y}:Q", format=",.1f"), "status:N"],
        )
    )


def latency_lines(df: pl.DataFrame, x: str, title: str = "Latency (ms)", height: int = 220) -> alt.Chart:
    """p50 / p95 / p99 lines; provisional windows drawn as hollow points."""
    cols = {"latency_p50": "p50", "latency_p95": "p95", "latency_p99": "p99"}
    data = (
        with_status(df)
        .select(x, "status", *cols)
        .rename(cols)
        .unpivot(index=[x, "status"], variable_name="percentile", value_name="ms")
        .drop_nulls("ms")
    )
    base = alt.Chart(data, title=title, height=height).encode(
        x=time_x(x),
        y=alt.Y("ms:Q", title="ms"),
        color=alt.Color("percentile:N", scale=LATENCY_SCALE, legend=alt.Legend(orient="top", title=None)),
        tooltip=[
            time_tooltip(x),
            "percentile:N",
            alt.Tooltip("ms:Q", format=",.1f"),
            "status",
        ],
    )
    points = base.mark_point(size=30, filled=False).encode(
        opacity=alt.condition(alt.datum.status == "provisional", alt.value(1), alt.value(0))
    )
    return base.mark_line(interpolate="monotone") + points


def line_with_previous(
    current: pl.DataFrame, previous: pl.DataFrame, y: str, title: str, y_title: str
) -> alt.Chart | alt.LayerChart:
    """``y`` over time, with the previous period shifted onto the same axis as a dashed line; buckets of
    the current period that are still open (``is_final`` 0) get a hollow orange "provisional" point."""
    frames = [current.select("bucket", y).with_columns(pl.lit("this period").alias("period"))]
    if previous.height:
        frames.append(previous.select("bucket", y).with_columns(pl.lit("previous period").alias("period")))
    data = pl.concat(frames)
    lines = (
        alt.Chart(data, title=title, height=240)
        .mark_line(interpolate="monotone", point=alt.OverlayMarkDef(size=12))
        .encode(
            x=time_x("bucket"),
            y=alt.Y(f"{y}:Q", title=y_title),
            color=alt.Color(
                "period:N",
                scale=alt.Scale(domain=["this period", "previous period"], range=[FINAL_COLOR, PREVIOUS_COLOR]),
                legend=alt.Legend(orient="top", title=None),
            ),
            strokeDash=alt.StrokeDash(
                "period:N",
                scale=alt.Scale(domain=["this period", "previous period"], range=[[1, 0], [5, 4]]),
                legend=None,
            ),
            tooltip=[
                time_tooltip("bucket", seconds=False),
                "period:N",
                alt.Tooltip(f"{y}:Q", format=",.3f"),
            ],
        )
    )
    open_buckets = with_status(current).filter(pl.col("status") == "provisional").select("bucket", y, "status")
    if open_buckets.is_empty():
        return lines
    marks = (
        alt.Chart(open_buckets)
        .mark_point(size=90, filled=False, strokeWidth=2, color=PROVISIONAL_COLOR)
        .encode(x=time_x("bucket"), y=f"{y}:Q", tooltip=[time_tooltip("bucket", seconds=False), "status:N"])
    )
    return lines + marks


def top_bars(df: pl.DataFrame, dim: str, title: str) -> alt.Chart:
    """Horizontal bars of events per ``dim`` value, largest first, every label shown."""
    return (
        alt.Chart(df.select(dim, "events", "error_rate"), title=title, height=alt.Step(22))
        .mark_bar(color=FINAL_COLOR, cornerRadiusEnd=3)
        .encode(
            x=alt.X("events:Q", title="events"),
            y=alt.Y(f"{dim}:N", sort="-x", title=None, axis=alt.Axis(labelLimit=160)),
            tooltip=[f"{dim}:N", alt.Tooltip("events:Q", format=","), alt.Tooltip("error_rate:Q", format=".2%")],
        )
    )


def lag_bars(df: pl.DataFrame) -> alt.Chart:
    """Consumer lag (messages) per partition."""
    return (
        alt.Chart(df, title="Consumer lag per partition", height=200)
        .mark_bar(color=PROVISIONAL_COLOR)
        .encode(
            x=alt.X("partition:N", title="partition", sort="ascending"),
            # whole messages: an all-zero lag would otherwise get ticks like 0.000000
            y=alt.Y(
                "lag:Q",
                title="messages",
                scale=alt.Scale(domainMin=0, domainMax=max(1, *df["lag"].fill_null(0).to_list())),
                axis=alt.Axis(format=",d", tickMinStep=1),
            ),
            tooltip=["partition:N", alt.Tooltip("lag:Q", format=",")],
        )
    )


def throughput_lines(df: pl.DataFrame) -> alt.Chart:
    """Events per second consumed and written by the dataflow."""
    names = {"events_in_per_s": "in", "events_out_per_s": "out"}
    data = df.with_columns(pl.col("metric").replace_strict(names, default=pl.col("metric")).alias("direction"))
    return (
        alt.Chart(data.select("bucket", "direction", "value"), title="Dataflow throughput", height=220)
        .mark_line(interpolate="monotone")
        .encode(
            x=time_x("bucket"),
            y=alt.Y("value:Q", title="events/s"),
            color=alt.Color(
                "direction:N",
                scale=alt.Scale(domain=["in", "out"], range=[FINAL_COLOR, "#16a34a"]),
                legend=alt.Legend(orient="top", title=None),
            ),
            tooltip=[time_tooltip("bucket"), "direction:N", alt.Tooltip("value:Q", format=",.1f")],
        )
    )
