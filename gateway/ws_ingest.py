"""``/ws/ingest``: events over a WebSocket, each frame answered once the broker acknowledged its events.

The protocol (also in ``gateway/README.md`` and ``docs/operations/websocket-ingest.md``):

* **Handshake**: a key with the ``ingest`` scope, as ``Authorization: Bearer``, ``X-API-Key`` or the
  ``api_key`` query parameter. Refused with the HTTP answer the ingest routes give (401/403/503, JSON
  body); 503 with ``Retry-After`` past ``ws_max_connections`` per process, 429 past
  ``ws_max_connections_per_tenant``.
* **Client → gateway**: text frames, each one event (a JSON object) or an array of events (at most
  ``max_batch_events``, at most ``max_batch_bytes``; a larger frame closes the connection with 1009).
  Frames are numbered from 0 on each connection (``seq``).
* **Gateway → client**, one message per frame, in the order the broker acknowledges them:
  ``{"type": "result", "seq", "accepted", "rejected", "duplicates", "ids", "errors"}`` (the batch
  route's answer: ``ids[i]`` once event ``i`` is on the broker, or null and an ``errors`` entry with
  its reason; rejected events are dead-lettered as over HTTP); ``{"type": "unavailable", "seq",
  "error", "detail", "retry_after_s", "not_accepted", "accepted"}`` (the broker did not acknowledge
  in time, or the producer is full: resend ``not_accepted``); ``{"type": "error", "seq", "error",
  "detail"}`` (the frame is not JSON or holds too many events: nothing of it was taken).
* **Backpressure**: while ``ws_max_unacked`` events of the connection wait for their answer to be
  written, the gateway does not read the next frame (uvicorn's protocol reads one message per
  ``receive``), so the client's sends stall in TCP; memory per connection stays at most
  ``ws_max_unacked`` events plus one frame.
* **Over quota**: a frame the tenant's token bucket cannot pay for (the rate limits of the HTTP
  routes, one token per event) is answered ``{"type": "rate_limited", "seq", "detail",
  "retry_after_s"}``, nothing of it is taken, the frames before it are answered, and the connection is
  closed with **4429** (reason ``rate_limited: retry in N s``). A key revoked while connected closes
  with **1008**, keys that cannot be verified (warehouse away too long) with **1013**.

A client keeps every event it sent until a ``result`` names it and resends the rest (same ids) after a
reconnect: the gateway's memory of acknowledged ids and the warehouse's dedup by id make the resend
count once. Events go through `IngestHandlers.ingest`, the batch route's own path (validation, dead
letters, idempotency, producer, metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import parse_qs

import msgspec
import orjson

from eventpulse.api_keys import SCOPE_INGEST, ApiKey
from eventpulse.events import Rejection, RejectReason
from eventpulse.events.validation import decode_rejection
from gateway.auth import AuthFailure, key_from_headers
from gateway.body_decoding import JSON, BodyError, Submitted, decode_batch
from gateway.context import request_id
from gateway.handlers import IngestHandlers
from gateway.schemas import ErrorBody, EventError, Unavailable

CLOSE_RATE_LIMITED = 4429  # the tenant's rate limit (HTTP 429 on the other routes)
CLOSE_KEY_REFUSED = 1008  # policy violation: the key was revoked while connected
CLOSE_TRY_AGAIN = 1013  # try again later: API keys cannot be verified right now

_encode = msgspec.json.Encoder().encode


class FrameResult(msgspec.Struct, tag_field="type", tag="result"):
    """A frame's events: the valid ones acknowledged by the broker, the others refused (``errors``)."""

    seq: int
    accepted: int
    rejected: int
    duplicates: int
    ids: list[str | None]
    errors: list[EventError]


class FrameUnavailable(msgspec.Struct, tag_field="type", tag="unavailable"):
    """The broker did not acknowledge (some of) a frame's events: resend ``not_accepted`` with the same ids."""

    seq: int
    error: str
    detail: str
    retry_after_s: int
    not_accepted: list[str]
    accepted: list[str]


class FrameError(msgspec.Struct, tag_field="type", tag="error"):
    """The frame as a whole is unusable (not JSON, too many events): nothing of it was taken."""

    seq: int
    error: str
    detail: str


