"""Liveness, readiness and metrics; the helpers every route shares (`json_response`, `key_or_refusal`)."""

from __future__ import annotations

import msgspec
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from eventpulse.api_keys import ApiKey
from gateway.auth import AuthFailure, key_from_headers
from gateway.schemas import ErrorBody, Liveness, MetricsSnapshot, Unavailable
from gateway.services import GatewayServices

_encode = msgspec.json.Encoder().encode


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(payload), status, headers, media_type="application/json")


def services(request: HTTPConnection) -> GatewayServices:
    return request.app.state.services


def key_or_refusal(request: HTTPConnection, scope: str) -> ApiKey | Response:
    """The request's API key if it is live and has ``scope``, else the answer refusing it (401/403/503)."""
    key = services(request).keys.authenticate(key_from_headers(request.scope["headers"]), scope)
    if not isinstance(key, AuthFailure):
        return key
    if key.status == 503:
        retry = services(request).settings.gateway.retry_after_s
        return json_response(Unavailable(key.error, key.detail, retry), 503, {"Retry-After": str(retry)})
    headers = {"WWW-Authenticate": 'Bearer realm="eventpulse"'} if key.status == 401 else None
    return json_response(ErrorBody(key.error, key.detail), key.status, headers)


async def liveness(request: Request) -> Response:
    return json_response(Liveness("ok", services(request).shared_state()))


async def readiness(request: Request) -> Response:
    result = await services(request).readiness.check()
    return json_response(result, 200 if result.status == "ready" else 503)


async def metrics_json(request: Request) -> Response:
    svc = services(request)
    snapshot = msgspec.convert(svc.metrics.snapshot(**svc.gauges()), MetricsSnapshot)
    return json_response(snapshot)


async def metrics_prometheus(request: Request) -> Response:
    svc = services(request)
    return Response(svc.metrics.prometheus(**svc.gauges()), media_type="text/plain; version=0.0.4; charset=utf-8")
