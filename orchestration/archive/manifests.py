"""Archive manifests: a JSON file per day in the archive and a row per day in ``archive_manifests``.

The table is what retention, replay and the batch recompute consult (one query); the JSON file
travels with the Parquet files so an archive stays self-describing wherever it is copied.
"""

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from orchestration.archive.export import ArchivedDay
from orchestration.archive.store import ArchiveStore

_COLUMNS = (
    "day",
    "archive_url",
    "status",
    "row_count",
    "id_checksum",
    "tenant_count",
    "file_count",
    "bytes",
    "files",
    "manifest",
    "run_id",
    "archived_at",
    "raw_dropped_at",
    "recorded_at",
)


@dataclass(frozen=True)
class ManifestRow:
    """The latest ``archive_manifests`` row of a day."""

    day: date
    archive_url: str
    status: str
    row_count: int
    id_checksum: int
    tenant_count: int
    file_count: int
    bytes: int
    files: list[str]
    manifest: str
    run_id: str
    archived_at: datetime
    raw_dropped_at: datetime | None
    recorded_at: datetime

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def document(self) -> dict[str, Any]:
        return json.loads(self.manifest)

    def values(self) -> list[Any]:
        return [getattr(self, c) for c in _COLUMNS]


def record(client: Client, store: ArchiveStore, archived: ArchivedDay) -> ManifestRow:
    """Write the day's JSON manifest to the archive, then its row to ``archive_manifests``."""
    document = archived.manifest()
    store.write_json(store.manifest_path(archived.day), document)
    files = archived.all_files
    now = datetime.now(UTC)
    row = ManifestRow(
        day=archived.day,
        archive_url=archived.archive_url,
        status="verified",
        row_count=document["row_count"],
        id_checksum=int(document["id_checksum"]),
        tenant_count=len(archived.tenants),
        file_count=len(files),
        bytes=sum(f["bytes"] for f in files),
        files=[f["path"] for f in files],
        manifest=json.dumps(document, sort_keys=True),
        run_id=archived.run_id,
        archived_at=archived.archived_at,
        raw_dropped_at=None,
        recorded_at=now,
    )
    client.insert("archive_manifests", [row.values()], column_names=list(_COLUMNS))
    return row


def latest(client: Client, day: date) -> ManifestRow | None:
    """The day's manifest row, or ``None`` if the day was never archived."""
    result = client.query(
        f"SELECT {', '.join(_COLUMNS)} FROM archive_manifests FINAL WHERE day = {{day:Date}}", parameters={"day": day}
    )
    rows = result.named_results()
    return ManifestRow(**next(iter(rows))) if result.row_count else None


def mark_raw_dropped(client: Client, row: ManifestRow) -> ManifestRow:
    """Record that retention dropped the day's raw events (the archive is now the only copy)."""
    now = datetime.now(UTC)
    updated = ManifestRow(**{**row.__dict__, "raw_dropped_at": now, "recorded_at": now})
    client.insert("archive_manifests", [updated.values()], column_names=list(_COLUMNS))
    return updated
