"""The metrics, declared once.

This declaration drives the streaming aggregation (flows/) and generates the ClickHouse SQL
that recomputes the same rows from raw events (`eventpulse.aggregation.batch_sql`), and it
says how closely the two must agree (`eventpulse.aggregation.compare`).

Rows are computed per window for four grouping sets (`GROUPINGS`): (tenant, type, source),
(tenant, type), (tenant, source) and (tenant); a dimension a row is not grouped by holds ``ALL``
(``'*'``), so ``type = '*' AND source = '*'`` is the tenant-wide row. A reader picks the set it means
with `grouping_filter`, never with a bare ``type != '*'`` (which would also match the (tenant, type)
rows). Besides the final values, every row carries mergeable states (`STATES`): the latency
sketch's bucket counts and the sorted 64-bit hashes of its distinct users, so any rollup or
regrouping is answered in SQL (``sketch_quantile(sumMap(...), q)``,
``length(groupUniqArrayArray(user_hashes))``). Inputs are the raw-event columns of
`eventpulse.events.model` (``is_error``, ``user_id``, ``latency_ms``), so both engines see
exactly the same derived values.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

ALL = "*"
"""The value of a dimension (``type``, ``source``) a row is not grouped by ("all of them")."""

KEY_COLUMNS: tuple[str, ...] = ("tenant", "window_seconds", "slide_seconds", "window_start", "type", "source")
WINDOW_ROW_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, "window_end")
"""A window row's identifying columns, before its metrics (stream and batch alike)."""
DIMENSIONS: tuple[str, ...] = ("type", "source")
"""The dimensions below the tenant; every grouping set is the tenant plus a subset of them."""
GROUPINGS: tuple[tuple[str, ...], ...] = (("type", "source"), ("type",), ("source",), ())
"""The grouping sets written for every window, finest first (the tenant is always part of the key)."""
BATCH_VERSION_BASE = 1 << 62
"""Batch rows carry versions above this, so a recompute supersedes any streaming emission."""


class Kind(StrEnum):
    """How a metric combines the events of a window."""

    COUNT = "count"
    COUNT_IF = "count_if"
    COUNT_NOT_NULL = "count_not_null"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    DISTINCT = "distinct"
    QUANTILE = "quantile"
    RATIO = "ratio"


@dataclass(frozen=True)
class Metric:
    """One output column of ``window_aggregates``.

    ``column`` is the raw-event column read; ``quantile`` the level for `Kind.QUANTILE`;
    ``numerator``/``denominator`` name other metrics for `Kind.RATIO`; ``rel_tolerance`` is
    how far (relative) a streaming value may be from the exact batch value.
    """

    name: str
    kind: Kind
    description: str
    column: str | None = None
    quantile: float | None = None
    numerator: str | None = None
    denominator: str | None = None
    rel_tolerance: float = 0.0

    @property
    def source(self) -> str:
        """``column``, for a kind that reads one (every kind but COUNT and RATIO)."""
        if self.column is None:
            raise ValueError(f"metric {self.name} ({self.kind}) reads no column")
        return self.column


QUANTILE_RELATIVE_ERROR = 0.01
"""The streaming quantile sketch's stated relative error (DDSketch-style guarantee)."""

METRICS: tuple[Metric, ...] = (
    Metric("event_count", Kind.COUNT, "Events in the window."),
    Metric("error_count", Kind.COUNT_IF, "Events that are errors (see the event model).", column="is_error"),
    Metric(
        "error_rate",
        Kind.RATIO,
        "error_count / event_count (0 when empty).",
        numerator="error_count",
        denominator="event_count",
        rel_tolerance=1e-9,
    ),
    Metric("distinct_users", Kind.DISTINCT, "Distinct non-empty data.user_id values.", column="user_id"),
    Metric("latency_count", Kind.COUNT_NOT_NULL, "Events that carry data.latency_ms.", column="latency_ms"),
    Metric("latency_sum", Kind.SUM, "Sum of data.latency_ms (ms).", column="latency_ms", rel_tolerance=1e-9),
    Metric("latency_min", Kind.MIN, "Smallest data.latency_ms (ms).", column="latency_ms"),
    Metric("latency_max", Kind.MAX, "Largest data.latency_ms (ms).", column="latency_ms"),
    *(
        Metric(
            f"latency_p{int(q * 100)}",
            Kind.QUANTILE,
            f"{int(q * 100)}th percentile of data.latency_ms (ms), from a mergeable sketch.",
            column="latency_ms",
            quantile=q,
            rel_tolerance=QUANTILE_RELATIVE_ERROR,
        )
        for q in (0.5, 0.95, 0.99)
    ),
)


@dataclass(frozen=True)
class State:
    """A mergeable state column of ``window_aggregates`` (beside the final values, which stay).

    ``kind`` is ``"sketch"`` (DDSketch bucket counts of ``column``: two parallel arrays ``<name>_buckets``
    and ``<name>_counts``, buckets ascending; see `eventpulse.aggregation.sketch`) or ``"hashes"``
    (the sorted distinct 64-bit hashes of the non-empty values of ``column``, see
    `eventpulse.aggregation.distinct`).
    """

    name: str
    kind: str
    column: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"{self.name}_buckets", f"{self.name}_counts") if self.kind == "sketch" else (self.name,)


STATES: tuple[State, ...] = (State("latency_sketch", "sketch", "latency_ms"), State("user_hashes", "hashes", "user_id"))


def state_columns() -> tuple[str, ...]:
    """State columns in table order."""
    return tuple(c for s in STATES for c in s.columns)


def grouping_filter(dims: tuple[str, ...] | list[str] = ()) -> str:
    """The SQL condition that keeps the rows of one grouping set: ``dims`` are the dimensions it
    groups by beyond the tenant (``()`` = tenant-wide rows, ``("type",)`` = per (tenant, type)).

    Only our own constants go into the text, never input.
    """
    unknown = set(dims) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown dimension(s) {sorted(unknown)}; one of {DIMENSIONS}")
    return " AND ".join(f"{d} {'!=' if d in dims else '='} '{ALL}'" for d in DIMENSIONS)


def metric_names() -> tuple[str, ...]:
    """Metric columns in table order."""
    return tuple(m.name for m in METRICS)


def metric(name: str) -> Metric:
    """The metric called ``name``."""
    for m in METRICS:
        if m.name == name:
            return m
    raise KeyError(name)


@dataclass(frozen=True, order=True)
class WindowSpec:
    """A window family: tumbling when ``slide_seconds == seconds``, hopping when smaller."""

    seconds: int
    slide_seconds: int

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.slide_seconds <= 0 or self.seconds % self.slide_seconds:
            raise ValueError(f"window {self.seconds}s must be a positive multiple of its slide {self.slide_seconds}s")

    @property
    def is_tumbling(self) -> bool:
        return self.seconds == self.slide_seconds

    def starts_containing(self, timestamp_ms: int) -> list[int]:
        """Start times (epoch ms) of every window of this family that contains ``timestamp_ms``."""
        slide = self.slide_seconds * 1000
        last = timestamp_ms // slide * slide
        return [last - k * slide for k in range(self.seconds // self.slide_seconds)]


def window_specs(tumbling: Iterable[int], sliding: Iterable[tuple[int, int]] = ()) -> tuple[WindowSpec, ...]:
    """Window families from settings (``StreamSettings.window_seconds`` and ``sliding_windows``)."""
    specs = {WindowSpec(s, s) for s in tumbling} | {WindowSpec(s, h) for s, h in sliding}
    return tuple(sorted(specs))
