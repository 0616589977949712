"""Which table answers a historical query: the one decision behind automatic granularity.

Aggregates exist at several grains: ``window_aggregates`` (the stream's 60 s windows, and
shorter ones), ``rollup_hourly`` and ``rollup_daily`` (recomputed per day by orchestration).
A chart of buckets of ``bucket_seconds`` reads, for each stretch of the range, the coarsest
table whose rows are no longer than a bucket and which covers that stretch; the rest comes
from finer tables. `plan_sources` is pure so it can be tested without a warehouse.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MINUTE, HOUR, DAY = 60, 3600, 86400


@dataclass(frozen=True)
class Table:
    """A table of window rows, all of one window length."""

    name: str
    window_seconds: int


TABLES: tuple[Table, ...] = (
    Table("rollup_daily", DAY),
    Table("rollup_hourly", HOUR),
    Table("window_aggregates", MINUTE),
)
"""Coarse to fine. The last one is the stream's output and answers anything recent."""

GRANULARITIES: dict[str, int] = {"minute": MINUTE, "hour": HOUR, "day": DAY}


@dataclass(frozen=True)
class Segment:
    """Read ``table`` for windows starting in ``[start, end)``."""

    table: Table
    start: datetime
    end: datetime


def auto_granularity(start: datetime, end: datetime) -> str:
    """Minute buckets up to 6 hours, hour buckets up to 14 days, day buckets beyond."""
    span = end - start
    if span <= timedelta(hours=6):
        return "minute"
    if span <= timedelta(days=14):
        return "hour"
    return "day"


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (the warehouse returns naive UTC times)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def floor_to(moment: datetime, seconds: int) -> datetime:
    """``moment`` rounded down to a multiple of ``seconds`` since the epoch (UTC)."""
    epoch = int(as_utc(moment).timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def plan_sources(
    start: datetime,
    end: datetime,
    bucket_seconds: int,
    coverage: dict[str, tuple[datetime, datetime] | None],
) -> list[Segment]:
    """The tables to read for ``[start, end)`` in buckets of ``bucket_seconds``, in time order.

    ``coverage`` maps a table name to the ``[first window start, last window end)`` it holds
    (None when empty). Rollups are filled day by day from the past, so each covers a
    contiguous stretch: a coarse table takes the part of the range it covers (cut to whole
    buckets and whole windows), and the finest table takes whatever is left, before and after.
    """
    usable = [t for t in TABLES if t.window_seconds <= bucket_seconds and bucket_seconds % t.window_seconds == 0]
    finest = TABLES[-1]
    if finest not in usable:
        usable.append(finest)
    for table in usable[:-1]:
        covered = coverage.get(table.name)
        if not covered:
            continue
        grain = max(bucket_seconds, table.window_seconds)
        lo = max(start, _ceil_to(covered[0], grain))
        hi = min(end, floor_to(covered[1], grain))
        if lo >= hi:
            continue
        before = plan_sources(start, lo, bucket_seconds, {**coverage, table.name: None}) if start < lo else []
        after = plan_sources(hi, end, bucket_seconds, {**coverage, table.name: None}) if hi < end else []
        return [*before, Segment(table, lo, hi), *after]
    return [Segment(finest, start, end)] if start < end else []


def _ceil_to(moment: datetime, seconds: int) -> datetime:
    floored = floor_to(moment, seconds)
    return floored if floored == as_utc(moment) else floored + timedelta(seconds=seconds)
