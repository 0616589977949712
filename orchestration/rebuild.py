"""The per-day loop behind every asset that recomputes window rows: stage, reconcile, swap, log.

A run may cover many days (``BackfillPolicy.single_run``); each day is logged as it finishes so
progress shows in the Dagster UI while a large backfill runs.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
from clickhouse_connect.driver.client import Client

from eventpulse.aggregation.spec import BATCH_VERSION_BASE, WindowSpec
from orchestration.day_swap import StagedDay, stage_day, swap_day
from orchestration.reconciliation import DayReconciliation

Reconciler = Callable[[Client, StagedDay, tuple[WindowSpec, ...]], DayReconciliation]
"""`reconciliation.reconcile_stream_day` (stream vs batch) or `reconciliation.reconcile_day` (published vs staged)."""


def batch_version() -> int:
    """``BATCH_VERSION_BASE`` + now in microseconds: above every streaming version, later runs win."""
    return BATCH_VERSION_BASE + time.time_ns() // 1000


@dataclass
class RebuildReport:
    """What a run rebuilt, for the materialization's metadata and the reconciliation check."""

    version: int
    rows_by_day: dict[str, int] = field(default_factory=dict)
    rows_by_window: dict[str, int] = field(default_factory=dict)
    reconciliations: list[DayReconciliation] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:  # Dagster metadata values of several kinds
        return {
            "days": len(self.rows_by_day),
            "rows": sum(self.rows_by_day.values()),
            "rows_by_day": dg.MetadataValue.json(self.rows_by_day),
            "rows_by_window": dg.MetadataValue.json(self.rows_by_window),
            "version": str(self.version),
        }


def rebuild_days(
    context: dg.AssetExecutionContext,
    client: Client,
    target: str,
    days: list[date],
    windows: tuple[WindowSpec, ...],
    *,
    events_table: str = "events",
    reconcile: Reconciler | None = None,
    merge_from: WindowSpec | None = None,
) -> RebuildReport:
    """Recompute and swap in ``target`` for each day; with ``reconcile``, compare before each swap.

    ``merge_from`` (rollups): merge that tumbling family of ``window_aggregates`` instead of raw events."""
    report = RebuildReport(batch_version())
    for number, day in enumerate(days, start=1):
        started = time.monotonic()
        staged = stage_day(
            client, target, day, windows, report.version, events_table=events_table, merge_from=merge_from
        )
        note = ""
        if reconcile is not None:
            reconciliation = reconcile(client, staged, windows)
            report.reconciliations.append(reconciliation)
            note = f", {len(reconciliation.differences)} difference(s) with the published rows"
        swap_day(client, staged)
        report.rows_by_day[day.isoformat()] = staged.total
        for window, rows in staged.rows.items():
            name = f"{window.seconds}s/{window.slide_seconds}s"
            report.rows_by_window[name] = report.rows_by_window.get(name, 0) + rows
        context.log.info(
            f"[{number}/{len(days)}] {target} {day}: {staged.total} rows swapped in{note} "
            f"({time.monotonic() - started:.1f} s)"
        )
    return report
