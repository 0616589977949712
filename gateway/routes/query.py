"""The query API: ``GET /api/metrics/query`` and ``POST /api/sql`` for keys with the ``read`` scope.

Both answer from the warehouse through the scoped read path (`gateway.query`): the key's tenant
is the only one any query can see, whatever its SQL or parameters say. ``429`` once the key's
query bucket is empty; ``400`` for a query the scoped path refuses or the warehouse rejects.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from clickhouse_connect.driver.exceptions import Error as DriverError
from starlette.requests import Request
from starlette.responses import Response

from eventpulse.access.statements import Refused
from eventpulse.api_keys import SCOPE_READ, ApiKey
from gateway.query import BadQuery, MetricQuery, QueryAnswer
from gateway.routes.health import json_response, key_or_refusal, services
from gateway.schemas import ErrorBody, QueryResult, SqlRequest

_decode_sql = msgspec.json.Decoder(SqlRequest)


async def _authorized(request: Request) -> ApiKey | Response:
    key = key_or_refusal(request, SCOPE_READ)
    if isinstance(key, Response):
        return key
    refusal = await services(request).query.admit(key.key_id)
    if refusal is not None:
        headers = {name.decode(): value.decode() for name, value in refusal.headers()}
        return json_response(ErrorBody("rate_limited", "too many queries for this key"), 429, headers)
    return key


def _answer(answer: QueryAnswer) -> Response:
    body = QueryResult(answer.columns, answer.rows, len(answer.rows), answer.cached, round(answer.elapsed_ms, 3))
    return json_response(body)


async def _run(request: Request, tenant: str, sql: str, params: dict) -> Response:
    """A cached answer straight from the event loop; otherwise the cache's or the warehouse's
    (scoping and the query run in worker threads)."""
    service = services(request).query
    try:
        hit = service.peek(tenant, sql, params)
        return _answer(hit if hit is not None else await service.answer(tenant, sql, params))
    except Refused as exc:
        return json_response(ErrorBody("refused", exc.message), 400)
    except BadQuery as exc:
        return json_response(ErrorBody("bad_query", str(exc)), 400)
    except (DriverError, TypeError, ValueError) as exc:  # the warehouse's refusal, or parameters it cannot bind
        return json_response(ErrorBody("query_failed", str(exc).split(" (for url")[0][-2000:]), 400)


async def sql(request: Request) -> Response:
    key = await _authorized(request)
    if isinstance(key, Response):
        return key
    try:
        body = _decode_sql.decode(await request.body())
    except msgspec.DecodeError as exc:
        return json_response(ErrorBody("invalid_body", str(exc)), 400)
    return await _run(request, key.tenant, body.sql, dict(body.params))


def _time(value: str | None, name: str) -> datetime:
    if not value:
        raise BadQuery(f"{name} is required (ISO 8601 or milliseconds since the epoch)")
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(f"{name}: not a time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _list(request: Request, name: str) -> tuple[str, ...]:
    return tuple(v.strip() for raw in request.query_params.getlist(name) for v in raw.split(",") if v.strip())


async def metrics_query(request: Request) -> Response:
    key = await _authorized(request)
    if isinstance(key, Response):
        return key
    q = request.query_params
    try:
        query = MetricQuery(
            metric=q.get("metric", "event_count"),
            start=_time(q.get("start"), "start"),
            end=_time(q.get("end"), "end"),
            granularity_s=int(q.get("granularity", "60")),
            breakdown=q.get("breakdown") or None,
            types=_list(request, "type"),
            sources=_list(request, "source"),
        )
        sql, params = services(request).query.metric_sql(query)
    except (BadQuery, ValueError) as exc:
        return json_response(ErrorBody("bad_query", str(exc)), 400)
    return await _run(request, key.tenant, sql, params)
