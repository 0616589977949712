"""The response side of ClickHouse's HTTP interface: headers, content types, error bodies.

clickhouse-connect reads ``X-ClickHouse-Summary`` (insert and command statistics),
``X-ClickHouse-Query-Id``, ``X-ClickHouse-Format`` (whether a command returned a result set),
``X-ClickHouse-Timezone`` (the time zone of DateTime columns), ``X-ClickHouse-Exception-Code``
(an error, whatever the status) and ``X-ClickHouse-Exception-Tag`` (the marker of an error
written into a response body that was already streaming).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from devstack.warehouse_server.errors import ClickHouseError

_BINARY = frozenset(
    {
        "native",
        "rowbinary",
        "parquet",
        "arrow",
        "arrowstream",
        "orc",
        "avro",
        "msgpack",
        "npy",
        "buffers",
        "bsoneachrow",
    }
)


def content_type(fmt: str) -> str:
    """The ``Content-Type`` of a result in ``fmt``."""
    lower = fmt.lower()
    if lower in _BINARY or lower.startswith(("rowbinary", "protobuf", "capnproto")):
        return "application/octet-stream"
    if lower.startswith(("json", "ndjson", "prettyjson", "prettyndjson")):
        return "application/json; charset=UTF-8"
    if lower.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if lower.startswith("csv"):
        return "text/csv; charset=UTF-8"
    if lower == "xml":
        return "application/xml; charset=UTF-8"
    return "text/plain; charset=UTF-8"


def headers(
    *,
    query_id: str,
    timezone: str,
    display_name: str,
    summary: Mapping[str, str] | None = None,
    fmt: str | None = None,
    coding: str | None = None,
    exception_tag: str | None = None,
) -> list[tuple[bytes, bytes]]:
    """The headers of a successful response."""
    out = [
        (b"x-clickhouse-query-id", query_id.encode("latin-1", "replace")),
        (b"x-clickhouse-timezone", timezone.encode("latin-1", "replace")),
        (b"x-clickhouse-server-display-name", display_name.encode("latin-1", "replace")),
        (b"x-clickhouse-summary", json.dumps(dict(summary or {}), separators=(",", ":")).encode()),
        (b"content-type", content_type(fmt).encode() if fmt else b"text/plain; charset=UTF-8"),
    ]
    if fmt:
        out.append((b"x-clickhouse-format", fmt.encode()))
    if coding:
        out.append((b"content-encoding", coding.encode()))
    if exception_tag:
        out.append((b"x-clickhouse-exception-tag", exception_tag.encode()))
    return out


def error_body(error: ClickHouseError, version: str) -> bytes:
    """ClickHouse's error text with its version trailer."""
    return f"{error.text} (version {version})\n".encode()


def error_headers(error: ClickHouseError, query_id: str, display_name: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-clickhouse-exception-code", str(error.code).encode()),
        (b"x-clickhouse-query-id", query_id.encode("latin-1", "replace")),
        (b"x-clickhouse-server-display-name", display_name.encode("latin-1", "replace")),
        (b"content-type", b"text/plain; charset=UTF-8"),
    ]


def exception_block(error: ClickHouseError, version: str, tag: str) -> bytes:
    """An error inside a streamed body, framed as ClickHouse 25.11+ does for the given tag.

    ``__exception__\\r\\n<tag>\\r\\n<message>\\n<message length> <tag>\\r\\n__exception__\\r\\n``
    """
    message = error_body(error, version)
    return (
        b"__exception__\r\n" + tag.encode() + b"\r\n" + message + f"{len(message)} {tag}\r\n__exception__\r\n".encode()
    )
