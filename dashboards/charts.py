"""Altair charts shared by the pages (time series, latency bands, breakdown bars)."""

import altair as alt
import polars as pl

FINAL_COLOR = "#2563eb"
PROVISIONAL_COLOR = "#f59e0b"
PREVIOUS_COLOR = "#94a3b8"
STATUS_SCALE = alt.Scale(domain=["final", "provisional"], range=[FINAL_COLOR, PROVISIONAL_COLOR])
LATENCY_SCALE = alt.Scale(domain=["p50", "p95", "p99"], range=["#16a34a", "#f59e0b", "#dc2626"])


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
            x=alt.X(f"{x}:T", title=None),
            x2="window_end:T",
            y=alt.Y(f"{y}:Q", title=y_title),
            y2=alt.datum(0),
            color=alt.Color("status:N", scale=STATUS_SCALE, legend=alt.Legend(orient="top", title=None)),
            tooltip=[alt.Tooltip(f"{x}:T", format="%H:%M:%S"), alt.Tooltip(f"{y}:Q", format=",.1f"), "status:N"],
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
        x=alt.X(f"{x}:T", title=None),
        y=alt.Y("ms:Q", title="ms"),
        color=alt.Color("percentile:N", scale=LATENCY_SCALE, legend=alt.Legend(orient="top", title=None)),
        tooltip=[
            alt.Tooltip(f"{x}:T", format="%H:%M:%S"),
            "percentile:N",
            alt.Tooltip("ms:Q", format=",.1f"),
            "status",
        ],
    )
    points = base.mark_point(size=30, filled=False).encode(
        opacity=alt.condition(alt.datum.status == "provisional", alt.value(1), alt.value(0))
    )
    return base.mark_line(interpolate="monotone") + points


def line_with_previous(current: pl.DataFrame, previous: pl.DataFrame, y: str, title: str, y_title: str) -> alt.Chart:
    """``y`` over time, with the previous period shifted onto the same axis as a dashed line."""
    frames = [current.select("bucket", y).with_columns(pl.lit("this period").alias("period"))]
    if previous.height:
        frames.append(previous.select("bucket", y).with_columns(pl.lit("previous period").alias("period")))
    data = pl.concat(frames)
    return (
        alt.Chart(data, title=title, height=240)
        .mark_line(interpolate="monotone", point=alt.OverlayMarkDef(size=12))
        .encode(
            x=alt.X("bucket:T", title=None),
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
                alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M"),
                "period:N",
                alt.Tooltip(f"{y}:Q", format=",.3f"),
            ],
        )
    )


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
            y=alt.Y("lag:Q", title="messages"),
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
            x=alt.X("bucket:T", title=None),
            y=alt.Y("value:Q", title="events/s"),
            color=alt.Color(
                "direction:N",
                scale=alt.Scale(domain=["in", "out"], range=[FINAL_COLOR, "#16a34a"]),
                legend=alt.Legend(orient="top", title=None),
            ),
            tooltip=[alt.Tooltip("bucket:T", format="%H:%M:%S"), "direction:N", alt.Tooltip("value:Q", format=",.1f")],
        )
    )
