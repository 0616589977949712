"""The ASGI application: ClickHouse's HTTP interface in front of the chDB engine.

Every engine call runs in a thread pool (chDB releases the GIL while it works), so the event
loop keeps answering ``/ping`` and other requests while long queries run. A request holds one
connection (see `pool`) from its first engine call to its last.

Three ways to run a statement:

- ``INSERT`` with inline data: a streaming insert; the body is decoded and appended in batches
  by the worker threads while the next batch arrives (never held whole in memory);
- a result in a format whose blocks concatenate (Native, TSV, CSV, JSONEachRow...), unless the
  client asked ``wait_end_of_query=1``: streamed block by block; an error after the first block
  is written into the body inside ``X-ClickHouse-Exception-Tag`` markers, as ClickHouse does;
- anything else (Arrow, Parquet, JSON, DDL, ``wait_end_of_query=1``): run to completion, then
  answered with the right status and summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from devstack.warehouse_server import responses
from devstack.warehouse_server.auth import Authenticator, Principal
from devstack.warehouse_server.codecs import Encoder, encoder_for
from devstack.warehouse_server.engine import Connection, Engine, Insert, Stream
from devstack.warehouse_server.errors import QUERY_IS_TOO_LARGE, STD_EXCEPTION, SYNTAX_ERROR, ClickHouseError
from devstack.warehouse_server.grants import Grants
from devstack.warehouse_server.pool import ConnectionPool, Sessions
from devstack.warehouse_server.protocol import (
    ClientGone,
    RequestBody,
    RequestOptions,
    apply_form,
    is_multipart,
    parse_request,
)
from devstack.warehouse_server.sql import Incomplete, Statement, first_keyword, scan

logger = logging.getLogger(__name__)

T = TypeVar("T")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Formats whose per-block outputs concatenate into one valid output.
STREAMABLE_FORMATS = frozenset(
    {
        "Native",
        "RowBinary",
        "TabSeparated",
        "TSV",
        "TabSeparatedRaw",
        "TSVRaw",
        "CSV",
        "JSONEachRow",
        "JSONLines",
        "JSONL",
        "NDJSON",
        "JSONCompactEachRow",
        "JSONStringsEachRow",
        "JSONCompactStringsEachRow",
        "LineAsString",
        "RawBLOB",
        "TSKV",
    }
)
_OK = b"Ok.\n"
_HEAD_LIMIT = 1 << 20  # an INSERT's inline data must start within the first MiB to be streamed


class WarehouseApp:
    """ClickHouse's HTTP interface over an open `Engine` (which the caller closes).

    Every request but ``/ping`` authenticates (`auth`) and every statement is checked against
    its user's grants (`grants`) before the engine sees it.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        authenticator: Authenticator,
        workers: int = 16,
        insert_batch_bytes: int = 1 << 20,
        max_query_bytes: int = 256 << 20,
    ) -> None:
        self.engine = engine
        self._authenticator = authenticator
        self._grants = Grants(engine.table_functions)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="chdb")
        self._pool = ConnectionPool(engine, max_idle=workers)
        self._readonly_pool = ConnectionPool(engine, max_idle=workers)  # connections that have readonly=2
        self._sessions = Sessions(engine)
        self._insert_batch = insert_batch_bytes
        self._max_query = max_query_bytes
        self._display_name = socket.gethostname()

    def close(self) -> None:
        """Wait for running engine calls, then close every connection."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._pool.close()
        self._readonly_pool.close()
        self._sessions.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["path"] in ("/ping", "/replicas_status") and scope["method"] in ("GET", "HEAD"):
                await _plain(send, 200, _OK)
            else:
                await self._request(scope, receive, send)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _request(self, scope: Scope, receive: Receive, send: Send) -> None:
        options: RequestOptions | None = None
        body = RequestBody(receive)
        started = False

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            options = parse_request(scope)
            principal = self._authenticator.authenticate(scope)
            body.use_encoding(options.content_encoding)
            await self._query(principal, options, body, receive, tracked_send)
        except ClientGone:
            return
        except Exception as exc:
            error = ClickHouseError.from_exception(exc)
            if error.code == STD_EXCEPTION:
                logger.exception("unexpected error in the warehouse server")
            if started:  # a streamed response already failed inside its body; nothing else to say
                return
            if not body.done:
                await body.drain()
            query_id = options.query_id if options else ""
            await send(
                {
                    "type": "http.response.start",
                    "status": error.http_status,
                    "headers": responses.error_headers(error, query_id, self._display_name),
                }
            )
            await send({"type": "http.response.body", "body": responses.error_body(error, self.engine.version)})

    async def _read_statement(self, options: RequestOptions, body: RequestBody) -> tuple[Statement, bytes]:
        """The statement and the bytes read so far: URL query, a newline, then the body."""
        prefix = options.url_query.encode() if options.url_query else b""
        if is_multipart(options):
            query = apply_form(options, await body.read_all(self._max_query)) or prefix
            return scan(query, True, _formats(self.engine, first_keyword(query, True))), query
        buf = bytearray(prefix)
        got_body = False
        while True:
            chunk = await body.read()
            complete = chunk is None
            if chunk:
                if prefix and not got_body:
                    buf += b"\n"
                got_body = True
                buf += chunk
                if len(buf) > self._max_query:
                    raise ClickHouseError(QUERY_IS_TOO_LARGE, f"The query is larger than {self._max_query} bytes")
            elif not complete:
                continue
            try:
                keyword = first_keyword(buf, complete)
                if not complete and (keyword != "INSERT" or len(buf) > _HEAD_LIMIT):
                    continue  # any other statement is read whole
                return scan(bytes(buf), complete, _formats(self.engine, keyword)), bytes(buf)
            except Incomplete:
                continue

    async def _lease(self, principal: Principal, options: RequestOptions, settings: dict[str, str]) -> _Lease:
        self._sessions.expire()
        if settings.get("readonly") == "2":  # cannot be undone, but other settings still change
            pooled = self._readonly_pool.lease()
            return _Lease(pooled, lambda: self._readonly_pool.release(pooled))
        if "readonly" in settings:  # readonly=1 cannot be undone, nor any setting changed: a throwaway one
            conn = self.engine.connect()
            conn.reusable = False
            return _Lease(conn, conn.close)
        if options.session_id:  # sessions belong to their user: another user's id is another session
            session_id, timeout = f"{principal.user}/{options.session_id}", options.session_timeout
            conn = await self._sessions.acquire(session_id, options.session_check)
            return _Lease(conn, lambda: self._sessions.release(session_id, timeout))
        conn = self._pool.lease()
        return _Lease(conn, lambda: self._pool.release(conn))

    async def _query(
        self, principal: Principal, options: RequestOptions, body: RequestBody, receive: Receive, send: Send
    ) -> None:
        statement, text = await self._read_statement(options, body)
        if not statement.kind:
            if options.method in ("GET", "HEAD") and not text.strip():
                await _plain(send, 200, _OK)
                return
            raise ClickHouseError(SYNTAX_ERROR, "Empty query")
        checked = statement.insert_head if statement.has_inline_data else text
        assert checked is not None
        await self._run(self._grants.authorize, principal.role, principal.user, checked.decode("utf-8", "replace"))
        settings = dict(options.settings)
        # as ClickHouse: GET requests cannot change data; the reader never can (engine-enforced too)
        if options.method == "GET" or principal.role == "reader":
            settings["readonly"] = "1" if settings.get("readonly") == "1" else "2"
        lease = await self._lease(principal, options, settings)
        try:
            if statement.has_inline_data and options.params:
                # chDB's streaming insert binds no parameters: run the statement whole instead.
                text += await body.read_all(self._max_query - len(text))
                statement = Statement(statement.kind, statement.second)
            if statement.has_inline_data:
                await self._insert(lease, options, settings, statement, text, body, send)
                return
            default = options.default_format or "TabSeparated"  # the request reader always sets one
            fmt = statement.output_format or self.engine.output_formats.get(default.lower(), default)
            if statement.returns_rows and fmt in STREAMABLE_FORMATS and not options.wait_end_of_query:
                await self._stream(lease, options, settings, text, fmt, receive, send)
            else:
                await self._complete(lease, options, settings, statement, text, fmt, send)
        finally:
            lease.release()

    def _headers(self, options: RequestOptions, settings: dict[str, str], **kwargs: Any) -> list[tuple[bytes, bytes]]:
        return responses.headers(
            query_id=options.query_id,
            timezone=settings.get("session_timezone") or self.engine.timezone,
            display_name=self._display_name,
            **kwargs,
        )

    async def _complete(
        self,
        lease: _Lease,
        options: RequestOptions,
        settings: dict[str, str],
        statement: Statement,
        text: bytes,
        fmt: str,
        send: Send,
    ) -> None:
        encoder = encoder_for(options.response_coding)
        conn = lease.conn

        def run() -> tuple[dict[str, str], bytes]:
            conn.prepare(settings, options.database)
            result = conn.query(text, fmt, options.params)
            _after(conn, statement, options)
            data = result.data
            if encoder is not None and data:
                data = encoder.compress(data) + encoder.flush()
            return result.summary, data

        summary, data = await self._run(run)
        lease.release()  # before answering: the client may send its next request at once
        returns_rows = statement.returns_rows or bool(data)
        headers = self._headers(
            options,
            settings,
            summary=summary,
            fmt=fmt if returns_rows else None,
            coding=encoder.name if encoder is not None and data else None,
        )
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _stream(
        self,
        lease: _Lease,
        options: RequestOptions,
        settings: dict[str, str],
        text: bytes,
        fmt: str,
        receive: Receive,
        send: Send,
    ) -> None:
        encoder = encoder_for(options.response_coding)
        conn = lease.conn

        def start() -> tuple[Stream, bytes | None]:
            conn.prepare(settings, options.database)
            stream = conn.stream(text, fmt, options.params)
            try:
                return stream, _encode(encoder, stream.next())
            except BaseException:
                stream.close()
                raise

        stream, chunk = await self._run(start)
        tag = secrets.token_hex(8)
        gone = asyncio.ensure_future(receive())  # the body was read whole: this waits for a disconnect
        try:
            headers = self._headers(
                options, settings, fmt=fmt, coding=encoder.name if encoder else None, exception_tag=tag
            )
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            while chunk is not None:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if _disconnected(gone):
                    return
                try:
                    chunk = await self._run(lambda: _encode(encoder, stream.next()))
                except ClickHouseError as error:
                    block = responses.exception_block(error, self.engine.version, tag)
                    await send({"type": "http.response.body", "body": _encode(encoder, block), "more_body": True})
                    break
            tail = encoder.flush() if encoder is not None else b""
            stream.close()  # at its end already: returns at once
            lease.release()
            await send({"type": "http.response.body", "body": tail})
        finally:
            gone.cancel()
            if stream.open:  # the client left, or sending failed: stop the query
                await self._run(stream.close)

    async def _insert(
        self,
        lease: _Lease,
        options: RequestOptions,
        settings: dict[str, str],
        statement: Statement,
        text: bytes,
        body: RequestBody,
        send: Send,
    ) -> None:
        assert statement.insert_head is not None and statement.insert_format is not None
        head, fmt = statement.insert_head, statement.insert_format
        conn = lease.conn

        def start() -> Insert:
            conn.prepare(settings, options.database)
            return conn.insert(head, fmt)

        insert = await self._run(start)
        pending: asyncio.Future[None] | None = None
        try:
            leftover = text[statement.data_offset :]
            if leftover:
                pending = asyncio.ensure_future(self._run(insert.append, leftover))
            batch: list[bytes] = []
            size = 0
            while (raw := await body.read_raw()) is not None:
                batch.append(raw)
                size += len(raw)
                if size >= self._insert_batch:
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(self._run(_decode_append, body, insert, batch))
                    batch, size = [], 0
            if pending is not None:
                await pending
            pending = None

            def finish() -> dict[str, str]:
                _decode_append(body, insert, batch)
                body.decode_end()
                return insert.finish()

            summary = await self._run(finish)
        except BaseException:
            if pending is not None:
                with contextlib.suppress(BaseException):
                    await pending
            await self._run(insert.cancel)
            raise
        lease.release()
        await send(
            {"type": "http.response.start", "status": 200, "headers": self._headers(options, settings, summary=summary)}
        )
        await send({"type": "http.response.body", "body": b""})


class _Lease:
    """A request's connection and how to give it back (once, as early as possible)."""

    def __init__(self, conn: Connection, give_back: Callable[[], None]) -> None:
        self.conn = conn
        self._give_back: Callable[[], None] | None = give_back

    def release(self) -> None:
        if self._give_back is not None:
            give_back, self._give_back = self._give_back, None
            give_back()


def _formats(engine: Engine, keyword: str) -> dict[str, str]:
    return engine.input_formats if keyword == "INSERT" else engine.output_formats


def _after(conn: Connection, statement: Statement, options: RequestOptions) -> None:
    """Keep what a session statement changed, or retire a pooled connection it changed."""
    if not statement.changes_session:
        return
    if options.session_id and statement.kind in ("SET", "USE"):
        conn.adopt_session_state(statement.kind)
    elif not options.session_id:
        conn.reusable = False


def _disconnected(receiving: asyncio.Future[dict[str, Any]]) -> bool:
    if not receiving.done() or receiving.cancelled():
        return False
    return receiving.exception() is not None or receiving.result().get("type") == "http.disconnect"


def _encode(encoder: Encoder | None, data: bytes | None) -> bytes | None:
    if data is None or encoder is None:
        return data
    return encoder.compress(data)


def _decode_append(body: RequestBody, insert: Insert, raw: list[bytes]) -> None:
    if raw:
        insert.append(body.decode(b"".join(raw)))


async def _plain(send: Send, status: int, text: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=UTF-8")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
