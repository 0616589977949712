"""The files of an import: where they are (a path, a directory, ``s3://bucket/prefix``), their format and identity.

Files are read through a pyarrow filesystem (local or S3-compatible, as the archive's store is),
so every source reads the same way. A file's *identity* names it across runs: a hash of its size and
its first and last MiB (a Parquet file's footer is at its end, so two exports of different rows
differ there). Rows without an id are named ``<identity>-<row>``, which is what makes a resumed or
repeated import of the same file produce the same ids, deduplicated by the warehouse.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from pyarrow import fs as pafs

from eventpulse.config.orchestration import OrchestrationSettings

_EDGE = 1 << 20  # bytes hashed at each end of a file


class Format(StrEnum):
    NDJSON = "ndjson"
    CSV = "csv"
    PARQUET = "parquet"


_SUFFIXES = {".ndjson": Format.NDJSON, ".jsonl": Format.NDJSON, ".json": Format.NDJSON}
_SUFFIXES |= {".csv": Format.CSV, ".parquet": Format.PARQUET, ".pq": Format.PARQUET}
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}


@dataclass(frozen=True, slots=True)
class ImportFile:
    """One file to import: ``path`` inside ``filesystem``, ``url`` as the user named it."""

    filesystem: pafs.FileSystem
    path: str
    url: str
    size: int
    format: Format
    compression: str | None  # "gzip" / "zstd" for .gz / .zst (NDJSON and CSV only)

    def identity(self) -> str:
        """A stable name of the file's content (20 hex digits); see the module docstring."""
        digest = hashlib.blake2b(str(self.size).encode(), digest_size=10)
        with self.filesystem.open_input_file(self.path) as src:
            digest.update(src.read(_EDGE))
            if self.size > _EDGE:
                src.seek(max(_EDGE, self.size - _EDGE))
                digest.update(src.read(_EDGE))
        return digest.hexdigest()


def format_of(name: str) -> tuple[Format, str | None] | None:
    """The format and compression a file name says (``events.ndjson.zst``), or None if not an import file."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes.pop()
    found = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if found is None or (compression and found is Format.PARQUET):
        return None
    return found, compression


def filesystem_of(target: str, s3: OrchestrationSettings | None = None) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path inside it that ``target`` (a local path or ``s3://bucket/key``) names.

    S3 is reached with the object-store settings the archive uses (``EVENTPULSE_ORCHESTRATION_S3_*``).
    """
    parts = urlsplit(target)
    if parts.scheme == "s3":
        s3 = s3 or OrchestrationSettings()
        endpoint = urlsplit(s3.s3_endpoint_url) if s3.s3_endpoint_url else None
        filesystem = pafs.S3FileSystem(
            access_key=s3.s3_access_key_id or None,
            secret_key=s3.s3_secret_access_key.get_secret_value() or None,
            region=s3.s3_region,
            endpoint_override=endpoint.netloc if endpoint else None,
            scheme=endpoint.scheme if endpoint else "https",
            allow_bucket_creation=False,
        )
        return filesystem, f"{parts.netloc}{parts.path}".rstrip("/")
    if parts.scheme not in ("", "file"):
        raise ValueError(f"expected a local path or s3://bucket/prefix, got {target!r}")
    local = Path(parts.path if parts.scheme == "file" else target).expanduser().resolve()
    return pafs.LocalFileSystem(), local.as_posix()


def list_files(filesystem: pafs.FileSystem, path: str, url: str) -> list[ImportFile]:
    """The import files at ``path``: the file itself, or every import file under the directory, by name."""
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(url)
    if info.type == pafs.FileType.File:
        infos = [info]
    else:
        infos = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    found: list[ImportFile] = []
    for item in sorted(infos, key=lambda i: i.path):
        kind = format_of(item.base_name)
        if item.type != pafs.FileType.File or kind is None:
            continue
        shown = url if item.path == path else f"{url.rstrip('/')}/{item.path[len(path) :].lstrip('/')}"
        found.append(ImportFile(filesystem, item.path, shown, item.size or 0, kind[0], kind[1]))
    if info.type == pafs.FileType.File and not found:
        raise ValueError(f"{url}: not an import file (.ndjson/.jsonl[.gz|.zst], .csv[.gz|.zst], .parquet)")
    return found
