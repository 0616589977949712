"""Rebuild one day of a window table in its staging twin, then swap it in atomically.

``REPLACE PARTITION`` swaps *every* row of the day, so a rebuild always recomputes every window
family the table holds for that day. The staging tables come from migration 0030 (same
structure, partition key and sorting key as their target). Concurrent rebuilds of *different*
days are safe (each touches only its own partition); the assets run in a Dagster pool so the
same day is never rebuilt twice at once.
"""

from dataclasses import dataclass
from datetime import date
from typing import Any

from clickhouse_connect.driver.client import Client

from eventpulse.aggregation.batch_sql import output_columns, recompute_query, rollup_query
from eventpulse.aggregation.spec import KEY_COLUMNS, METRICS, WindowSpec
from eventpulse.warehouse.client import scalar_int
from orchestration.archive.checksum import day_bounds

TARGETS = ("window_aggregates", "rollup_hourly", "rollup_daily")
"""Tables rebuilt by day; each has a ``<name>_staging`` twin."""

STREAM_TARGET = "window_aggregates"
REPLACED_STREAM_ROWS = "replaced_stream_rows"
"""Where the swap keeps the stream's rows of ``STREAM_TARGET`` it replaces (migration 0120)."""

_BOOKKEEPING = ("is_final", "origin", "version", "emitted_at")


@dataclass(frozen=True)
class StagedDay:
    """Rows staged for one day, per window family."""

    target: str
    day: date
    rows: dict[WindowSpec, int]

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _check_target(target: str) -> str:
    if target not in TARGETS:
        raise ValueError(f"unknown target table {target!r}")
    return target


def _partition(day: date) -> str:
    # The partition expression of toDate(window_start): a literal built from a `date`, not input.
    return f"'{day.isoformat()}'"


def stage_day(
    client: Client,
    target: str,
    day: date,
    windows: tuple[WindowSpec, ...],
    version: int,
    events_table: str = "events",
    merge_from: WindowSpec | None = None,
) -> StagedDay:
    """Recompute every window of ``windows`` starting on ``day`` into ``<target>_staging``: from raw
    events, or, with ``merge_from``, by merging that tumbling family's rows of ``window_aggregates``
    (states included: the rollups)."""
    staging = f"{_check_target(target)}_staging"
    client.command(f"ALTER TABLE {staging} DROP PARTITION {_partition(day)}")
    start, end = day_bounds(day)
    columns = ", ".join((*output_columns(), *_BOOKKEEPING))
    rows: dict[WindowSpec, int] = {}
    for window in windows:
        if merge_from is None:
            sql, params = recompute_query(window, start, end, events_table=events_table)
        else:
            sql, params = rollup_query(window, merge_from, start, end)
        client.command(
            f"INSERT INTO {staging} ({columns}) SELECT *, 1, 'batch', {{version:UInt64}}, now64(3) FROM ({sql})",
            parameters={**params, "version": version},
        )
        rows[window] = scalar_int(
            client,
            f"SELECT count() FROM {staging} WHERE toDate(window_start) = {{day:Date}} "
            "AND window_seconds = {ws:UInt32} AND slide_seconds = {ss:UInt32}",
            parameters={"day": day, "ws": window.seconds, "ss": window.slide_seconds},
        )
    return StagedDay(target, day, rows)


def keep_stream_rows(client: Client, day: date) -> int:
    """Copy the latest stream row of each key of ``day`` into ``replaced_stream_rows``; the rows copied.

    REPLACE PARTITION removes the stream's rows from ``window_aggregates``: kept here, a later
    recompute of the day still knows what the stream wrote (and that the published rows it
    replaces are an earlier recompute's). Copying again is harmless: the table keeps the highest
    version of each key.
    """
    keys = ", ".join(KEY_COLUMNS)
    columns = ", ".join((*output_columns(), *_BOOKKEEPING))
    summary = client.command(
        f"INSERT INTO {REPLACED_STREAM_ROWS} ({columns}) SELECT {columns} FROM {STREAM_TARGET} "
        "WHERE toDate(window_start) = {day:Date} AND origin = 'stream' "
        f"ORDER BY {keys}, version DESC LIMIT 1 BY {keys}",
        parameters={"day": day},
    )
    return int(getattr(summary, "written_rows", 0) or 0)


