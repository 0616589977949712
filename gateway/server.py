"""uvicorn as the gateway runs it: read deadlines for request headers and bodies, and a connection limit.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) and answers requests beyond
``limit_concurrency`` with 503, but it sets no deadline on *reading* a request: a client that
connects and sends its headers, or its body, a byte at a time keeps its connection for ever
(measured: 1,200 slow-header and 1,000 slow-body connections all held open). `DeadlineProtocol`
is uvicorn's httptools protocol plus those two deadlines, as nginx has them
(``client_header_timeout``, ``client_body_timeout``) and Go's ``http.Server`` (``ReadHeaderTimeout``,
``ReadTimeout``):

* **headers**: from the moment the connection is made (its first request) or the request's first
  byte arrives (later requests; the idle time between them is uvicorn's keep-alive timeout),
  until the end of its headers;
* **body**: from the end of the headers until the end of the body.

A connection past a deadline gets ``408 Request Timeout`` (with ``connection: close``) if no
answer has started, and is closed; the ASGI app, if it was reading that body, gets
``http.disconnect``.

Cost: nothing per request (no timer, no override on the request path). One sweep per server,
every eighth of the shorter deadline (at most once a second), looks at each connection: a
deadline is kept to within two sweeps (the sweep notes when it first saw a request's phase). The
sweep stops while the server has no connections.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from eventpulse.config.gateway import GatewaySettings

log = logging.getLogger("gateway.server")


@dataclass(frozen=True, slots=True)
class ReadDeadlines:
    """Seconds allowed to read a request's headers and its body (0: no deadline)."""

    header_s: float
    body_s: float

    @property
    def sweep_s(self) -> float:
        """How often connections are checked: an eighth of the shorter deadline, 20 ms to 1 s."""
        shortest = min(s for s in (self.header_s, self.body_s) if s > 0)
        return min(1.0, max(0.02, shortest / 8))


def _response(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
        % (
            status,
            len(text),
            text,
        )
    )


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `ReadDeadlines` (see the module doc).

    Built by uvicorn through `protocol_factory` (``Config(http=...)`` takes any callable that
    returns a protocol; a `functools.partial` of this class pickles, so ``--workers`` works).
    Only ``connection_made`` is overridden: the sweep tells a request's phase from uvicorn's own
    per-request objects (a new ``scope`` when a request begins, a new ``cycle`` holding it when its
    headers are complete, ``cycle.more_body`` until its body is), so a request costs nothing extra.
    """

    def __init__(self, *args: Any, deadlines: ReadDeadlines, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadlines = deadlines
        self.connected_at = 0.0
        self._phase_marker: object = None  # the scope (headers) or cycle (body) seen by the last sweep...
        self._phase_seen = 0.0  # ...and when it was first seen

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.connected_at = self.loop.time()
        _Sweeper.watch(self)

    def expired(self, now: float) -> bool:
        """Whether this connection is past a read deadline (and then answers 408 if it can, and closes)."""
        if self.transport is None or self.transport.is_closing():
            return False
        cycle = self.cycle
        if cycle is None:  # the first request's headers: counted from the connection
            limit, started, what = self.deadlines.header_s, self.connected_at, b"headers"
        elif cycle.scope is not self.scope:  # a later request began and its headers are not complete
            if not cycle.response_complete:
                return False  # an earlier request is still being answered (pipelining): not the client's delay
            limit, started, what = self.deadlines.header_s, self._seen(self.scope, now), b"headers"
        elif cycle.more_body and not self.flow.read_paused:  # (paused: the app has not taken what came)
            limit, started, what = self.deadlines.body_s, self._seen(cycle, now), b"body"
        else:
            return False
        if not limit or now - started <= limit:
            return False
        if cycle is None or (what == b"headers" or not cycle.response_started):
            self.transport.write(_response(b"408 Request Timeout", b"request %s not received in time" % what))
        if cycle is not None and what == b"body":  # the app reading it gets http.disconnect, its answer goes nowhere
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()
        return True

    def _seen(self, marker: object, now: float) -> float:
        """When the sweeps first saw the phase ``marker`` stands for."""
        if marker is not self._phase_marker:
            self._phase_marker, self._phase_seen = marker, now
        return self._phase_seen


def uvicorn_options(gw: GatewaySettings) -> dict[str, Any]:
    """The connection settings of ``gw`` as keyword arguments of ``uvicorn.Config`` / ``uvicorn.run``.

    With ``tls_certfile``/``tls_keyfile`` uvicorn serves HTTPS only (its ``ssl_*`` options).
    """
    tls = {"ssl_certfile": str(gw.tls_certfile), "ssl_keyfile": str(gw.tls_keyfile)} if gw.tls_certfile else {}
    return {
        "http": protocol_factory(gw.header_timeout_s, gw.body_timeout_s),
        "limit_concurrency": gw.max_connections or None,
        "timeout_keep_alive": gw.keep_alive_s,
        # WebSockets: the protocol that reads one message per receive (the /ws/ingest backpressure relies
        # on it, see gateway/ws_ingest.py); a message is at most a batch request's size (else close 1009).
        "ws": "websockets-sansio",
        "ws_max_size": gw.max_batch_bytes,
        **tls,
    }


def protocol_factory(header_timeout_s: float, body_timeout_s: float) -> Any:
    """What to pass as uvicorn's ``http=``: `DeadlineProtocol`, or uvicorn's own when both deadlines are 0."""
    if header_timeout_s <= 0 and body_timeout_s <= 0:
        return "httptools"
    return functools.partial(DeadlineProtocol, deadlines=ReadDeadlines(header_timeout_s, body_timeout_s))


class _Sweeper:
    """Closes a server's connections past their read deadline, every `ReadDeadlines.sweep_s`."""

    _by_server: ClassVar[weakref.WeakKeyDictionary[Any, _Sweeper]] = weakref.WeakKeyDictionary()  # per ServerState

    def __init__(self, protocol: DeadlineProtocol) -> None:
        self.connections = protocol.connections  # the server's set (uvicorn's ServerState)
        self.loop = protocol.loop
        self.interval = protocol.deadlines.sweep_s
        self.timer: asyncio.TimerHandle | None = None
        self.closed = 0

    @classmethod
    def watch(cls, protocol: DeadlineProtocol) -> None:
        """Make sure the sweep of ``protocol``'s server runs."""
        sweeper = cls._by_server.get(protocol.server_state)
        if sweeper is None:
            sweeper = cls._by_server[protocol.server_state] = cls(protocol)
        if sweeper.timer is None:
            sweeper.timer = sweeper.loop.call_later(sweeper.interval, sweeper.sweep)

    def sweep(self) -> None:
        now = self.loop.time()
        closed = 0
        for connection in list(self.connections):
            if isinstance(connection, DeadlineProtocol) and connection.expired(now):
                closed += 1
        if closed:
            self.closed += closed
            log.info("closed connections past their read deadline", extra={"closed": closed, "total": self.closed})
        self.timer = self.loop.call_later(self.interval, self.sweep) if self.connections else None
