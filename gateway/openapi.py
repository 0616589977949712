"""The OpenAPI 3.1 document served at ``/openapi.json``.

Nothing in it is written twice: the paths are the documented routes of the route table
(`gateway.routes.table`, operations in `gateway.openapi_operations`), the response schemas come from
the msgspec structs the handlers encode (`gateway.schemas`), and the ``Event`` schema from the event
contract the validators are built from (`eventpulse.events.json_schema`; the few rules JSON Schema
cannot state, such as the clock-skew window on ``timestamp``, are named in its ``x-unchecked-rules``
and answered with 422).
"""

from __future__ import annotations

from typing import Any

import msgspec

from eventpulse.config.events import EventLimits
from eventpulse.config.gateway import GatewaySettings
from eventpulse.events import RejectReason
from eventpulse.events.json_schema import event_schema
from gateway import schemas
from gateway.openapi_operations import paths

_REF = "#/components/schemas/{name}"


def build_openapi(settings: GatewaySettings, limits: EventLimits) -> dict[str, Any]:
    """The document for ``settings`` and the event ``limits`` (the limits it states follow them)."""
    structs = [
        schemas.EventAccepted,
        schemas.BatchResult,
        schemas.ImportResult,
        schemas.ErrorBody,
        schemas.Unavailable,
        schemas.Liveness,
        schemas.Readiness,
        schemas.MetricsSnapshot,
        schemas.StreamMessage,
        schemas.SqlRequest,
        schemas.QueryResult,
        schemas.SchemaRegistration,
        schemas.SchemaList,
        schemas.SchemaRegistered,
        schemas.SchemaCheck,
        schemas.SchemaRefused,
        schemas.SchemaModeChange,
        schemas.SchemaMode,
    ]
    _, components = msgspec.json.schema_components(structs, ref_template=_REF)
    components["Event"] = event_schema(limits)
    reasons = [r.value for r in RejectReason]
    components["EventError"]["properties"]["reason"]["enum"] = reasons
    security: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "EventPulse ingestion gateway",
            "version": "1.0.0",
            "description": (
                "Request bodies may be compressed (`Content-Encoding: gzip`, `zstd` or `deflate`; a corrupt one is"
                " answered 400 `malformed_body`). "
                "Takes events in without losing one: a 2xx answer means the broker acknowledged every accepted "
                "event (idempotent producer, acks=all). Retries must resend the same events with the same `id`s; "
                "the warehouse deduplicates on (tenant, timestamp, id)."
            ),
        },
        "servers": [{"url": "/"}],
        "security": security,
        "paths": paths(settings),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
