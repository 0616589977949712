"""ClickHouse SQL generated from the spec: recompute window rows from raw events.

The SQL reads ``events FINAL`` (one row per event id) and returns rows with the columns of
``window_aggregates`` (minus version bookkeeping, which the caller adds). Every value is a
bound parameter; only identifiers from the spec (our own constants) are formatted in.
"""

import re
from datetime import datetime, timedelta

from eventpulse.aggregation.spec import (
    ALL,
    GROUPINGS,
    KEY_COLUMNS,
    METRICS,
    WINDOW_ROW_COLUMNS,
    Kind,
    Metric,
    WindowSpec,
)

_QUANTILE_FUNCTION = "quantileExact"
"""Exact order statistic at 0-based rank min(floor(q * n), n - 1): the rank rule of the stream's sketch
(`eventpulse.aggregation.sketch`; quantileExactLow differs at q = 0.5, where it takes the lower median)."""


def _expression(m: Metric) -> str:
    col = m.column
    match m.kind:
        case Kind.COUNT:
            return "count()"
        case Kind.COUNT_IF:
            return f"countIf({col} = 1)"
        case Kind.COUNT_NOT_NULL:
            return f"count({col})"
        case Kind.SUM:
            return f"toFloat64(ifNull(sum({col}), 0))"
        case Kind.MIN:
            return f"min({col})"
        case Kind.MAX:
            return f"max({col})"
        case Kind.DISTINCT:
            return f"uniqExactIf({col}, {col} != '')"
        case Kind.QUANTILE:
            return f"{_QUANTILE_FUNCTION}({m.quantile})({col})"
        case Kind.RATIO:
            return f"if({m.denominator} = 0, 0., {m.numerator} / {m.denominator})"
    raise ValueError(m.kind)


def output_columns() -> tuple[str, ...]:
    """Columns of the recompute query, in order: the key, ``window_end``, then the metrics."""
    return (*WINDOW_ROW_COLUMNS, *(m.name for m in METRICS))


_WITHOUT_LATE_EVENTS = """
  AND (tenant, timestamp, id, w) NOT IN (
      SELECT tenant, timestamp, id, toUnixTimestamp64Milli(window_start) FROM late_events
      WHERE window_seconds = {window_seconds:UInt32} AND slide_seconds = {slide_seconds:UInt32}
        AND window_start >= {start:DateTime64(3, 'UTC')} AND window_start < {end:DateTime64(3, 'UTC')})"""
"""Leaves out of each window the events the stream recorded as too late for it (table ``late_events``)."""


def _select(dims: tuple[str, ...], events_table: str = "events", late_filter: str = "") -> str:
    type_expr = "type" if "type" in dims else f"'{ALL}'"
    source_expr = "source" if "source" in dims else f"'{ALL}'"
    group_by = ", ".join(("tenant", "w", *dims))
    metrics = ",\n    ".join(f"{_expression(m)} AS {m.name}" for m in METRICS)
    return f"""
SELECT
    tenant,
    {{window_seconds:UInt32}} AS window_seconds,
    {{slide_seconds:UInt32}} AS slide_seconds,
    fromUnixTimestamp64Milli(w, 'UTC') AS window_start,
    {type_expr} AS type,
    {source_expr} AS source,
    fromUnixTimestamp64Milli(w + {{window_ms:Int64}}, 'UTC') AS window_end,
    {metrics}
FROM
(
    SELECT *, arrayJoin(
        arrayMap(k -> intDiv(toUnixTimestamp64Milli(timestamp), {{slide_ms:Int64}}) * {{slide_ms:Int64}}
                      - k * {{slide_ms:Int64}}, range({{hops:UInt32}}))
    ) AS w
    FROM {events_table} FINAL
    WHERE timestamp >= {{start:DateTime64(3, 'UTC')}} AND timestamp < {{scan_end:DateTime64(3, 'UTC')}}
      AND (tenant = {{tenant:String}} OR {{tenant:String}} = '')
)
WHERE w >= toUnixTimestamp64Milli({{start:DateTime64(3, 'UTC')}})
  AND w < toUnixTimestamp64Milli({{end:DateTime64(3, 'UTC')}}){late_filter}
GROUP BY {group_by}"""


def recompute_query(
    window: WindowSpec,
    start: datetime,
    end: datetime,
    tenant: str = "",
    *,
    events_table: str = "events",
    as_streamed: bool = False,
) -> tuple[str, dict]:
    """SQL and parameters that recompute every row of ``window`` whose start is in [start, end).

    A window holds events from its start to its end, so events up to ``length - slide`` after
    ``end`` are read too: hopping windows that start just before ``end`` reach past it. ``tenant`` limits the query to one tenant ("" = all).
    ``events_table`` names a table with the columns of ``events`` to read instead (e.g. raw
    events loaded back from the archive); it is an identifier, never user input.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", events_table):
        raise ValueError(f"invalid events table name {events_table!r}")
    window_ms = window.seconds * 1000
    slide_ms = window.slide_seconds * 1000
    scan_end = end + timedelta(milliseconds=window_ms - slide_ms)
    late_filter = _WITHOUT_LATE_EVENTS if as_streamed else ""
    sql = "\nUNION ALL\n".join(_select(dims, events_table, late_filter) for dims in GROUPINGS)
    sql = f"SELECT * FROM ({sql})\nORDER BY {', '.join(KEY_COLUMNS)}"
    params = {
        "window_seconds": window.seconds,
        "slide_seconds": window.slide_seconds,
        "window_ms": window_ms,
        "slide_ms": slide_ms,
        "hops": window.seconds // window.slide_seconds,
        "scan_end": scan_end,
        "start": start,
        "end": end,
        "tenant": tenant,
    }
    return sql, params
