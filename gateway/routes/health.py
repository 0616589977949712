"""Liveness, readiness and metrics."""

from __future__ import annotations

import msgspec
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from gateway.schemas import Liveness, MetricsSnapshot
from gateway.services import GatewayServices

_encode = msgspec.json.Encoder().encode


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(payload), status, headers, media_type="application/json")


def services(request: HTTPConnection) -> GatewayServices:
    return request.app.state.services


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
