"""Request ids, the JSON access log and per-route request counts, as one pure-ASGI wrapper.

The id comes from the client's ``X-Request-ID`` (if short and printable) or is generated; it is
returned in ``X-Request-ID`` and attached to every log line written while handling the request.

The ingest routes are "hot": their handlers take the ``X-Request-ID`` header to send and return
the status they answered, so they need neither a ``send`` wrapper nor a router of their own (a
coroutine layer costs on the call and again on every resume after awaiting the broker).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uuid_utils

from gateway.context import request_id
from gateway.metrics import GatewayMetrics
from gateway.routes.table import PATHS, route_of

log = logging.getLogger("gateway.access")

KNOWN_ROUTES = PATHS  # requests elsewhere are counted as "other"


def _client_id(value: bytes) -> str | None:
    if 0 < len(value) <= 128 and all(33 <= c < 127 for c in value):
        return value.decode("ascii")
    return None


HotHandler = Callable[[dict[str, Any], Any, Any, tuple[bytes, bytes]], Awaitable[int]]


class RequestContext:
    """Wraps ``app``; requests to a path in ``hot`` go to that handler instead (see the module doc)."""

    def __init__(
        self, app: Any, metrics: GatewayMetrics, log_requests: str, hot: dict[str, HotHandler] | None = None
    ) -> None:
        self.app = app
        self.hot = hot or {}
        self.metrics = metrics
        self.log_all = log_requests == "all"
        self.log_errors = log_requests in ("all", "errors")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        rid = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = _client_id(value)
                break
        rid = rid or str(uuid_utils.uuid7())
        token = request_id.set(rid)
        status = 0
        started = time.perf_counter()
        rid_header = (b"x-request-id", rid.encode())

        hot = self.hot.get(scope["path"]) if scope["type"] == "http" else None
        try:
            if hot is not None:
                status = await hot(scope, receive, send, rid_header)
            else:

                async def send_with_id(message: dict[str, Any]) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                        message["headers"] = [*message.get("headers", ()), rid_header]
                    await send(message)

                await self.app(scope, receive, send_with_id)
        except Exception:
            status = 500
            log.exception("request failed", extra={"method": scope.get("method"), "path": scope["path"]})
            raise
        finally:
            path = scope["path"]
            route = path if path in KNOWN_ROUTES else route_of(path)
            counts, count_key = self.metrics.requests, (route, status or 101)
            counts[count_key] = counts.get(count_key, 0) + 1
            if self.log_all or (self.log_errors and status >= 400):
                log.info(
                    "request",
                    extra={
                        "method": scope.get("method", "GET"),
                        "path": path,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                )
            request_id.reset(token)
