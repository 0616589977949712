"""Stream vs batch: compare the rows published for a day with a fresh recompute, and report it.

Counts must match exactly and percentiles within the sketch's stated relative error (the
tolerances are declared once, in `eventpulse.aggregation.spec`, and applied by
`eventpulse.aggregation.compare.compare_rows`). Every difference is listed in the check's
metadata (up to ``max_listed``; the total is always given).
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
from clickhouse_connect.driver.client import Client

from eventpulse.aggregation.compare import Difference, compare_rows
from eventpulse.aggregation.spec import WindowSpec
from orchestration.day_swap import StagedDay, published_and_staged


@dataclass
class DayReconciliation:
    """How the published rows of one day compare with the recomputed ones."""

    day: date
    published_rows: int = 0
    recomputed_rows: int = 0
    provisional_rows: int = 0
    published_origins: Counter = field(default_factory=Counter)
    differences: list[Difference] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "published_rows": self.published_rows,
            "recomputed_rows": self.recomputed_rows,
            "published_provisional_rows": self.provisional_rows,
            "published_origins": dict(self.published_origins),
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


def check_result(
    check_name: str, days: list[DayReconciliation], max_listed: int, what: str = "published (stream) rows"
) -> dg.AssetCheckResult:
    """One check result for every day of the run: passed when no day has a difference."""
    differences = [{"day": d.day.isoformat(), **x.as_dict()} for d in days for x in d.differences]
    total = len(differences)
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{total} difference(s) between {what} and the batch recompute over {len(days)} day(s).",
        metadata={
            "days": dg.MetadataValue.json([d.summary() for d in days]),
            "differences_total": total,
            "differences_listed": min(total, max_listed),
            "differences": dg.MetadataValue.json(differences[:max_listed]),
            "left": what,
            "right": "batch recompute from raw events",
        },
    )
