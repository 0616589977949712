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

INGEST_ROUTES = (EVENTS, EVENTS_BATCH)
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
)
PATHS = frozenset(route.path for route in ROUTES)
