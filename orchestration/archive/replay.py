"""Load archived raw events back into ``events_replay_staging`` so the batch SQL can recompute from them.

The day itself must come from its verified archive (and is checked against the manifest once
loaded). The neighbouring days' edges that hopping windows reach into come from their archive
when there is one, else from ``events``.
"""

from datetime import date, datetime, timedelta

import pyarrow.compute as pc
from clickhouse_connect.driver.client import Client

from orchestration.archive import manifests
from orchestration.archive.checksum import DayStats, day_bounds, total, warehouse_day_stats
from orchestration.archive.export import ARCHIVE_SCHEMA, conform
from orchestration.archive.store import ArchiveStore

STAGING = "events_replay_staging"


class ReplayError(RuntimeError):
    """The day cannot be replayed from the archive (not archived, or the archive does not match)."""


def _partitions(day: date) -> list[date]:
    return [day - timedelta(days=1), day, day + timedelta(days=1)]


def clear(client: Client, day: date) -> None:
    """Empty the staging partitions a replay of ``day`` uses."""
    for d in _partitions(day):
        client.command(f"ALTER TABLE {STAGING} DROP PARTITION '{d.isoformat()}'")


def load_day(client: Client, store: ArchiveStore, day: date, reach_s: int) -> DayStats:
    """Load ``day`` (from its verified archive) and ``reach_s`` seconds either side into staging.

    Raises:
        ReplayError: the day has no verified archive, or what was loaded differs from its manifest.
    """
    manifest = manifests.latest(client, day)
    if manifest is None or not manifest.verified:
        raise ReplayError(f"{day} has no verified archive: materialize events_archive for it first")
    clear(client, day)
    table = store.read_table([f"{store.root}/{path}" for path in manifest.files])
    if table.num_rows:
        client.insert_arrow(STAGING, conform(table))
    loaded = total(warehouse_day_stats(client, day, table=STAGING))
    if (loaded.rows, loaded.checksum) != (manifest.row_count, manifest.id_checksum):
        raise ReplayError(
            f"{day}: loaded {loaded.rows} rows (checksum {loaded.checksum}) from the archive, "
            f"manifest says {manifest.row_count} (checksum {manifest.id_checksum})"
        )
    if reach_s > 0:
        start, end = day_bounds(day)
        reach = timedelta(seconds=reach_s)
        _load_edge(client, store, day - timedelta(days=1), start - reach, start)
        _load_edge(client, store, day + timedelta(days=1), end, end + reach)
    return loaded


def _load_edge(client: Client, store: ArchiveStore, day: date, lo: datetime, hi: datetime) -> None:
    manifest = manifests.latest(client, day)
    if manifest is not None and manifest.verified:
        table = store.read_table([f"{store.root}/{path}" for path in manifest.files])
        if table.num_rows:
            table = table.filter(pc.and_(pc.greater_equal(table["timestamp"], lo), pc.less(table["timestamp"], hi)))
        if table.num_rows:
            client.insert_arrow(STAGING, conform(table))
        return
    columns = ", ".join(ARCHIVE_SCHEMA.names)
    client.command(
        f"INSERT INTO {STAGING} ({columns}) SELECT {columns} FROM events FINAL "
        "WHERE timestamp >= {lo:DateTime64(3, 'UTC')} AND timestamp < {hi:DateTime64(3, 'UTC')}",
        parameters={"lo": lo, "hi": hi},
    )
