"""ClickHouse SQL generated from the spec: recompute window rows from raw events.

The SQL reads ``events FINAL`` (one row per event id) once and returns rows with the columns of
``window_aggregates`` (minus version bookkeeping, which the caller adds) for every grouping set
of the spec (``GROUP BY GROUPING SETS``; a dimension left out of a set reads ``ALL``), final values
and mergeable states alike. Every value is a bound parameter; only identifiers from the spec (our
own constants) are formatted in.
"""

import re
from datetime import datetime, timedelta

from eventpulse.aggregation.distinct import hash_sql
from eventpulse.aggregation.sketch import bucket_sql
from eventpulse.aggregation.spec import (
    ALL,
    DIMENSIONS,
    GROUPINGS,
    KEY_COLUMNS,
    METRICS,
    STATES,
    WINDOW_ROW_COLUMNS,
    Kind,
    Metric,
    State,
    WindowSpec,
    state_columns,
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


def _state_expressions(s: State) -> list[str]:
    col = s.column
    if s.kind == "sketch":
        bucket = bucket_sql(f"assumeNotNull({col})")
        merged = f"sumMapIf([{bucket}], [toUInt64(1)], {col} IS NOT NULL)"
        buckets, counts = s.columns
        return [f"tupleElement({merged}, 1) AS {buckets}", f"tupleElement({merged}, 2) AS {counts}"]
    return [f"arraySort(groupUniqArrayIf({hash_sql(col)}, {col} != '')) AS {s.name}"]


def output_columns() -> tuple[str, ...]:
    """Columns of the recompute query, in order: the key, ``window_end``, the metrics, then the states."""
    return (*WINDOW_ROW_COLUMNS, *(m.name for m in METRICS), *state_columns())


_WITHOUT_LATE_EVENTS = """
  AND (tenant, timestamp, id, w) NOT IN (
      SELECT tenant, timestamp, id, toUnixTimestamp64Milli(window_start) FROM late_events
      WHERE window_seconds = {window_seconds:UInt32} AND slide_seconds = {slide_seconds:UInt32}
        AND window_start >= {start:DateTime64(3, 'UTC')} AND window_start < {end:DateTime64(3, 'UTC')})"""
"""Leaves out of each window the events the stream recorded as too late for it (table ``late_events``)."""


def _select(events_table: str = "events", late_filter: str = "") -> str:
    # The dimensions are renamed inside (``dim_type``...) so the output may call them ``type``/``source``.
    dims = {d: f"if(grouping(dim_{d}) = 1, '{ALL}', dim_{d}) AS {d}" for d in DIMENSIONS}
    sets = ", ".join("(" + ", ".join(("tenant", "w", *(f"dim_{d}" for d in g))) + ")" for g in GROUPINGS)
    metrics = ",\n    ".join(f"{_expression(m)} AS {m.name}" for m in METRICS)
    states = ",\n    ".join(e for s in STATES for e in _state_expressions(s))
    return f"""
SELECT
    tenant,
    {{window_seconds:UInt32}} AS window_seconds,
    {{slide_seconds:UInt32}} AS slide_seconds,
    fromUnixTimestamp64Milli(w, 'UTC') AS window_start,
    {dims["type"]},
    {dims["source"]},
    fromUnixTimestamp64Milli(w + {{window_ms:Int64}}, 'UTC') AS window_end,
    {metrics},
    {states}
FROM
(
    SELECT *, type AS dim_type, source AS dim_source, arrayJoin(
        arrayMap(k -> intDiv(toUnixTimestamp64Milli(timestamp), {{slide_ms:Int64}}) * {{slide_ms:Int64}}
                      - k * {{slide_ms:Int64}}, range({{hops:UInt32}}))
    ) AS w
    FROM {events_table} FINAL
    WHERE timestamp >= {{start:DateTime64(3, 'UTC')}} AND timestamp < {{scan_end:DateTime64(3, 'UTC')}}
      AND (tenant = {{tenant:String}} OR {{tenant:String}} = '')
)
WHERE w >= toUnixTimestamp64Milli({{start:DateTime64(3, 'UTC')}})
  AND w < toUnixTimestamp64Milli({{end:DateTime64(3, 'UTC')}}){late_filter}
GROUP BY GROUPING SETS ({sets})"""


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
    sql = f"SELECT {', '.join(output_columns())} FROM ({_select(events_table, late_filter)})\nORDER BY {', '.join(KEY_COLUMNS)}"
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


def _merge_expression(m: Metric) -> str:
    """How ``m`` of many rows of one grouping set combines into one row (rows carry their states)."""
    match m.kind:
        case Kind.COUNT | Kind.COUNT_IF | Kind.COUNT_NOT_NULL:
            return f"toUInt64(sum(src_{m.name}))"
        case Kind.SUM:
            return f"toFloat64(sum(src_{m.name}))"
        case Kind.MIN:
            return f"min(src_{m.name})"
        case Kind.MAX:
            return f"max(src_{m.name})"
        case Kind.DISTINCT:
            (state,) = [s for s in STATES if s.kind == "hashes" and s.column == m.column]
            return f"length(groupUniqArrayArray(src_{state.name}))"
        case Kind.QUANTILE:
            (state,) = [s for s in STATES if s.kind == "sketch" and s.column == m.column]
            return f"sketch_quantile(sumMap({', '.join('src_' + c for c in state.columns)}), {m.quantile})"
        case Kind.RATIO:
            return _expression(m)
    raise ValueError(m.kind)


def _merge_states(s: State) -> list[str]:
    if s.kind == "sketch":
        buckets, counts = s.columns
        merged = f"sumMap(src_{buckets}, src_{counts})"
        return [f"tupleElement({merged}, 1) AS {buckets}", f"tupleElement({merged}, 2) AS {counts}"]
    return [f"arraySort(groupUniqArrayArray(src_{s.name})) AS {s.name}"]


def rollup_source(families: tuple[WindowSpec, ...], window: WindowSpec) -> WindowSpec:
    """The tumbling family a rollup to ``window`` merges: the longest one whose windows tile it."""
    tiles = [f for f in families if f.is_tumbling and window.is_tumbling and window.seconds % f.seconds == 0]
    if not tiles:
        raise ValueError(f"no tumbling window family tiles {window.seconds}s windows")
    return max(tiles)


def rollup_query(
    window: WindowSpec, source: WindowSpec, start: datetime, end: datetime, *, table: str = "window_aggregates"
) -> tuple[str, dict]:
    """SQL and parameters that build every ``window`` row starting in [start, end) by merging the rows
    (final values and states) of the tumbling family ``source`` of ``table``: counts and sums add, minima
    and maxima combine, distinct users and percentiles come from the merged states (within the stated
    errors). Same output columns as `recompute_query`; every grouping set is merged within itself.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
        raise ValueError(f"invalid table name {table!r}")
    if not (source.is_tumbling and window.is_tumbling and window.seconds % source.seconds == 0):
        raise ValueError(f"{source.seconds}s windows do not tile {window.seconds}s windows")
    metrics = ",\n    ".join(f"{_merge_expression(m)} AS {m.name}" for m in METRICS)
    states = ",\n    ".join(e for s in STATES for e in _merge_states(s))
    # Inputs are renamed (src_*) so the merged outputs may keep the column names.
    inputs = ", ".join(
        f"{c} AS src_{c}" for c in (*(m.name for m in METRICS if m.kind is not Kind.RATIO), *state_columns())
    )
    sql = f"""
SELECT {", ".join(output_columns())} FROM (
SELECT
    tenant,
    {{window_seconds:UInt32}} AS window_seconds,
    {{slide_seconds:UInt32}} AS slide_seconds,
    fromUnixTimestamp64Milli(w, 'UTC') AS window_start,
    dim_type AS type,
    dim_source AS source,
    fromUnixTimestamp64Milli(w + {{window_ms:Int64}}, 'UTC') AS window_end,
    {metrics},
    {states}
FROM
(
    SELECT tenant, type AS dim_type, source AS dim_source, {inputs},
        intDiv(toUnixTimestamp64Milli(window_start), {{window_ms:Int64}}) * {{window_ms:Int64}} AS w
    FROM {table} FINAL
    WHERE window_seconds = {{source_seconds:UInt32}} AND slide_seconds = {{source_seconds:UInt32}}
      AND window_start >= {{start:DateTime64(3, 'UTC')}} AND window_start < {{end:DateTime64(3, 'UTC')}}
)
GROUP BY tenant, w, dim_type, dim_source
)
ORDER BY {", ".join(KEY_COLUMNS)}"""
    params = {
        "window_seconds": window.seconds,
        "slide_seconds": window.slide_seconds,
        "window_ms": window.seconds * 1000,
        "source_seconds": source.seconds,
        "start": start,
        "end": end,
    }
    return sql, params
