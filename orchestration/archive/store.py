"""The archive's storage: one pyarrow filesystem (local or S3-compatible) and its layout.

Layout under the root::

    tenant=<tenant>/date=YYYY-MM-DD/part-<run>-<n>.parquet   raw events of one tenant and day
    _manifests/date=YYYY-MM-DD.json                           what was archived and verified

Tenant names are percent-encoded in paths (Hive-style partition values).
"""

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from eventpulse.config.orchestration import OrchestrationSettings
from eventpulse.imports.files import filesystem_of


@dataclass(frozen=True)
class ArchiveStore:
    """A filesystem and the root path inside it (``bucket/prefix`` on S3, an absolute path locally)."""

    filesystem: pafs.FileSystem
    root: str
    url: str

    def day_dir(self, tenant: str, day: date) -> str:
        return f"{self.root}/tenant={quote(tenant, safe='')}/date={day.isoformat()}"

    def manifest_path(self, day: date) -> str:
        return f"{self.root}/_manifests/date={day.isoformat()}.json"

    def tenants(self) -> list[str]:
        """Tenants with at least one archived day."""
        infos = self.filesystem.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        names = (Path(i.path).name for i in infos if i.type == pafs.FileType.Directory)
        return sorted(unquote(n.removeprefix("tenant=")) for n in names if n.startswith("tenant="))

    def day_files(self, day: date) -> list[str]:
        """Every Parquet file stored for ``day``, whatever the tenant (manifested or not)."""
        files: list[str] = []
        for tenant in self.tenants():
            selector = pafs.FileSelector(self.day_dir(tenant, day), allow_not_found=True)
            infos = self.filesystem.get_file_info(selector)
            files += [i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")]
        return sorted(files)

    def write_table(self, table: pa.Table, path: str, compression_level: int) -> int:
        """Write ``table`` as zstd Parquet at ``path``; return the file's size in bytes."""
        self.filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(table, path, filesystem=self.filesystem, compression="zstd", compression_level=compression_level)
        return self.filesystem.get_file_info(path).size

    def read_table(self, paths: list[str], columns: list[str] | None = None) -> pa.Table:
        """Read the files back from storage (not from any cache) as one table."""
        tables = [pq.read_table(p, filesystem=self.filesystem, columns=columns) for p in paths]
        return pa.concat_tables(tables) if tables else pa.table({})

    def sizes(self, paths: list[str]) -> dict[str, int | None]:
        """Size of each path, ``None`` where the file is missing."""
        infos = self.filesystem.get_file_info(paths)
        return {i.path: (i.size if i.type == pafs.FileType.File else None) for i in infos}

    def delete(self, paths: list[str]) -> None:
        for path in paths:
            self.filesystem.delete_file(path)

    def write_json(self, path: str, document: dict[str, Any]) -> None:
        self.filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with self.filesystem.open_output_stream(path) as out:
            out.write(json.dumps(document, indent=2, sort_keys=True).encode())

    def read_json(self, path: str) -> dict[str, Any] | None:
        if self.filesystem.get_file_info(path).type != pafs.FileType.File:
            return None
        with self.filesystem.open_input_stream(path) as src:
            return json.loads(src.read())


def open_store(settings: OrchestrationSettings, default_root: Path) -> ArchiveStore:
    """The store ``settings.archive_url`` names: ``s3://bucket/prefix`` or a local path (default ``default_root``)."""
    url = settings.archive_url or str(default_root)
    filesystem, root = filesystem_of(url, settings)
    if isinstance(filesystem, pafs.LocalFileSystem):
        Path(root).mkdir(parents=True, exist_ok=True)
    return ArchiveStore(filesystem, root, url)
