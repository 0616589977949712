"""The gateway's ASGI application: ``create_app(settings=None)``.

The two ingest routes are answered by raw ASGI handlers (`gateway.handlers`): at one core they are
the whole cost of the service, and a framework's request objects and routing halved throughput in
our measurements (see ``gateway/README.md``). Everything else (health, metrics, OpenAPI, live
stream) is a small Starlette app behind them. One pure-ASGI wrapper (`RequestContext`) adds request
ids and the access log and sends the ingest paths to their handlers; CORS (Starlette's
middleware) is added when origins are configured.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from eventpulse.settings import Settings
from gateway.handlers import IngestHandlers
from gateway.imports import ImportUpload
from gateway.logs import configure_logging
from gateway.middleware import RequestContext
from gateway.openapi import build_openapi
from gateway.routes import health, query, schemas, stream, table
from gateway.routes.webhooks import WebhookIntake
from gateway.services import build_services
from gateway.ws_ingest import WebSocketIngest

_encode = msgspec.json.Encoder().encode


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> Any:
    """The gateway ASGI app for ``settings`` (read from the environment when None).

    Clients (producer, warehouse, admin) are created by the app's lifespan, not here.
    """
    settings = settings or Settings()
    gw = settings.gateway
    if configure_logs:
        configure_logging(gw.log_level)
    services = build_services(settings)
    openapi_body = _encode(build_openapi(gw, settings.events))

    async def openapi(request: Request) -> Response:
        return Response(openapi_body, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    ingest = IngestHandlers(services)
    webhooks = WebhookIntake(ingest, services.webhook_sources, services.replays)
    fallback = Starlette(
        routes=[
            Route(table.HEALTH.path, health.liveness, methods=[table.HEALTH.method]),
            Route(table.READY.path, health.readiness, methods=[table.READY.method]),
            Route(table.METRICS_JSON.path, health.metrics_json, methods=[table.METRICS_JSON.method]),
            Route(table.METRICS_PROMETHEUS.path, health.metrics_prometheus, methods=[table.METRICS_PROMETHEUS.method]),
            Route(table.OPENAPI.path, openapi, methods=[table.OPENAPI.method]),
            Route(table.STREAM_SSE.path, stream.sse, methods=[table.STREAM_SSE.method]),
            Route(table.SQL.path, query.sql, methods=[table.SQL.method]),
            Route(table.METRICS_QUERY.path, query.metrics_query, methods=[table.METRICS_QUERY.method]),
            Route(table.WEBHOOKS.path, webhooks.handle, methods=[table.WEBHOOKS.method]),
            Route(table.SCHEMAS_LIST.path, schemas.list_schemas, methods=[table.SCHEMAS_LIST.method]),
            Route(table.SCHEMAS_REGISTER.path, schemas.register, methods=[table.SCHEMAS_REGISTER.method]),
            Route(table.SCHEMAS_CHECK.path, schemas.check, methods=[table.SCHEMAS_CHECK.method]),
            Route(table.SCHEMAS_MODE.path, schemas.set_mode, methods=[table.SCHEMAS_MODE.method]),
            WebSocketRoute(table.STREAM_WEBSOCKET.path, stream.websocket),
            WebSocketRoute(table.INGEST_WEBSOCKET.path, WebSocketIngest(ingest)),
        ],
        lifespan=lifespan,
    )
    fallback.state.services = services
    hot = {**ingest.routes(), table.IMPORT.path: ImportUpload(services).handle}
    app: Any = RequestContext(fallback, services.metrics, gw.log_requests, hot)
    if gw.cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=list(gw.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"],
        )
    app.services = services  # for tests and the runner
    return app
