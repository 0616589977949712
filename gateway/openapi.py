"""The OpenAPI 3.1 document served at ``/openapi.json``.

Response schemas are generated from the msgspec structs the handlers encode (`gateway.schemas`);
the event schema mirrors `eventpulse.events.validation` (checks that JSON Schema cannot express,
such as the clock-skew window on ``timestamp``, are described and answered with 422).
"""

from __future__ import annotations

from typing import Any

import msgspec

from eventpulse.config.events import EventLimits
from eventpulse.config.gateway import GatewaySettings
from eventpulse.events import RejectReason
from gateway import schemas

_REF = "#/components/schemas/{name}"


def event_schema(limits: EventLimits) -> dict[str, Any]:
    name = {"type": "string", "minLength": 1, "maxLength": limits.max_name_chars, "pattern": r"\S"}
    return {
        "type": "object",
        "description": (
            "One event. Unknown top-level fields are kept. The tenant comes from the API key; a `tenant` or "
            "`received_at` in the body is ignored. `timestamp` must lie within "
            f"{limits.max_past_age_s} s before and {limits.max_future_skew_s} s after the receive time."
        ),
        "required": ["type", "source"] if limits.missing_timestamp_is_receive_time else ["type", "source", "timestamp"],
        "properties": {
            "id": {
                **name,
                "maxLength": limits.max_id_chars,
                "description": "Client-chosen id (recommended): a retry must resend the same id. Generated "
                "(UUIDv7) when absent.",
            },
            "timestamp": {
                "oneOf": [
                    {"type": "number", "minimum": 0, "description": "Unix epoch milliseconds."},
                    {"type": "string", "format": "date-time", "description": "ISO 8601; no offset means UTC."},
                ],
                "description": "Event time: epoch milliseconds or an ISO 8601 date-time (normalised to "
                "milliseconds). A number that reads as seconds, microseconds or nanoseconds is refused with a "
                "hint." + (" When absent, the receive time." if limits.missing_timestamp_is_receive_time else ""),
            },
            "type": {**name, "examples": ["user_action"]},
            "source": {**name, "examples": ["web_app"]},
            "data": {
                "type": "object",
                "maxProperties": limits.max_data_keys,
                "properties": {
                    "user_id": {"type": ["string", "integer"], "description": "Partition key with the tenant."},
                    "latency_ms": {"type": "number", "minimum": 0},
                    "error": {"type": "boolean"},
                    "status_code": {"type": "integer"},
                },
                "additionalProperties": True,
            },
            "schema_version": {"type": "integer"},
        },
        "additionalProperties": True,
        "examples": [
            {
                "id": "evt-000001",
                "timestamp": 1640995200000,
                "type": "user_action",
                "source": "web_app",
                "data": {"user_id": "12345", "action": "click", "metadata": {}},
            }
        ],
    }


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _answer(description: str, ref: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": _json(ref)}
    if headers:
        out["headers"] = headers
    return out


_INT_HEADER = {"schema": {"type": "integer"}}
RATE_HEADERS = {
    "RateLimit-Limit": {**_INT_HEADER, "description": "Bucket size (events)."},
    "RateLimit-Remaining": {**_INT_HEADER, "description": "Events left in the bucket."},
    "RateLimit-Reset": {**_INT_HEADER, "description": "Seconds until the bucket is full."},
}
RETRY_AFTER = {"Retry-After": {**_INT_HEADER, "description": "Seconds to wait before retrying."}}


def _common(scope_needed: str) -> dict[str, Any]:
    return {
        "401": _answer("No API key, or an unknown or revoked one.", "ErrorBody"),
        "403": _answer(f"The key lacks the `{scope_needed}` scope.", "ErrorBody"),
    }


def _ingest_errors() -> dict[str, Any]:
    return {
        **_common("ingest"),
        "408": {
            "description": "The request's headers or body did not arrive within the server's read deadline"
            " (`header_timeout_s`, `body_timeout_s`); the connection is closed. Plain text.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        "413": _answer(
            "Body larger than the limit, or more events than allowed in one batch, or a compressed body that"
            " decompresses past the limit or past `max_decompression_ratio` times its size (a decompression"
            " bomb, dead-lettered). A single event too large is counted and dead-lettered like an invalid one.",
            "ErrorBody",
        ),
        "415": _answer(
            "Unsupported Content-Type, or a Content-Encoding other than gzip, zstd or deflate (listed in"
            " Accept-Encoding).",
            "ErrorBody",
        ),
        "429": _answer("The tenant's rate limit is exhausted.", "ErrorBody", {**RATE_HEADERS, **RETRY_AFTER}),
        "503": _answer(
            "The broker did not acknowledge in time, or too many events wait for it: nothing listed in "
            "`not_accepted` was accepted; resend those events (same ids) after Retry-After.",
            "Unavailable",
            RETRY_AFTER,
        ),
    }


def _webhook_operation() -> dict[str, Any]:
    """``POST /api/webhooks/{source}`` (`gateway.routes.webhooks`): signed by the source's secret, no API key."""
    return {
        "post": {
            "summary": "Receive a third party's webhook delivery, mapped to one event",
            "description": "The source is registered for one tenant with `eventpulse webhooks create` (its mapping and"
            " signing secret). The delivery is signed: `X-EventPulse-Signature: t=<unix seconds>,v1=<hex"
            ' HMAC-SHA256(secret, "<t>." + body)>`; `t` must be within `EVENTPULSE_WEBHOOKS_TOLERANCE_S` of the'
            " gateway's clock, and a signature is accepted once. The event's id comes from the mapping's `id` or"
            " `X-EventPulse-Delivery`, so a retried delivery (signed anew) is answered `duplicate: true`."
            " Malformed, unmappable and invalid payloads are dead-lettered with their reason.",
            "operationId": "receiveWebhook",
            "security": [],
            "x-authentication": "no API key; the source's signing secret signs each delivery (`X-EventPulse-Signature`)",
            "parameters": [
                {
                    "name": "source",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
                    "description": "The registered source's name.",
                },
                {
                    "name": "X-EventPulse-Signature",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.' + body with the source's secret>"
                    " (several v1= entries allowed).",
                },
                {
                    "name": "X-EventPulse-Delivery",
                    "in": "header",
                    "schema": {"type": "string", "maxLength": 128},
                    "description": "The sender's id of this delivery, the same on its retries (the event's id"
                    " unless the mapping names one).",
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"description": "Any JSON the source's mapping reads."}}},
            },
            "responses": {
                "202": _answer(
                    "Accepted: the broker acknowledged the event (`duplicate`: delivered before, not sent again).",
                    "EventAccepted",
                ),
                "400": _answer("The body is not valid JSON (dead-lettered).", "ErrorBody"),
                "401": _answer(
                    "No live source of that name, no or a wrong signature, or a timestamp outside the tolerance"
                    " (`stale_timestamp`).",
                    "ErrorBody",
                ),
                "409": _answer("This signature was delivered before (a replay); nothing was produced.", "ErrorBody"),
                "413": _answer("The body is larger than `EVENTPULSE_WEBHOOKS_MAX_BODY_BYTES`.", "ErrorBody"),
                "415": _answer("Not JSON, or a compressed body.", "ErrorBody"),
                "422": _answer(
                    "The mapping does not apply (`unmappable`) or the mapped event is invalid (`invalid_event`);"
                    " `errors` says which field and why; dead-lettered.",
                    "ErrorBody",
                ),
                "429": _answer("The tenant's rate limit is exhausted.", "ErrorBody", {**RATE_HEADERS, **RETRY_AFTER}),
                "503": _answer(
                    "Sources cannot be verified right now, or the broker did not acknowledge: resend after"
                    " Retry-After (the signature is not spent).",
                    "Unavailable",
                    RETRY_AFTER,
                ),
            },
        }
    }


