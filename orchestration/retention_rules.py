"""Which raw-event days retention may drop, and why the others are refused.

A day is dropped only when all of this holds: it is older than the retention period; its
archive manifest says *verified*; every archived file is still in the store with its recorded
size; and the warehouse still holds exactly the archived rows (count and id checksum) — a late
event that arrived after archival means the archive is stale and must be redone first.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from clickhouse_connect.driver.client import Client

from orchestration.archive import manifests
from orchestration.archive.checksum import total, warehouse_day_stats
from orchestration.archive.store import ArchiveStore


@dataclass(frozen=True)
class Decision:
    """What retention does with one day."""

    day: date
    drop: bool
    reason: str
    rows: int = 0


def raw_event_days(client: Client) -> list[date]:
    """Days (partitions) that currently hold raw events."""
    result = client.query(
        "SELECT DISTINCT partition FROM system.parts "
        "WHERE database = currentDatabase() AND table = 'events' AND active ORDER BY partition"
    )
    return [date.fromisoformat(str(p)) for (p,) in result.result_rows]


def decide(client: Client, store: ArchiveStore, day: date, today: date, retention_days: int) -> Decision:
    """Whether ``day`` may be dropped now, with the reason either way."""
    cutoff = today - timedelta(days=retention_days)
    if day >= cutoff:
        return Decision(day, False, f"within retention ({retention_days} days; cutoff {cutoff})")
    manifest = manifests.latest(client, day)
    if manifest is None:
        return Decision(day, False, "refused: never archived")
    if not manifest.verified:
        return Decision(day, False, f"refused: archive status is {manifest.status!r}, not verified")
    document = manifest.document()
    expected = {
        f"{store.root}/{f['path']}": f["bytes"] for tenant in document["tenants"].values() for f in tenant["files"]
    }
    missing = [p for p, size in store.sizes(list(expected)).items() if size != expected[p]]
    if missing:
        return Decision(day, False, f"refused: {len(missing)} archived file(s) missing or changed in {store.url}")
    current = total(warehouse_day_stats(client, day))
    if (current.rows, current.checksum) != (manifest.row_count, manifest.id_checksum):
        return Decision(
            day,
            False,
            f"refused: the warehouse has {current.rows} rows (checksum {current.checksum}) but the archive "
            f"verified {manifest.row_count} (checksum {manifest.id_checksum}); re-archive the day first",
        )
    return Decision(day, True, "archived and verified", current.rows)


def drop_day(client: Client, day: date) -> None:
    """Drop the day's raw-event partition and record it on the manifest."""
    manifest = manifests.latest(client, day)
    if manifest is None or not manifest.verified:  # decide() was called first; never drop otherwise
        raise RuntimeError(f"{day} has no verified archive")
    client.command(f"ALTER TABLE events DROP PARTITION '{day.isoformat()}'")
    manifests.mark_raw_dropped(client, manifest)