class RateLimited(msgspec.Struct, tag_field="type", tag="rate_limited"):
    """The tenant's bucket cannot pay for the frame: nothing of it was taken; the connection closes with 4429."""

    seq: int
    detail: str
    retry_after_s: int


def decode_frame(body: bytes, max_events: int) -> Submitted | BodyError:
    """A frame's events: an array as the batch route decodes it, an object (or anything else) as one event."""
    if body.lstrip()[:1] == b"[":
        return decode_batch(body, JSON, max_events)
    try:
        return Submitted([orjson.loads(body)])
    except orjson.JSONDecodeError as exc:
        why = decode_rejection(exc)
        if why.reason is RejectReason.MALFORMED_JSON:
            return BodyError(400, RejectReason.MALFORMED_JSON.value, f"frame is not valid JSON: {exc}")
        return Submitted([None], [body], {0: why})  # valid JSON too deep to decode: that event is refused


def _query_key(scope: dict[str, Any]) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key")
    return values[0] if values else None


class WebSocketIngest:
    """The ``/ws/ingest`` ASGI endpoint: authenticates, counts connections, runs one `_Connection` each."""

    def __init__(self, handlers: IngestHandlers) -> None:
        self.handlers = handlers
        gw = handlers.svc.settings.gateway
        self.max_unacked = gw.ws_max_unacked
        self.max_events = gw.max_batch_events
        self.retry_after_s = gw.retry_after_s
        self.drain_s = gw.ack_timeout_s + 1.0  # answers still due when a connection closes
        self._max_connections = gw.ws_max_connections
        self._per_tenant = gw.ws_max_connections_per_tenant
        self.connections = 0
        self._by_tenant: dict[str, int] = {}
        self._live: set[_Connection] = set()
        self.frames_read = 0

    @property
    def unacked(self) -> int:
        """Events read on every connection and not answered yet (at most ``ws_max_unacked`` + one frame each)."""
        return sum(c.unacked for c in self._live)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        key_text = key_from_headers(scope["headers"]) or _query_key(scope)
        key = self.handlers.svc.keys.authenticate(key_text, SCOPE_INGEST)
        if isinstance(key, AuthFailure):
            return await self._refuse(scope, send, key.status, key.error, key.detail)
        tenant, held = key.tenant, self._by_tenant.get(key.tenant, 0)
        if self._max_connections and self.connections >= self._max_connections:
            detail = f"this gateway process serves at most {self._max_connections} WebSocket ingest connections"
            return await self._refuse(scope, send, 503, "too_many_connections", detail)
        if self._per_tenant and held >= self._per_tenant:
            detail = f"a tenant has at most {self._per_tenant} WebSocket ingest connections per gateway process"
            return await self._refuse(scope, send, 429, "too_many_connections", detail)
        self.connections += 1
        self._by_tenant[tenant] = held + 1
        connection = None
        try:
            await send({"type": "websocket.accept"})
            connection = _Connection(self, key_text or "", key, receive, send)
            self._live.add(connection)
            await connection.run()
        finally:
            if connection is not None:
                self._live.discard(connection)
            self.connections -= 1
            left = self._by_tenant[tenant] - 1
            if left:
                self._by_tenant[tenant] = left
            else:
                del self._by_tenant[tenant]

    async def _refuse(self, scope: dict[str, Any], send: Any, status: int, error: str, detail: str) -> None:
        """Refuse the handshake with the ingest routes' HTTP answer (or close 1008 without the extension)."""
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": CLOSE_KEY_REFUSED, "reason": detail[:120]})
            return
        retry = self.retry_after_s
        body = _encode(Unavailable(error, detail, retry) if status == 503 else ErrorBody(error, detail))
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="eventpulse"'))
        elif status in (429, 503):
            headers.append((b"retry-after", b"%d" % retry))
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})


