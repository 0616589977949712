"""Request ids, the JSON access log and per-route request counts, as one pure-ASGI wrapper.

The id comes from the client's ``X-Request-ID`` (if short and printable) or is generated; it is
returned in ``X-Request-ID`` and attached to every log line written while handling the request.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import uuid_utils

from gateway.context import request_id
from gateway.metrics import GatewayMetrics

log = logging.getLogger("gateway.access")

KNOWN_ROUTES = frozenset(
    {
        "/api/events",
        "/api/events/batch",
        "/api/health",
        "/api/health/ready",
        "/api/metrics",
        "/metrics",
        "/openapi.json",
        "/api/stream",
        "/ws/events",
    }
)


def _client_id(value: bytes) -> str | None:
    if 0 < len(value) <= 128 and all(33 <= c < 127 for c in value):
        return value.decode("ascii")
    return None


class RequestContext:
    def __init__(self, app: Any, metrics: GatewayMetrics, log_requests: str) -> None:
        self.app = app
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

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            status = 500
            log.exception("request failed", extra={"method": scope.get("method"), "path": scope["path"]})
            raise
        finally:
            path = scope["path"]
            route = path if path in KNOWN_ROUTES else "other"
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
