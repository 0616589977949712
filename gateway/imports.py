"""``POST /api/import``: a file of events (NDJSON, CSV or Parquet) uploaded in one request, imported like
`eventpulse import` does it.

The body is streamed to a temporary file (never held in memory) and refused with 413 as soon as it
passes ``EVENTPULSE_IMPORT_MAX_UPLOAD_BYTES``; the file is then imported on a worker thread by
`eventpulse.imports` (the same validation, columnar path, topic and dead letters as the CLI) under
the API key's tenant, and the answer says how many rows were accepted and refused once the broker
acknowledged every accepted one. Rows without an id are named ``<file identity>-<row>``, so
uploading the same file again (a retry after a 503 or a lost answer) produces the same ids, which
the warehouse deduplicates. Keys and scopes are the batch route's (``ingest``); at most
``EVENTPULSE_IMPORT_MAX_CONCURRENT_UPLOADS`` files are imported at once, others wait their turn.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from eventpulse.api_keys import SCOPE_INGEST
from eventpulse.imports.files import filesystem_of, list_files
from eventpulse.imports.runner import FileResult, ImportFailed
from eventpulse.imports.service import importer
from gateway.asgi import ClientDisconnected, header, send_json
from gateway.auth import AuthFailure, key_from_headers
from gateway.body_decoding import media_type
from gateway.handlers import CLIENT_GONE, Rid, auth_failure
from gateway.schemas import ErrorBody, ImportResult, Unavailable
from gateway.services import GatewayServices

SUFFIXES = {
    "application/x-ndjson": ".ndjson",
    "application/jsonl": ".ndjson",
    "text/csv": ".csv",
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
}
"""The content types taken, and the file name suffix each is read as."""
_CODINGS = {b"gzip": ".gz", b"zstd": ".zst"}


class _TooLarge(Exception):
    pass


class ImportUpload:
    def __init__(self, services: GatewayServices) -> None:
        self.svc = services
        self._uploads = asyncio.Semaphore(services.settings.imports.max_concurrent_uploads)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any, rid: Rid) -> int:
        if scope["method"] != "POST":
            return await send_json(send, 405, ErrorBody("method_not_allowed", "use POST"), [(b"allow", b"POST"), rid])
        svc = self.svc
        key = svc.keys.authenticate(key_from_headers(scope["headers"]), SCOPE_INGEST)
        if isinstance(key, AuthFailure):
            return await auth_failure(send, key, svc.settings.gateway.retry_after_s, rid)
        suffix = SUFFIXES.get(media_type(header(scope, b"content-type")))
        coding = header(scope, b"content-encoding")
        if suffix is None or (coding is not None and (coding not in _CODINGS or suffix == ".parquet")):
            detail = f"send one of {', '.join(SUFFIXES)}; NDJSON and CSV may be Content-Encoding gzip or zstd"
            return await send_json(send, 415, ErrorBody("unsupported_media_type", detail), [rid])
        limit = svc.settings.imports.max_upload_bytes
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._too_large(send, limit, rid)
        directory = Path(tempfile.mkdtemp(prefix="eventpulse-upload-"))
        path = directory / f"upload{suffix}{_CODINGS[coding] if coding else ''}"
        try:
            try:
                await _spool(receive, path, limit)
            except _TooLarge:
                return await self._too_large(send, limit, rid)
            except ClientDisconnected:
                return CLIENT_GONE
            async with self._uploads:
                try:
                    result = await asyncio.to_thread(self._import, path, key.tenant)
                except ImportFailed as exc:
                    retry = svc.settings.gateway.retry_after_s
                    body = Unavailable("broker_unavailable", f"{exc}; upload the file again", retry)
                    return await send_json(send, 503, body, [(b"retry-after", str(retry).encode()), rid])
                except (ValueError, OSError, pa.ArrowException) as exc:  # not readable as its type says
                    return await send_json(send, 400, ErrorBody("unreadable_file", str(exc)[:500]), [rid])
            svc.metrics.events_accepted += result.accepted
            answer = ImportResult(result.identity, result.rows, result.accepted, result.rejected)
            return await send_json(send, 200, answer, [rid])
        finally:
            path.unlink(missing_ok=True)
            directory.rmdir()

    def _import(self, path: Path, tenant: str) -> FileResult:
        file = list_files(*filesystem_of(str(path)), str(path))[0]
        with importer(self.svc.settings, tenant, checkpoints=False) as run:
            return run.import_file(file)

    @staticmethod
    async def _too_large(send: Any, limit: int, rid: Rid) -> int:
        detail = f"an upload is at most {limit} bytes (EVENTPULSE_IMPORT_MAX_UPLOAD_BYTES)"
        return await send_json(send, 413, ErrorBody("payload_too_large", detail), [rid])


async def _spool(receive: Any, path: Path, limit: int) -> int:
    """Write the request body to ``path``; raises `_TooLarge` past ``limit`` bytes."""
    size = 0
    with path.open("wb") as out:
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            out.write(chunk)
            if not message.get("more_body", False):
                return size
