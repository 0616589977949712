"""Export one day of raw events to Parquet, read it back, and prove it equals the warehouse.

A day is written per tenant as ``part-<run>-<n>.parquet`` files (zstd, at most
``rows_per_file`` rows each), streamed from ``events FINAL`` in Arrow batches. The files are
then read back from storage and their row count and id checksum compared with the warehouse's,
per tenant, before and after the export (a late insert during the export fails the run rather
than leaving an archive that misses it). Only then are older files of the day deleted and the
manifest written.
"""

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from clickhouse_connect.driver.client import Client

from eventpulse.events.arrow import RAW_EVENT_SCHEMA, TIMESTAMP_MS
from orchestration.archive.checksum import DayStats, day_bounds, id_checksum, total, warehouse_day_stats
from orchestration.archive.store import ArchiveStore

log = logging.getLogger(__name__)

ARCHIVE_SCHEMA = RAW_EVENT_SCHEMA.append(pa.field("ingested_at", TIMESTAMP_MS)).append(
    pa.field("data_schema_version", pa.uint32())
)
"""The archived columns: every column of ``events``, in table order."""


def conform(table: pa.Table) -> pa.Table:
    """``table`` (files read back from the archive) in `ARCHIVE_SCHEMA`.

    Files archived before ``data_schema_version`` existed (migration 0161) lack it: it reads as 0, the
    value ``events`` gives rows without one.
    """
    if "data_schema_version" not in table.column_names:
        table = table.append_column("data_schema_version", pa.array([0] * table.num_rows, pa.uint32()))
    return table.select(ARCHIVE_SCHEMA.names).cast(ARCHIVE_SCHEMA)


class ArchiveVerificationError(RuntimeError):
    """The files read back do not match the warehouse."""


@dataclass
class ArchivedDay:
    """What one export wrote and verified."""

    day: date
    run_id: str
    archive_url: str
    tenants: dict[str, DayStats] = field(default_factory=dict)
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # tenant -> [{path, rows, bytes}]
    removed_files: list[str] = field(default_factory=list)
    archived_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def all_files(self) -> list[dict[str, Any]]:
        return [f for files in self.files.values() for f in files]

    def manifest(self) -> dict[str, Any]:
        whole = total(self.tenants)
        return {
            "day": self.day.isoformat(),
            "status": "verified",
            "archive_url": self.archive_url,
            "run_id": self.run_id,
            "archived_at": self.archived_at.isoformat(),
            "row_count": whole.rows,
            "id_checksum": str(whole.checksum),
            "checksum_function": "sum(halfMD5(id)) mod 2^64",
            "tenants": {
                tenant: {**stats.as_dict(), "id_checksum": str(stats.checksum), "files": self.files.get(tenant, [])}
                for tenant, stats in sorted(self.tenants.items())
            },
        }


def _relative(store: ArchiveStore, path: str) -> str:
    return path.removeprefix(store.root + "/")


def _write_tenant(
    client: Client, store: ArchiveStore, day: date, tenant: str, run_id: str, rows_per_file: int, level: int
) -> list[dict[str, Any]]:
    start, end = day_bounds(day)
    sql = (
        f"SELECT {', '.join(ARCHIVE_SCHEMA.names)} FROM events FINAL WHERE tenant = {{tenant:String}} "
        "AND timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')} "
        "ORDER BY timestamp, id"
    )
    files: list[dict[str, Any]] = []
    writer: pq.ParquetWriter | None = None
    path, rows_in_file = "", 0

    def close() -> None:
        nonlocal writer
        if writer is not None:
            writer.close()
            size = store.filesystem.get_file_info(path).size
            files.append({"path": _relative(store, path), "rows": rows_in_file, "bytes": size})
            writer = None

    with client.query_arrow_stream(sql, parameters={"tenant": tenant, "start": start, "end": end}) as stream:
        for batch in stream:
            table = pa.Table.from_batches([batch]).cast(ARCHIVE_SCHEMA)
            offset = 0
            while offset < table.num_rows:
                if writer is None:
                    path = f"{store.day_dir(tenant, day)}/part-{run_id[:8]}-{len(files):05d}.parquet"
                    store.filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
                    writer = pq.ParquetWriter(
                        path, ARCHIVE_SCHEMA, filesystem=store.filesystem, compression="zstd", compression_level=level
                    )
                    rows_in_file = 0
                chunk = table.slice(offset, rows_per_file - rows_in_file)
                writer.write_table(chunk)
                rows_in_file += chunk.num_rows
                offset += chunk.num_rows
                if rows_in_file >= rows_per_file:
                    close()
    close()
    return files


def read_back_stats(store: ArchiveStore, files: list[str]) -> dict[str, DayStats]:
    """``{tenant: DayStats}`` of the given files, read from storage."""
    counts: dict[str, int] = defaultdict(int)
    sums: dict[str, int] = defaultdict(int)
    for path in files:
        table = pq.read_table(path, filesystem=store.filesystem, columns=["tenant", "id"])
        for tenant in pc.unique(table["tenant"]).to_pylist():
            ids = table.filter(pc.equal(table["tenant"], tenant))["id"].to_pylist()
            counts[tenant] += len(ids)
            sums[tenant] += id_checksum(ids)
    return {t: DayStats(counts[t], sums[t] & ((1 << 64) - 1)) for t in counts}


def _differences(expected: dict[str, DayStats], actual: dict[str, DayStats]) -> list[str]:
    return [
        f"{tenant}: warehouse {expected.get(tenant)} vs archive {actual.get(tenant)}"
        for tenant in sorted(expected.keys() | actual.keys())
        if expected.get(tenant) != actual.get(tenant)
    ]


def export_day(
    client: Client,
    store: ArchiveStore,
    day: date,
    run_id: str,
    rows_per_file: int = 1_000_000,
    compression_level: int = 3,
    progress: Callable[[str], None] = log.info,
) -> ArchivedDay:
    """Archive ``day``: write, read back, verify against the warehouse, then drop stale files.

    Raises:
        ArchiveVerificationError: when the files read back differ from the warehouse, or the
            day changed in the warehouse during the export. The previous files stay in place.
    """
    before = warehouse_day_stats(client, day)
    result = ArchivedDay(day, run_id, store.url, tenants=before)
    for tenant in sorted(before):
        result.files[tenant] = _write_tenant(client, store, day, tenant, run_id, rows_per_file, compression_level)
        progress(f"{day}: tenant {tenant}: {before[tenant].rows} rows in {len(result.files[tenant])} file(s)")
    written = [f"{store.root}/{f['path']}" for f in result.all_files]
    read_back = read_back_stats(store, written)
    after = warehouse_day_stats(client, day)
    problems = _differences(before, read_back) + [f"changed during export: {d}" for d in _differences(before, after)]
    if problems:
        store.delete(written)
        raise ArchiveVerificationError(f"archive of {day} does not match the warehouse: " + "; ".join(problems))
    result.removed_files = [_relative(store, p) for p in store.day_files(day) if p not in set(written)]
    store.delete([f"{store.root}/{p}" for p in result.removed_files])
    return result
