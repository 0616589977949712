"""Stream vs batch: compare what the stream wrote for a day with a recompute of the same data, and report it.

Counts must match exactly and percentiles within the sketch's stated relative error (the
tolerances are declared once, in `eventpulse.aggregation.spec`, and applied by
`eventpulse.aggregation.compare.compare_rows`). Every difference is listed in the check's
metadata (up to ``max_listed``; the total is always given).

`reconcile_stream_day` (the ``stream_matches_batch`` check) compares the stream's own rows, even
after an earlier recompute replaced them (`day_swap.stream_rows_of_day`), with the batch over the
data the stream saw: the events it recorded in ``late_events`` as too late for a window are left
out of that window (`recompute_query(as_streamed=True)`). So a repair after late data, or a
re-run, is green unless the stream and the batch disagree about the same events. A day the stream
wrote nothing for (history loaded straight into ``events``) is reported as not compared.
`reconcile_day` (the replay check) compares the published rows, whatever wrote them, with the
staged ones.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
from clickhouse_connect.driver.client import Client

from eventpulse.aggregation.batch_sql import recompute_query
from eventpulse.aggregation.compare import Difference, compare_rows
from eventpulse.aggregation.spec import WindowSpec
from eventpulse.warehouse.client import scalar_int
from orchestration.archive.checksum import day_bounds
from orchestration.day_swap import (
    StagedDay,
    published_and_staged,
    published_origins,
    staged_rows,
    stream_rows_of_day,
)


@dataclass
class DayReconciliation:
    """How the published rows of one day compare with the recomputed ones."""

    day: date
    published_rows: int = 0
    recomputed_rows: int = 0
    provisional_rows: int = 0
    published_origins: Counter = field(default_factory=Counter)
    differences: list[Difference] = field(default_factory=list)
    stream_rows: int | None = None  # the stream check only: the stream's rows compared
    late_events: int = 0  # the stream check only: (event, window) pairs left out as too late for the stream
    compared: bool = True

    def summary(self) -> dict[str, Any]:
        extra = {} if self.stream_rows is None else {"stream_rows": self.stream_rows, "late_events": self.late_events}
        return {
            "day": self.day.isoformat(),
            "compared": self.compared,
            "published_rows": self.published_rows,
            "recomputed_rows": self.recomputed_rows,
            "published_provisional_rows": self.provisional_rows,
            "published_origins": dict(self.published_origins),
            **extra,
            "differences": len(self.differences),
            "differences_by_metric": dict(Counter(d.metric for d in self.differences)),
        }


def reconcile_day(client: Client, staged: StagedDay, windows: tuple[WindowSpec, ...]) -> DayReconciliation:
    """Compare the published rows of ``staged.day`` (before the swap) with the staged recompute."""
    result = DayReconciliation(staged.day)
    for window in windows:
        published, recomputed = published_and_staged(client, staged, window)
        result.published_rows += len(published)
        result.recomputed_rows += len(recomputed)
        result.provisional_rows += sum(1 for row in published if not row["is_final"])
        result.published_origins.update(row["origin"] for row in published)
        result.differences += compare_rows(published, recomputed)
    return result


def _late_pairs(client: Client, staged: StagedDay, window: WindowSpec) -> int:
    return scalar_int(
        client,
        "SELECT uniqExact(tenant, window_start, id) FROM late_events WHERE toDate(window_start) = {day:Date} "
        "AND window_seconds = {ws:UInt32} AND slide_seconds = {ss:UInt32}",
        parameters={"day": staged.day, "ws": window.seconds, "ss": window.slide_seconds},
    )


def reconcile_stream_day(client: Client, staged: StagedDay, windows: tuple[WindowSpec, ...]) -> DayReconciliation:
    """Compare the stream's rows of ``staged.day`` with the batch over the events the stream counted."""
    result = DayReconciliation(staged.day, stream_rows=0)
    streamed = {window: stream_rows_of_day(client, staged.day, window) for window in windows}
    result.compared = any(streamed.values())
    start, end = day_bounds(staged.day)
    for window in windows:
        origins = published_origins(client, staged, window)
        stream = streamed[window]
        result.published_rows += sum(origins.values())
        result.recomputed_rows += staged.rows[window]
        result.published_origins.update(origins)
        result.stream_rows = (result.stream_rows or 0) + len(stream)
        result.provisional_rows += sum(1 for row in stream if not row["is_final"])
        if not result.compared:
            continue  # nothing read back: a day of history loaded without the stream costs only its counts
        late = _late_pairs(client, staged, window)
        result.late_events += late
        if late:  # the staged rows count the late events; the stream, by design, did not
            sql, params = recompute_query(window, start, end, as_streamed=True)
            recomputed = list(client.query(sql, parameters=params).named_results())
        else:
            recomputed = staged_rows(client, staged, window)
        result.differences += compare_rows(stream, recomputed)
    return result


def check_result(
    check_name: str, days: list[DayReconciliation], max_listed: int, what: str = "published (stream) rows"
) -> dg.AssetCheckResult:
    """One check result for every day of the run: passed when no day has a difference."""
    differences = [{"day": d.day.isoformat(), **x.as_dict()} for d in days for x in d.differences]
    total = len(differences)
    skipped = [d.day.isoformat() for d in days if not d.compared]
    note = f" Not compared (no stream rows): {', '.join(skipped)}." if skipped else ""
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{total} difference(s) between {what} and the batch recompute over {len(days)} day(s).{note}",
        metadata={
            "days": dg.MetadataValue.json([d.summary() for d in days]),
            "differences_total": total,
            "differences_listed": min(total, max_listed),
            "differences": dg.MetadataValue.json(differences[:max_listed]),
            "left": what,
            "right": "batch recompute from raw events",
        },
    )
