"""The route table (`gateway.routes.table`) is what the app mounts and what the OpenAPI document describes."""

import pytest
from starlette.routing import Route, WebSocketRoute

from eventpulse.settings import Settings
from gateway.app import create_app
from gateway.middleware import RequestContext
from gateway.openapi import build_openapi
from gateway.routes import table
from gateway.routes.table import INGEST_ROUTES, PATHS, ROUTES, RouteSpec


def _mounted(app: RequestContext) -> set[tuple[str, str]]:
    mounted = {(path, "POST") for path in app.hot}
    for route in app.app.routes:
        if isinstance(route, WebSocketRoute):
            mounted.add((route.path, "WEBSOCKET"))
        elif isinstance(route, Route):
            mounted |= {(route.path, method) for method in route.methods or () if method != "HEAD"}
    return mounted


def test_the_app_mounts_exactly_the_table():
    app = create_app(Settings(), configure_logs=False)  # clients are created by the lifespan only
    assert isinstance(app, RequestContext)
    assert _mounted(app) == {(r.path, r.method) for r in ROUTES}
    assert set(app.hot) == {r.path for r in INGEST_ROUTES}
    assert len(PATHS) == len(ROUTES)  # one method per path


def test_the_openapi_document_describes_the_documented_routes():
    settings = Settings()
    paths = build_openapi(settings.gateway, settings.events)["paths"]
    described = {(path, method.upper()) for path, operations in paths.items() for method in operations}
    assert described == {(r.path, r.method) for r in ROUTES if r.documented}


def test_a_documented_route_without_an_operation_fails_the_document(monkeypatch):
    """Negative control: the document is built from the table, so a route added to it without an
    operation is caught at build time, not served undocumented."""
    monkeypatch.setattr(table, "ROUTES", (*table.ROUTES, RouteSpec("/api/new", "GET")))
    with pytest.raises(LookupError, match="/api/new"):
        build_openapi(Settings().gateway, Settings().events)