def build_openapi(settings: GatewaySettings, limits: EventLimits) -> dict[str, Any]:
    # RateLimit-* come with 429 always, and with accepted requests only when configured so.
    ok_headers = RATE_HEADERS if settings.rate_limit_headers == "always" else None
    structs = [
        schemas.EventAccepted,
        schemas.BatchResult,
        schemas.ErrorBody,
        schemas.Unavailable,
        schemas.Liveness,
        schemas.Readiness,
        schemas.MetricsSnapshot,
        schemas.StreamMessage,
        schemas.SqlRequest,
        schemas.QueryResult,
    ]
    _, components = msgspec.json.schema_components(structs, ref_template=_REF)
    components["Event"] = event_schema(limits)
    reasons = [r.value for r in RejectReason]
    components["EventError"]["properties"]["reason"]["enum"] = reasons
    security: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
    batch_body = {
        "required": True,
        "description": f"At most {settings.max_batch_events} events and {settings.max_batch_bytes} bytes.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Event"},
                    "maxItems": settings.max_batch_events,
                }
            },
            "application/x-ndjson": {"schema": {"type": "string", "description": "One JSON event per line."}},
        },
    }
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
        "paths": {
            "/api/events": {
                "post": {
                    "summary": "Submit one event",
                    "operationId": "submitEvent",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}},
                    },
                    "responses": {
                        "202": _answer("Accepted: the broker acknowledged the event.", "EventAccepted", ok_headers),
                        "400": _answer("Body is not valid JSON.", "ErrorBody"),
                        "422": _answer("The event is invalid; `errors` says which field and why.", "ErrorBody"),
                        **_ingest_errors(),
                    },
                }
            },
            "/api/events/batch": {
                "post": {
                    "summary": "Submit a batch (JSON array or NDJSON)",
                    "operationId": "submitBatch",
                    "requestBody": batch_body,
                    "responses": {
                        "202": _answer(
                            "Every event accepted and acknowledged by the broker.", "BatchResult", ok_headers
                        ),
                        "207": _answer(
                            "Partly accepted: `ids[i]` is null for rejected events, `errors` gives index, field and "
                            "reason; the valid ones were acknowledged by the broker.",
                            "BatchResult",
                            ok_headers,
                        ),
                        "400": _answer("Body is not valid JSON or not an array.", "ErrorBody"),
                        "422": _answer("No event in the batch is valid (see `errors`).", "BatchResult"),
                        **_ingest_errors(),
                    },
                }
            },
            "/api/health": {
                "get": {
                    "summary": "Liveness",
                    "operationId": "liveness",
                    "security": [],
                    "responses": {"200": _answer("The process serves requests.", "Liveness")},
                }
            },
            "/api/health/ready": {
                "get": {
                    "summary": "Readiness: broker and warehouse reachable",
                    "operationId": "readiness",
                    "security": [],
                    "responses": {
                        "200": _answer("Every dependency answered.", "Readiness"),
                        "503": _answer("A dependency did not answer.", "Readiness"),
                    },
                }
            },
            "/api/metrics": {
                "get": {
                    "summary": "Counters and latencies (JSON)",
                    "operationId": "metrics",
                    "security": [],
                    "responses": {"200": _answer("Metrics since start.", "MetricsSnapshot")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Metrics in Prometheus text format",
                    "operationId": "prometheusMetrics",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Prometheus exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/api/sql": {
                "post": {
                    "summary": "Run one SELECT over the key's tenant's data",
                    "description": "Needs the `read` scope. Every table is filtered to the key's tenant, or the query "
                    "is refused (files, system tables, other databases, key tables, SETTINGS, INTO OUTFILE). "
                    "Answers are cached for a second; each key has a query rate limit.",
                    "operationId": "sql",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SqlRequest"}}},
                    },
                    "responses": {
                        "200": _answer("The rows.", "QueryResult"),
                        "400": _answer("Refused by the scoped read path, or rejected by the warehouse.", "ErrorBody"),
                        **_common("read"),
                        "429": _answer("The key's query rate limit is spent.", "ErrorBody"),
                    },
                }
            },
            "/api/metrics/query": {
                "get": {
                    "summary": "One metric of the key's tenant over a time range, in buckets",
                    "description": "Needs the `read` scope. Reads the shortest tumbling windows of window_aggregates.",
                    "operationId": "metricsQuery",
                    "parameters": [
                        {"name": "metric", "in": "query", "schema": {"type": "string", "default": "event_count"}},
                        {
                            "name": "start",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                            "description": "ISO 8601 or milliseconds since the epoch.",
                        },
                        {"name": "end", "in": "query", "required": True, "schema": {"type": "string"}},
                        {
                            "name": "granularity",
                            "in": "query",
                            "schema": {"type": "integer", "default": 60},
                            "description": "Bucket length (s).",
                        },
                        {"name": "breakdown", "in": "query", "schema": {"type": "string", "enum": ["type", "source"]}},
                        {
                            "name": "type",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "Comma separated event types.",
                        },
                        {
                            "name": "source",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "Comma separated sources.",
                        },
                    ],
                    "responses": {
                        "200": _answer("Columns bucket[, type|source], value.", "QueryResult"),
                        "400": _answer("Unknown metric, bad range or granularity.", "ErrorBody"),
                        **_common("read"),
                        "429": _answer("The key's query rate limit is spent.", "ErrorBody"),
                    },
                }
            },
            "/api/stream": {
                "get": {
                    "summary": "Live window aggregates of the key's tenant (Server-Sent Events)",
                    "description": "Also as a WebSocket at `/ws/events` (same parameters). Needs the `stream` scope. "
                    "Slow consumers are disconnected.",
                    "operationId": "stream",
                    "x-schemathesis-skip": True,
                    "parameters": [
                        {
                            "name": "type",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "Comma separated event types.",
                        },
                        {
                            "name": "source",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "Comma separated sources.",
                        },
                        {
                            "name": "api_key",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "Key, for clients that cannot send headers.",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "`event: window_aggregates` messages whose data is a StreamMessage.",
                            "content": {
                                "text/event-stream": {"schema": {"$ref": "#/components/schemas/StreamMessage"}}
                            },
                        },
                        **_common("stream"),
                        "503": _answer("API keys cannot be verified right now.", "Unavailable", RETRY_AFTER),
                    },
                }
            },
            "/api/webhooks/{source}": _webhook_operation(),
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
