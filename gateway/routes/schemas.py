"""The schema registry API for keys with the ``schemas`` scope: the key's tenant's event schemas only.

There is no ``admin`` key scope (keys and users are administered with the warehouse's admin credentials,
``tests/gateway/test_route_scopes.py``): ``schemas`` lets a key change its own tenant's schemas and nothing else.
``GET /api/schemas`` lists them (``?type=`` every version of one type), ``POST /api/schemas/register`` registers a
new version (201; 200 when it already is the latest; 409 with the reasons when the type's compatibility
mode refuses it; 422 when it is no valid draft 2020-12 schema), ``POST /api/schemas/check`` answers
whether it could be registered, ``PUT /api/schemas/mode`` sets the type's mode. Each change is in
``audit_log`` under the key (``key:<key_id>``, role ``tenant_admin``), refused ones too. Gateways and the
dataflow apply a new version within ``EVENTPULSE_SCHEMAS_REFRESH_S``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from clickhouse_connect.driver.client import Client
from starlette.requests import Request
from starlette.responses import Response

from eventpulse.api_keys import SCOPE_SCHEMAS, ApiKey
from eventpulse.audit import Actor, AuditWriter, Role
from eventpulse.schemas import store
from eventpulse.schemas.compat import Mode
from gateway.routes.health import json_response, key_or_refusal, services
from gateway.schemas import (
    ErrorBody,
    SchemaCheck,
    SchemaInfo,
    SchemaList,
    SchemaMode,
    SchemaModeChange,
    SchemaRefused,
    SchemaRegistered,
    SchemaRegistration,
)

T = TypeVar("T")
_registration = msgspec.json.Decoder(SchemaRegistration)
_mode_change = msgspec.json.Decoder(SchemaModeChange)


async def _authorized(request: Request) -> ApiKey | Response:
    return key_or_refusal(request, SCOPE_SCHEMAS)


async def _with_client(request: Request, work: Callable[[Client], T]) -> T:
    """``work`` on a writer connection of its own, in a worker thread (registrations are rare)."""
    factory = services(request).warehouse_client

    def run() -> T:
        client = factory()
        try:
            return work(client)
        finally:
            client.close()

    return await asyncio.to_thread(run)


def _audit(client: Client, key: ApiKey, request: Request) -> AuditWriter:
    peer = request.client.host if request.client else ""
    return AuditWriter(client, Actor(f"key:{key.key_id}", Role.TENANT_ADMIN, key.tenant, peer))


async def _body(request: Request, decoder: msgspec.json.Decoder[Any]) -> Any:
    limit = services(request).settings.schemas.max_schema_bytes + 4096
    body = await request.body()
    if len(body) > limit:
        return json_response(ErrorBody("payload_too_large", f"a schema request is at most {limit} bytes"), 413)
    try:
        decoded = decoder.decode(body)
    except msgspec.DecodeError as exc:
        return json_response(ErrorBody("invalid_body", str(exc)), 400)
    if not decoded.type.strip() or not decoded.type.isprintable():
        return json_response(ErrorBody("invalid_body", "type must be a printable, non-empty event type"), 400)
    return decoded


async def list_schemas(request: Request) -> Response:
    key = await _authorized(request)
    if isinstance(key, Response):
        return key
    event_type = request.query_params.get("type")
    default = services(request).settings.schemas.default_compatibility

    def read(client: Client) -> list[SchemaInfo]:
        rows = (
            store.list_versions(client, key.tenant, event_type)
            if event_type
            else store.latest_versions(client, key.tenant)
        )
        modes = store.list_modes(client, key.tenant)
        return [
            SchemaInfo(
                r.event_type,
                r.version,
                modes.get((r.tenant, r.event_type), Mode(default)).value,
                r.fingerprint,
                r.created_at.isoformat() if r.created_at else "",
                r.schema,
            )
            for r in rows
        ]

    return json_response(SchemaList(await _with_client(request, read)))


async def _admitted(request: Request, decoder: msgspec.json.Decoder[Any]) -> tuple[ApiKey, Any] | Response:
    """The key (with the schemas scope) and the decoded body, or the answer refusing the request."""
    key = await _authorized(request)
    if isinstance(key, Response):
        return key
    body = await _body(request, decoder)
    return body if isinstance(body, Response) else (key, body)


async def register(request: Request) -> Response:
    admitted = await _admitted(request, _registration)
    if isinstance(admitted, Response):
        return admitted
    key, body = admitted
    config = services(request).settings.schemas

    def write(client: Client) -> tuple[store.SchemaVersion, bool, Mode]:
        row, new = store.register_schema(
            client,
            key.tenant,
            body.type,
            body.schema,
            default_mode=config.default_compatibility,
            max_bytes=config.max_schema_bytes,
            created_by=f"key:{key.key_id}",
            audit=_audit(client, key, request),
        )
        return row, new, store.get_mode(client, key.tenant, body.type, config.default_compatibility)

    try:
        row, new, mode = await _with_client(request, write)
    except store.IncompatibleSchema as exc:
        return json_response(SchemaRefused("incompatible_schema", str(exc), exc.mode.value, exc.reasons), 409)
    except store.SchemaError as exc:
        return json_response(ErrorBody("invalid_schema", str(exc)), 422)
    return json_response(SchemaRegistered(row.event_type, row.version, new, mode.value), 201 if new else 200)


async def check(request: Request) -> Response:
    admitted = await _admitted(request, _registration)
    if isinstance(admitted, Response):
        return admitted
    key, body = admitted
    config = services(request).settings.schemas

    def judge(client: Client) -> SchemaCheck:
        mode, reasons, latest = store.registration_check(
            client,
            key.tenant,
            body.type,
            body.schema,
            default_mode=config.default_compatibility,
            max_bytes=config.max_schema_bytes,
        )
        return SchemaCheck(body.type, not reasons, mode.value, latest, reasons)

    try:
        return json_response(await _with_client(request, judge))
    except store.SchemaError as exc:
        return json_response(ErrorBody("invalid_schema", str(exc)), 422)


async def set_mode(request: Request) -> Response:
    admitted = await _admitted(request, _mode_change)
    if isinstance(admitted, Response):
        return admitted
    key, body = admitted
    try:
        mode = Mode(body.mode)
    except ValueError:
        known = ", ".join(m.value for m in Mode)
        return json_response(ErrorBody("invalid_body", f"mode must be one of {known}"), 400)

    def write(client: Client) -> Mode:
        return store.set_mode(client, key.tenant, body.type, mode, audit=_audit(client, key, request))

    chosen = await _with_client(request, write)
    return json_response(SchemaMode(body.type, chosen.value))
