"""Live window aggregates: WebSocket ``/ws/events`` and Server-Sent Events ``/api/stream``.

Authenticated with a key that has the ``stream`` scope, sent as ``Authorization: Bearer``,
``X-API-Key`` or the ``api_key`` query parameter (browsers cannot set headers on WebSocket and
EventSource). Filters: ``type`` and ``source`` query parameters (repeatable, or comma separated).
"""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from eventpulse.api_keys import SCOPE_STREAM, ApiKey
from gateway.auth import AuthFailure, key_from_headers
from gateway.live_feed import DROPPED, Subscriber
from gateway.routes.health import json_response, services
from gateway.schemas import ErrorBody, Unavailable

_encode = msgspec.json.Encoder().encode
HEARTBEAT_S = 15.0


def _authenticate(conn: HTTPConnection) -> ApiKey | AuthFailure:
    key = key_from_headers(conn.scope["headers"]) or conn.query_params.get("api_key")
    return services(conn).keys.authenticate(key, SCOPE_STREAM)


def _filters(conn: HTTPConnection, name: str) -> frozenset[str]:
    values: set[str] = set()
    for raw in conn.query_params.getlist(name):
        values.update(v.strip() for v in raw.split(",") if v.strip())
    return frozenset(values)


def _subscribe(conn: HTTPConnection, key: ApiKey) -> Subscriber:
    return services(conn).stream.subscribe(key.tenant, _filters(conn, "type"), _filters(conn, "source"))


async def sse(request: Request) -> Response:
    key = _authenticate(request)
    if isinstance(key, AuthFailure):
        if key.status == 503:
            retry = services(request).settings.gateway.retry_after_s
            body = Unavailable(key.error, key.detail, retry)
            return json_response(body, 503, {"Retry-After": str(retry)})
        return json_response(ErrorBody(key.error, key.detail), key.status)
    hub = services(request).stream
    sub = _subscribe(request, key)

    async def events():
        try:
            yield b": connected\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if message is DROPPED:
                    yield b'event: dropped\ndata: {"reason": "consumer too slow"}\n\n'
                    return
                yield b"event: window_aggregates\ndata: " + _encode(message) + b"\n\n"
        finally:
            hub.unsubscribe(sub)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def websocket(ws: WebSocket) -> None:
    key = _authenticate(ws)
    if isinstance(key, AuthFailure):
        await ws.close(code=1008, reason=key.detail[:120])
        return
    await ws.accept()
    hub = services(ws).stream
    sub = _subscribe(ws, key)

    async def drain_client() -> None:  # notice disconnects; the client has nothing to say
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.receive_text()

    reader = asyncio.create_task(drain_client())
    try:
        while not reader.done():
            getter = asyncio.ensure_future(sub.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            message = getter.result()
            if message is DROPPED:
                await ws.close(code=1013, reason="consumer too slow")
                break
            await ws.send_text(_encode(message).decode())
    except WebSocketDisconnect:
        pass
    finally:
        reader.cancel()
        hub.unsubscribe(sub)
