"""`eventpulse demo`: fill the days before today with realistic history, through the real batch path.

Raw events come from the traffic generator (`devstack.traffic.history`), validated by the
dataflow's validator and inserted into ``events``; then the Dagster assets that work on finished
days run in-process for those days, in one run per range of days: the batch recompute of every
window family (with its ``stream_matches_batch`` check), the hourly and daily rollups and the
verified Parquet archive. With ``DAGSTER_HOME`` set (as `eventpulse up` sets it) the runs are
recorded in that instance, so the Dagster UI shows the days as materialized.

Days that already hold their history, or events of their own (the stack ran that day), are
skipped; running it twice changes nothing.
"""

import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

from devstack.traffic.generator import TrafficProfile
from devstack.traffic.history import expected_events, history_counts, load_day
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client


@click.command("demo")
@click.option(
    "--days", type=click.IntRange(1, 28), default=None, help="Days before today (EVENTPULSE_STACK_HISTORY_DAYS)."
)
@click.option(
    "--events-per-day",
    type=click.IntRange(min=1),
    default=None,
    help="Mean events per day (EVENTPULSE_STACK_HISTORY_EVENTS_PER_DAY).",
)
@click.option("--tenants", type=int, default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def demo(days: int | None, events_per_day: int | None, tenants: int, seed: int) -> None:
    """Fill the days before today with history: raw events, then batch recompute, rollups and archive."""
    started = time.monotonic()
    settings = Settings()
    per_day = events_per_day or settings.stack.history_events_per_day
    today = datetime.now(UTC).date()
    wanted = [today - timedelta(days=k) for k in range(days or settings.stack.history_days, 0, -1)]
    profile = TrafficProfile(tenants=tenants, invalid_share=0.0)
    client = create_client(settings.warehouse, role="writer")
    try:
        history = history_counts(client, wanted)
        own = _own_events(client, wanted, history)
        loaded = []
        for day in wanted:
            if own[day]:
                click.echo(f"demo: {day}: skipped, it holds {own[day]} events of its own")
            elif history[day] < expected_events(day, per_day):
                result = load_day(client, day, per_day, profile, settings.events, seed)
                click.echo(f"demo: {day}: {result.events} events loaded ({result.rejected} refused)")
                loaded.append(day)
        pending = [d for d in wanted if not own[d] and (d in loaded or not _recomputed(client, d))]
    finally:
        client.close()
    if pending:
        _recompute(pending)
    else:
        click.echo(f"demo: the {len(wanted)} days before today are already filled")
    click.echo(f"demo: done in {time.monotonic() - started:.1f} s")


def _own_events(client, days: list[date], history: dict[date, int]) -> dict[date, int]:
    """Events per day that are not history (real traffic of a stack that ran that day)."""
    rows = client.query(
        "SELECT toDate(timestamp) AS day, count() FROM events FINAL WHERE toDate(timestamp) IN {days:Array(Date)} "
        "GROUP BY day",
        parameters={"days": days},
    ).result_rows
    total = {row[0]: int(row[1]) for row in rows}
    return {day: max(0, total.get(day, 0) - history[day]) for day in days}


def _recomputed(client, day: date) -> bool:
    """Whether the batch assets already ran for ``day`` (its daily rollup and archive manifest exist)."""
    from orchestration.archive import manifests

    rollup = client.command(
        "SELECT count() FROM rollup_daily WHERE toDate(window_start) = {day:Date}", parameters={"day": day}
    )
    return bool(rollup) and manifests.latest(client, day) is not None


def _ranges(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive runs of ``days`` (sorted) as (first, last)."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(days):
        if ranges and day == ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def _instance():
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME")
    if home and (Path(home) / "dagster.yaml").exists():
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def _recompute(days: list[date]) -> None:
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from orchestration.assets.aggregates import window_aggregates_batch
    from orchestration.assets.archive import events_archive
    from orchestration.assets.rollups import rollup_daily, rollup_hourly
    from orchestration.definitions import resources

    assets = [window_aggregates_batch, rollup_hourly, rollup_daily, events_archive]
    with _instance() as instance:
        for first, last in _ranges(days):
            started = time.monotonic()
            tags = {
                ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
                "eventpulse/demo": "history",
            }
            result = dg.materialize(assets, instance=instance, resources=resources(), tags=tags, raise_on_error=False)
            if not result.success:
                raise click.ClickException(f"the batch run for {first} … {last} failed (run {result.run_id})")
            click.echo(
                f"demo: {first} … {last}: window aggregates, hourly and daily rollups, archive "
                f"({time.monotonic() - started:.1f} s, run {result.run_id})"
            )