class _Connection:
    """One accepted connection: reads frames while fewer than ``max_unacked`` events wait, answers each."""

    def __init__(self, endpoint: WebSocketIngest, key_text: str, key: ApiKey, receive: Any, send: Any) -> None:
        self.endpoint = endpoint
        self.svc = endpoint.handlers.svc
        self.key_text = key_text
        self.key = key
        self.receive = receive
        self.send = send
        self.unacked = 0  # events read whose answer is not written yet
        self.room = asyncio.Event()
        self.room.set()
        self.deliveries: set[asyncio.Task[None]] = set()
        self.connection_id = request_id.get()

    async def run(self) -> None:
        seq = 0
        limit = self.endpoint.max_unacked
        try:
            while True:
                if self.unacked >= limit:  # backpressure: the next frame stays unread (in TCP)
                    self.room.clear()
                    await self.room.wait()
                message = await self.receive()
                if message["type"] != "websocket.receive":
                    return  # websocket.disconnect
                self.endpoint.frames_read += 1
                data = message.get("text")
                body = data.encode() if data is not None else (message.get("bytes") or b"")
                close = await self.frame(seq, body)
                seq += 1
                if close is not None:
                    await self.settle()
                    with contextlib.suppress(OSError):
                        await self.send({"type": "websocket.close", "code": close[0], "reason": close[1][:120]})
                    return
        finally:
            await self.settle()

    async def frame(self, seq: int, body: bytes) -> tuple[int, str] | None:
        """Take frame ``seq``: answer it now (unusable) or start its delivery; the close to send, if any."""
        svc = self.svc
        key = svc.keys.authenticate(self.key_text, SCOPE_INGEST)
        if isinstance(key, AuthFailure):  # revoked (or unverifiable) since the handshake
            return (CLOSE_TRY_AGAIN if key.status == 503 else CLOSE_KEY_REFUSED), key.detail
        received_ms = time.time_ns() // 1_000_000
        # Dead letters are named gateway:<request id>:<index>; each frame is a request of its own.
        token = request_id.set(f"{self.connection_id}:{seq}")
        try:
            submitted = decode_frame(body, self.endpoint.max_events)
            if isinstance(submitted, BodyError):
                if submitted.status == 400:
                    why = Rejection(RejectReason.MALFORMED_JSON, None, submitted.detail)
                    self.endpoint.handlers.dead_letter(key.tenant, 0, why, body, received_ms)
                await self.answer(FrameError(seq, submitted.error, submitted.detail))
                return None
            count = len(submitted)
            bucket = svc.limiter.bucket(key.tenant, key.rate_per_s, key.burst)
            if not await bucket.admit(count):
                decision = bucket.refusal(count)
                svc.metrics.requests_rate_limited += 1
                svc.metrics.events_rate_limited += count
                detail = f"tenant rate limit exceeded; retry in {decision.retry_after_s} s"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.answer(RateLimited(seq, detail, decision.retry_after_s)), 1.0)
                return CLOSE_RATE_LIMITED, f"rate_limited: retry in {decision.retry_after_s} s"
            self.unacked += count
            task = asyncio.create_task(self.deliver(seq, key.tenant, submitted, received_ms, count))
            self.deliveries.add(task)
            task.add_done_callback(self.deliveries.discard)
            return None
        finally:
            request_id.reset(token)

    async def deliver(self, seq: int, tenant: str, submitted: Submitted, received_ms: int, count: int) -> None:
        """Validate and produce through the batch route's path; answer once the broker acknowledged."""
        try:
            outcome = await self.endpoint.handlers.ingest(tenant, submitted, received_ms)
            if isinstance(outcome, Unavailable):
                reply: Any = FrameUnavailable(
                    seq, outcome.error, outcome.detail, outcome.retry_after_s, outcome.not_accepted, outcome.accepted
                )
            else:
                ids, errors, duplicates = outcome
                reply = FrameResult(seq, count - len(errors), len(errors), duplicates, ids, errors)
            await self.answer(reply)
        except OSError:  # the client went away (uvicorn's ClientDisconnected): it resends what it has no answer for
            pass
        finally:
            self.unacked -= count
            if self.unacked < self.endpoint.max_unacked:
                self.room.set()

    async def answer(self, reply: Any) -> None:
        await self.send({"type": "websocket.send", "text": _encode(reply).decode()})

    async def settle(self) -> None:
        """Let deliveries in flight finish (their events are produced; ids remembered), for a bounded time."""
        if self.deliveries:
            await asyncio.wait(set(self.deliveries), timeout=self.endpoint.drain_s)
