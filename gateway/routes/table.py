"""Every route of the gateway, declared once.

The app mounts exactly these (`gateway.app`), the access log counts requests by them
(`gateway.middleware`), the OpenAPI document describes the ``documented`` ones (checked by
``tests/gateway/test_route_table.py``) and the tests walk them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RouteSpec:
    path: str
    method: str  # an HTTP method, or "WEBSOCKET"
    documented: bool = True  # described in /openapi.json


EVENTS = RouteSpec("/api/events", "POST")
EVENTS_BATCH = RouteSpec("/api/events/batch", "POST")
HEALTH = RouteSpec("/api/health", "GET")
READY = RouteSpec("/api/health/ready", "GET")
METRICS_JSON = RouteSpec("/api/metrics", "GET")
METRICS_PROMETHEUS = RouteSpec("/metrics", "GET")
OPENAPI = RouteSpec("/openapi.json", "GET", documented=False)  # the document itself
STREAM_SSE = RouteSpec("/api/stream", "GET")
SQL = RouteSpec("/api/sql", "POST")
METRICS_QUERY = RouteSpec("/api/metrics/query", "GET")
STREAM_WEBSOCKET = RouteSpec("/ws/events", "WEBSOCKET", documented=False)  # OpenAPI 3.0 has no websockets
INGEST_WEBSOCKET = RouteSpec("/ws/ingest", "WEBSOCKET", documented=False)  # protocol: gateway/ws_ingest.py
WEBHOOKS = RouteSpec("/api/webhooks/{source}", "POST")  # signed by the source's secret, not an API key
SCHEMAS_LIST = RouteSpec("/api/schemas", "GET")  # the schema registry: keys with the schemas scope
SCHEMAS_REGISTER = RouteSpec("/api/schemas/register", "POST")
SCHEMAS_CHECK = RouteSpec("/api/schemas/check", "POST")
SCHEMAS_MODE = RouteSpec("/api/schemas/mode", "PUT")
IMPORT = RouteSpec("/api/import", "POST")  # a file streamed to disk, then imported (gateway/imports.py)

INGEST_ROUTES = (EVENTS, EVENTS_BATCH, IMPORT)
"""Answered by the raw ASGI handlers (`gateway.handlers`), not by Starlette."""

ROUTES: tuple[RouteSpec, ...] = (
    *INGEST_ROUTES,
    HEALTH,
    READY,
    METRICS_JSON,
    METRICS_PROMETHEUS,
    OPENAPI,
    STREAM_SSE,
    SQL,
    METRICS_QUERY,
    STREAM_WEBSOCKET,
    INGEST_WEBSOCKET,
    WEBHOOKS,
    SCHEMAS_LIST,
    SCHEMAS_REGISTER,
    SCHEMAS_CHECK,
    SCHEMAS_MODE,
)
PATHS = frozenset(route.path for route in ROUTES)
_PREFIXED = {route.path.split("{", 1)[0]: route.path for route in ROUTES if "{" in route.path}


def route_of(path: str) -> str:
    """The route-table path a request path is counted under (``/api/webhooks/{source}`` for
    ``/api/webhooks/stripe``), or ``other``."""
    if path in PATHS:
        return path
    for prefix, route in _PREFIXED.items():
        if path.startswith(prefix) and "/" not in path[len(prefix) :]:
            return route
    return "other"