def swap_day(client: Client, staged: StagedDay) -> None:
    """Make the staged rows *the* rows of the day in the target table, then clear the staging partition.

    The stream's rows of ``window_aggregates`` are kept first (`keep_stream_rows`). An empty day
    drops the target's partition instead (ClickHouse refuses REPLACE PARTITION from an empty
    source, which would otherwise silently drop the destination).
    """
    target, staging = staged.target, f"{staged.target}_staging"
    if target == STREAM_TARGET:
        keep_stream_rows(client, staged.day)
    if staged.total:
        client.command(f"ALTER TABLE {target} REPLACE PARTITION {_partition(staged.day)} FROM {staging}")
    else:
        client.command(f"ALTER TABLE {target} DROP PARTITION {_partition(staged.day)}")
    client.command(f"ALTER TABLE {staging} DROP PARTITION {_partition(staged.day)}")


def _select_rows(client: Client, table: str, day: date, window: WindowSpec) -> list[dict[str, Any]]:
    columns = ", ".join((*KEY_COLUMNS, *(m.name for m in METRICS), "origin", "is_final"))
    return list(
        client.query(
            f"SELECT {columns} FROM {table} FINAL WHERE toDate(window_start) = {{day:Date}} "
            "AND window_seconds = {ws:UInt32} AND slide_seconds = {ss:UInt32}",
            parameters={"day": day, "ws": window.seconds, "ss": window.slide_seconds},
        ).named_results()
    )


def stream_rows_of_day(client: Client, day: date, window: WindowSpec) -> list[dict[str, Any]]:
    """What the stream wrote for the day and family: its latest row of each key, published or replaced."""
    keys = ", ".join(KEY_COLUMNS)
    columns = ", ".join((*KEY_COLUMNS, *(m.name for m in METRICS), "origin", "is_final", "version"))
    where = (
        "WHERE toDate(window_start) = {day:Date} AND window_seconds = {ws:UInt32} AND slide_seconds = {ss:UInt32} "
        "AND origin = 'stream'"
    )
    return list(
        client.query(
            f"SELECT {columns} FROM (SELECT {columns} FROM {STREAM_TARGET} {where} "
            f"UNION ALL SELECT {columns} FROM {REPLACED_STREAM_ROWS} {where}) "
            f"ORDER BY {keys}, version DESC LIMIT 1 BY {keys}",
            parameters={"day": day, "ws": window.seconds, "ss": window.slide_seconds},
        ).named_results()
    )


def staged_rows(client: Client, staged: StagedDay, window: WindowSpec) -> list[dict[str, Any]]:
    """The freshly staged rows of the day and family."""
    return _select_rows(client, f"{_check_target(staged.target)}_staging", staged.day, window)


def published_origins(client: Client, staged: StagedDay, window: WindowSpec) -> dict[str, int]:
    """Rows currently published for the day and family, by origin ('stream', 'batch'), counted in SQL."""
    rows = client.query(
        f"SELECT origin, count() FROM {_check_target(staged.target)} FINAL WHERE toDate(window_start) = {{day:Date}} "
        "AND window_seconds = {ws:UInt32} AND slide_seconds = {ss:UInt32} GROUP BY origin",
        parameters={"day": staged.day, "ws": window.seconds, "ss": window.slide_seconds},
    ).result_rows
    return {str(origin): int(count) for origin, count in rows}


def published_and_staged(
    client: Client, staged: StagedDay, window: WindowSpec
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows currently published for the day and family, and the freshly staged ones."""
    target = _check_target(staged.target)
    return _select_rows(client, target, staged.day, window), _select_rows(
        client, f"{target}_staging", staged.day, window
    )
