"""The OpenAPI operation of each documented route (`gateway.routes.table`), by its `RouteSpec`.

`gateway.openapi` lays them out in the table's order; a documented route without an operation here,
or an operation for a route the table does not document, fails the document's build.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventpulse.config.gateway import GatewaySettings
from gateway.routes import table
from gateway.routes.table import RouteSpec

_REF = "#/components/schemas/{name}"


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(name=ref)}}}


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


def _ok_headers(settings: GatewaySettings) -> dict[str, Any] | None:
    """RateLimit-* come with 429 always, and with accepted requests only when configured so."""
    return RATE_HEADERS if settings.rate_limit_headers == "always" else None


def _query(name: str, description: str = "", **schema: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "in": "query", "schema": {"type": "string", **schema}}
    if description:
        out["description"] = description
    return out


_TYPES = _query("type", "Comma separated event types.")
_SOURCES = _query("source", "Comma separated sources.")
_QUERY_LIMITED = {"429": _answer("The key's query rate limit is spent.", "ErrorBody")}


def submit_event(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "summary": "Submit one event",
        "operationId": "submitEvent",
        "requestBody": {"required": True, "content": _json("Event")},
        "responses": {
            "202": _answer("Accepted: the broker acknowledged the event.", "EventAccepted", _ok_headers(settings)),
            "400": _answer("Body is not valid JSON.", "ErrorBody"),
            "422": _answer("The event is invalid; `errors` says which field and why.", "ErrorBody"),
            **_ingest_errors(),
        },
    }


def submit_batch(settings: GatewaySettings) -> dict[str, Any]:
    events = {"type": "array", "items": {"$ref": _REF.format(name="Event")}, "maxItems": settings.max_batch_events}
    ok = _ok_headers(settings)
    return {
        "summary": "Submit a batch (JSON array or NDJSON)",
        "operationId": "submitBatch",
        "requestBody": {
            "required": True,
            "description": f"At most {settings.max_batch_events} events and {settings.max_batch_bytes} bytes.",
            "content": {
                "application/json": {"schema": events},
                "application/x-ndjson": {"schema": {"type": "string", "description": "One JSON event per line."}},
            },
        },
        "responses": {
            "202": _answer("Every event accepted and acknowledged by the broker.", "BatchResult", ok),
            "207": _answer(
                "Partly accepted: `ids[i]` is null for rejected events, `errors` gives index, field and "
                "reason; the valid ones were acknowledged by the broker.",
                "BatchResult",
                ok,
            ),
            "400": _answer("Body is not valid JSON or not an array.", "ErrorBody"),
            "422": _answer("No event in the batch is valid (see `errors`).", "BatchResult"),
            **_ingest_errors(),
        },
    }


def liveness(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "summary": "Liveness",
        "operationId": "liveness",
        "security": [],
        "responses": {"200": _answer("The process serves requests.", "Liveness")},
    }


def readiness(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "summary": "Readiness: broker and warehouse reachable",
        "operationId": "readiness",
        "security": [],
        "responses": {
            "200": _answer("Every dependency answered.", "Readiness"),
            "503": _answer("A dependency did not answer.", "Readiness"),
        },
    }


def metrics_json(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "summary": "Counters and latencies (JSON)",
        "operationId": "metrics",
        "security": [],
        "responses": {"200": _answer("Metrics since start.", "MetricsSnapshot")},
    }


def metrics_prometheus(settings: GatewaySettings) -> dict[str, Any]:
    return {
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


def sql(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "summary": "Run one SELECT over the key's tenant's data",
        "description": "Needs the `read` scope. Every table is filtered to the key's tenant, or the query "
        "is refused (files, system tables, other databases, key tables, SETTINGS, INTO OUTFILE). "
        "Answers are cached for a second; each key has a query rate limit.",
        "operationId": "sql",
        "requestBody": {"required": True, "content": _json("SqlRequest")},
        "responses": {
            "200": _answer("The rows.", "QueryResult"),
            "400": _answer("Refused by the scoped read path, or rejected by the warehouse.", "ErrorBody"),
            **_common("read"),
            **_QUERY_LIMITED,
        },
    }


def metrics_query(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "summary": "One metric of the key's tenant over a time range, in buckets",
        "description": "Needs the `read` scope. Reads the shortest tumbling windows of window_aggregates.",
        "operationId": "metricsQuery",
        "parameters": [
            _query("metric", default="event_count"),
            {**_query("start", "ISO 8601 or milliseconds since the epoch."), "required": True},
            {**_query("end"), "required": True},
            {
                "name": "granularity",
                "in": "query",
                "schema": {"type": "integer", "default": 60},
                "description": "Bucket length (s).",
            },
            _query("breakdown", enum=["type", "source"]),
            _TYPES,
            _SOURCES,
        ],
        "responses": {
            "200": _answer("Columns bucket[, type|source], value.", "QueryResult"),
            "400": _answer("Unknown metric, bad range or granularity.", "ErrorBody"),
            **_common("read"),
            **_QUERY_LIMITED,
        },
    }


def stream(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "summary": "Live window aggregates of the key's tenant (Server-Sent Events)",
        "description": f"Also as a WebSocket at `{table.STREAM_WEBSOCKET.path}` (same parameters). Needs the "
        "`stream` scope. Slow consumers are disconnected.",
        "operationId": "stream",
        "x-schemathesis-skip": True,
        "parameters": [_TYPES, _SOURCES, _query("api_key", "Key, for clients that cannot send headers.")],
        "responses": {
            "200": {
                "description": "`event: window_aggregates` messages whose data is a StreamMessage.",
                "content": {"text/event-stream": {"schema": {"$ref": _REF.format(name="StreamMessage")}}},
            },
            **_common("stream"),
            "503": _answer("API keys cannot be verified right now.", "Unavailable", RETRY_AFTER),
        },
    }


def webhook(settings: GatewaySettings) -> dict[str, Any]:
    """``POST /api/webhooks/{source}`` (`gateway.routes.webhooks`): signed by the source's secret, no API key."""
    return {
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


_SCHEMA_NOTE = (
    "Needs the `schemas` scope; acts on the key's tenant only and is recorded in `audit_log`. A schema is a JSON"
    " Schema (draft 2020-12) of the events' `data`; gateways and the dataflow apply the latest version of a type"
    " within `EVENTPULSE_SCHEMAS_REFRESH_S`."
)
_SCHEMA_ERRORS = {
    **_common("schemas"),
    "400": _answer("The body is not a registration (`type`, `schema`).", "ErrorBody"),
    "503": _answer("API keys cannot be verified right now.", "Unavailable", RETRY_AFTER),
}
_SCHEMA_BODY_ERRORS = {
    "413": _answer("The request is larger than `EVENTPULSE_SCHEMAS_MAX_SCHEMA_BYTES`.", "ErrorBody"),
    "422": _answer("Not a valid JSON Schema (draft 2020-12) of an object.", "ErrorBody"),
    **_SCHEMA_ERRORS,
}


def list_schemas(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "summary": "The key's tenant's event schemas",
        "description": _SCHEMA_NOTE,
        "operationId": "listSchemas",
        "parameters": [_query("type", "One event type: every version of its schema (else the latest of each).")],
        "responses": {"200": _answer("The schemas.", "SchemaList"), **_SCHEMA_ERRORS},
    }


def register_schema(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "summary": "Register a new version of an event type's schema",
        "description": f"{_SCHEMA_NOTE} Checked against the type's compatibility mode (default"
        " `EVENTPULSE_SCHEMAS_DEFAULT_COMPATIBILITY`) as Confluent's Schema Registry checks JSON Schemas.",
        "operationId": "registerSchema",
        "requestBody": {"required": True, "content": _json("SchemaRegistration")},
        "responses": {
            "201": _answer("Registered as a new version.", "SchemaRegistered"),
            "200": _answer("The schema already is the latest version; nothing added.", "SchemaRegistered"),
            "409": _answer("Refused: not compatible under the type's mode; `reasons` say why.", "SchemaRefused"),
            **_SCHEMA_BODY_ERRORS,
        },
    }


def upload_import(settings: GatewaySettings) -> dict[str, Any]:
    """``POST /api/import`` (`gateway.imports`)."""
    files = {
        media: {"schema": {"type": "string", "format": "binary"}}
        for media in ("application/x-ndjson", "text/csv", "application/vnd.apache.parquet")
    }
    return {
        "summary": "Import a file of events (NDJSON, CSV or Parquet)",
        "description": "The body is the file, streamed (at most `EVENTPULSE_IMPORT_MAX_UPLOAD_BYTES`; NDJSON and CSV"
        " may be sent with `Content-Encoding: gzip` or `zstd`). Its rows are validated as a batch's events are,"
        " under the key's tenant; a CSV or Parquet column is the event field of its name (`id`, `timestamp`,"
        " `type`, `source`, `schema_version`, a `data` struct), any other column a field of `data`. Rows without"
        " an id are named `<file>-<row>` (`file` in the answer), so uploading the same file again produces the"
        " same ids and the warehouse keeps each event once. Refused rows are dead letters (stage `import`).",
        "operationId": "importFile",
        "requestBody": {"required": True, "content": files},
        "responses": {
            "200": _answer("Every accepted row was acknowledged by the broker.", "ImportResult"),
            "400": _answer("The file cannot be read as its content type says.", "ErrorBody"),
            **_common("ingest"),
            "413": _answer("The body is larger than `EVENTPULSE_IMPORT_MAX_UPLOAD_BYTES`.", "ErrorBody"),
            "415": _answer("Another content type, or a compressed Parquet body.", "ErrorBody"),
            "503": _answer(
                "The broker did not acknowledge every row: upload the file again (same ids).",
                "Unavailable",
                RETRY_AFTER,
            ),
        },
    }


def check_schema(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "summary": "Whether a schema could be registered now (nothing is stored)",
        "description": _SCHEMA_NOTE,
        "operationId": "checkSchema",
        "requestBody": {"required": True, "content": _json("SchemaRegistration")},
        "responses": {
            "200": _answer("`compatible`, and the `reasons` when not.", "SchemaCheck"),
            **_SCHEMA_BODY_ERRORS,
        },
    }


def set_schema_mode(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "summary": "Set an event type's compatibility mode",
        "description": f"{_SCHEMA_NOTE} Modes: backward, forward, full (and their `_transitive` forms), none.",
        "operationId": "setSchemaMode",
        "requestBody": {"required": True, "content": _json("SchemaModeChange")},
        "responses": {"200": _answer("The mode now in force.", "SchemaMode"), **_SCHEMA_ERRORS},
    }


OPERATIONS: dict[RouteSpec, Callable[[GatewaySettings], dict[str, Any]]] = {
    table.EVENTS: submit_event,
    table.EVENTS_BATCH: submit_batch,
    table.HEALTH: liveness,
    table.READY: readiness,
    table.METRICS_JSON: metrics_json,
    table.METRICS_PROMETHEUS: metrics_prometheus,
    table.STREAM_SSE: stream,
    table.SQL: sql,
    table.METRICS_QUERY: metrics_query,
    table.WEBHOOKS: webhook,
    table.SCHEMAS_LIST: list_schemas,
    table.SCHEMAS_REGISTER: register_schema,
    table.SCHEMAS_CHECK: check_schema,
    table.SCHEMAS_MODE: set_schema_mode,
    table.IMPORT: upload_import,
}
"""The operation of every documented route of `table.ROUTES`."""


def paths(settings: GatewaySettings) -> dict[str, Any]:
    """The document's ``paths``: every documented route of the table, in its order."""
    documented = [route for route in table.ROUTES if route.documented]
    if set(OPERATIONS) != set(documented):
        missing = sorted(r.path for r in set(documented) - set(OPERATIONS))
        extra = sorted(r.path for r in set(OPERATIONS) - set(documented))
        raise LookupError(f"routes without an operation: {missing}; operations without a documented route: {extra}")
    out: dict[str, Any] = {}
    for route in documented:
        out.setdefault(route.path, {})[route.method.lower()] = OPERATIONS[route](settings)
    return out
