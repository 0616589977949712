"""Reading a request of ClickHouse's HTTP interface: where the query is, its parameters, settings.

A request carries its query in the URL (``?query=``), at the head of the body, or both (the
URL part, a newline, then the body, which is how inserts send their data). URL parameters are
either interface parameters (``database``, ``default_format``, ``query_id``, ``session_id``...),
bound query parameters (``param_<name>``), or settings for this one query. Multipart bodies
carry the query and parameters as form fields (clickhouse-connect sends them that way when the
parameters are too long for a URL).
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from devstack.warehouse_server.codecs import Decoder, decoder_for, negotiate
from devstack.warehouse_server.errors import (
    BAD_ARGUMENTS,
    CANNOT_DECOMPRESS,
    INVALID_SESSION_TIMEOUT,
    NOT_IMPLEMENTED,
    QUERY_IS_TOO_LARGE,
    ClickHouseError,
)

# Parameters the HTTP layer consumes, or client-side settings the engine must not see.
_INTERFACE_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "wait_end_of_query",
        "http_wait_end_of_query",
        "client_protocol_version",
        "buffer_size",
        "http_response_buffer_size",
        "quota_key",
        "user",
        "password",
        "role",
        "stacktrace",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "add_http_cors_header",
        "http_native_compression_disable_checksumming_on_decompress",
    }
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE = ("1", "true", "yes", "on")
DEFAULT_SESSION_TIMEOUT_S = 60
MAX_SESSION_TIMEOUT_S = 3600


@dataclass
class RequestOptions:
    """Everything about a request except its body."""

    method: str
    url_query: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    default_format: str | None = None
    """The format of results without a FORMAT clause (ClickHouse's default: TabSeparated)."""
    query_id: str = ""
    session_id: str | None = None
    session_timeout: int = DEFAULT_SESSION_TIMEOUT_S
    session_check: bool = False
    wait_end_of_query: bool = False
    response_coding: str | None = None
    content_encoding: str | None = None
    content_type: str = ""

    def add_field(self, name: str, value: str) -> None:
        """Take one URL parameter or form field."""
        if name.startswith("param_"):
            self.params[name[len("param_") :]] = value
        elif name == "query":
            self.url_query = value
        elif name == "database":
            self.database = value or None
        elif name == "default_format":
            self.default_format = value or None
        elif name == "query_id":
            self.query_id = value
        elif name == "session_id":
            self.session_id = value or None
        elif name == "session_timeout":
            self.session_timeout = _session_timeout(value)
        elif name == "session_check":
            self.session_check = value.lower() in _TRUE
        elif name in ("wait_end_of_query", "http_wait_end_of_query"):
            self.wait_end_of_query = value.lower() in _TRUE
        elif name in ("compress", "decompress") and value.lower() in _TRUE:
            raise ClickHouseError(
                NOT_IMPLEMENTED,
                f"'{name}=1' (ClickHouse's native block compression) is not supported by this server; "
                "use HTTP compression (Content-Encoding / Accept-Encoding)",
            )
        elif name not in _INTERFACE_PARAMS:
            if not _SETTING_NAME.match(name):
                raise ClickHouseError(BAD_ARGUMENTS, f"Invalid setting name: {name!r}")
            self.settings[name] = value


def _session_timeout(value: str) -> int:
    try:
        timeout = int(value)
    except ValueError:
        raise ClickHouseError(INVALID_SESSION_TIMEOUT, f"Invalid session timeout: '{value}'") from None
    if timeout < 0 or timeout > MAX_SESSION_TIMEOUT_S:
        raise ClickHouseError(
            INVALID_SESSION_TIMEOUT, f"Session timeout '{timeout}' is larger than max_session_timeout: 3600"
        )
    return timeout


def parse_request(scope: dict) -> RequestOptions:
    """The options of an ASGI HTTP request (URL parameters and headers)."""
    headers = {name.decode("latin-1").lower(): value.decode("utf-8", "replace") for name, value in scope["headers"]}
    options = RequestOptions(method=scope["method"].upper())
    enable_compression = False
    query_string = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query_string, keep_blank_values=True, encoding="utf-8", errors="replace"):
        if name == "enable_http_compression":
            enable_compression = value.lower() in _TRUE
        options.add_field(name, value)
    if options.database is None and headers.get("x-clickhouse-database"):
        options.database = headers["x-clickhouse-database"]
    if options.default_format is None:
        options.default_format = headers.get("x-clickhouse-format") or "TabSeparated"
    if not options.query_id:
        options.query_id = str(uuid.uuid4())
    if enable_compression:
        options.response_coding = negotiate(headers.get("accept-encoding"))
    options.content_encoding = headers.get("content-encoding")
    options.content_type = headers.get("content-type", "")
    return options


def is_multipart(options: RequestOptions) -> bool:
    return options.content_type.lower().startswith("multipart/form-data")


def apply_form(options: RequestOptions, body: bytes) -> bytes:
    """Take the fields of a multipart body; returns the body's query text (``b""`` if none).

    External data (file parts: temporary tables sent with the query) is not supported.
    """
    head = f"Content-Type: {options.content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    query = b""
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            raise ClickHouseError(NOT_IMPLEMENTED, "External data (file parts) is not supported by this server")
        payload = part.get_payload(decode=True)  # bytes for a non-multipart part (None if empty)
        payload = payload if isinstance(payload, bytes) else b""
        if not isinstance(name, str):
            continue
        if name == "query":
            query = payload
        else:
            options.add_field(name, payload.decode("utf-8", "replace"))
    return query


class ClientGone(Exception):
    """The client closed the connection before the request was answered."""


class RequestBody:
    """A request body read from ASGI as it arrives, raw or decoded by its Content-Encoding."""

    def __init__(self, receive: Callable[[], Awaitable[dict]]) -> None:
        self._receive = receive
        self._encoding: str | None = None
        self.decoder: Decoder = decoder_for(None)
        self.done = False

    def use_encoding(self, content_encoding: str | None) -> None:
        """Decode by ``content_encoding`` (raises if unknown; the body can still be drained)."""
        self.decoder = decoder_for(content_encoding)
        self._encoding = content_encoding

    async def read_raw(self) -> bytes | None:
        """The next chunk as sent (``None`` at the end)."""
        while not self.done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.done = True
                raise ClientGone
            self.done = not message.get("more_body", False)
            if message.get("body"):
                return message["body"]
        return None

    async def read(self) -> bytes | None:
        """The next decoded chunk (possibly ``b""`` inside a frame; ``None`` at the end)."""
        raw = await self.read_raw()
        if raw is None:
            self.decode_end()
            return None
        return self.decode(raw)

    async def read_all(self, limit: int) -> bytes:
        parts, size = [], 0
        while (chunk := await self.read()) is not None:
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ClickHouseError(QUERY_IS_TOO_LARGE, f"The request body is larger than {limit} bytes")
        return b"".join(parts)

    def decode(self, raw: bytes) -> bytes:
        """Decode one raw chunk (chunks must be decoded in order, one call at a time)."""
        try:
            return self.decoder.decode(raw)
        except ClickHouseError:
            raise
        except Exception as exc:
            raise ClickHouseError(CANNOT_DECOMPRESS, f"Cannot decode the {self._encoding} body: {exc}") from None

    def decode_end(self) -> None:
        self.decoder.finish()

    async def drain(self) -> None:
        """Read and drop the rest of the body, so that an error answer reaches the client."""
        try:
            while await self.read_raw() is not None:
                pass
        except ClientGone:
            pass
