"""Refusals shared by the assets that recompute from raw events."""

from datetime import date

import dagster as dg
from clickhouse_connect.driver.client import Client

from orchestration.archive import manifests
from orchestration.archive.checksum import total, warehouse_day_stats


def raw_events_missing(client: Client, day: date) -> str | None:
    """Why recomputing ``day`` from ``events`` would lose data, or ``None`` when it is safe.

    After retention dropped a day's raw events (or fewer rows remain than were archived), a
    recompute from ``events`` would replace good aggregates with empty or partial ones: such a
    day must be replayed from the archive (`events_replay`) instead.
    """
    manifest = manifests.latest(client, day)
    if manifest is None:
        return None
    raw = total(warehouse_day_stats(client, day)).rows
    if raw < manifest.row_count:
        return (
            f"{day}: the warehouse holds {raw} raw events but {manifest.row_count} were archived "
            f"(raw dropped at {manifest.raw_dropped_at}); materialize events_replay for this day instead"
        )
    return None


def refuse_days_without_raw_events(client: Client, days: list[date]) -> None:
    """Fail the run, before changing anything, if any of ``days`` must be replayed instead."""
    reasons = [reason for day in days if (reason := raw_events_missing(client, day))]
    if reasons:
        raise dg.Failure(description="; ".join(reasons), metadata={"refused_days": len(reasons)})
