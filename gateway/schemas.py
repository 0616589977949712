"""Response bodies as msgspec structs: the handlers encode them and the OpenAPI document is generated
from them, so the schema and the answers cannot drift apart."""

from __future__ import annotations

from typing import Any

import msgspec

from eventpulse.cache.client import SharedState


class EventError(msgspec.Struct, omit_defaults=False):
    """Why one event was refused. ``index`` is its position in the batch (null for a single event)."""

    reason: str
    field: str | None
    detail: str
    index: int | None = None


class EventAccepted(msgspec.Struct):
    """A single event the broker acknowledged (``duplicate``: already acknowledged recently, not sent again)."""

    id: str
    duplicate: bool = False


class BatchResult(msgspec.Struct):
    """Outcome of a batch. ``ids[i]`` is the id of event ``i``, or null if it was rejected (see ``errors``).

    Status 202: every event accepted. 207: some accepted, some rejected. 422: none accepted.
    """

    accepted: int
    rejected: int
    duplicates: int
    ids: list[str | None]
    errors: list[EventError]


class ImportResult(msgspec.Struct):
    """``POST /api/import``: what became of an uploaded file's rows (the refused ones are dead letters)."""

    file: str  # the file's identity: rows without an id are named "<file>-<row>"
    rows: int
    accepted: int
    rejected: int


class ErrorBody(msgspec.Struct):
    """Any refused request. ``errors`` lists per-event problems when there are some."""

    error: str
    detail: str
    errors: list[EventError] = []


class Unavailable(msgspec.Struct):
    """503: nothing (or not all) was accepted; resend the events in ``not_accepted`` (same ids) later."""

    error: str
    detail: str
    retry_after_s: int
    not_accepted: list[str] = []
    accepted: list[str] = []


class Liveness(msgspec.Struct):
    status: str
    shared_state: SharedState | None = None  # where rate limits and acknowledged ids live


class DependencyStatus(msgspec.Struct):
    ok: bool
    latency_ms: float | None
    error: str | None = None


class Readiness(msgspec.Struct):
    """``status`` is ``ready`` when every dependency answered, else ``unavailable`` (HTTP 503)."""

    status: str
    dependencies: dict[str, DependencyStatus]


class RequestCount(msgspec.Struct):
    route: str
    status: int
    count: int


class ProduceLatency(msgspec.Struct):
    p50: float | None
    p95: float | None
    p99: float | None


class MetricsSnapshot(msgspec.Struct):
    requests: list[RequestCount]
    requests_total: int
    events_accepted: int
    events_duplicate: int
    events_rejected: dict[str, int]
    events_rejected_total: int
    events_rate_limited: int
    requests_rate_limited: int
    requests_shed: int
    produce_failures: int
    shared_state_errors: int
    rate_limit_leases: int
    rate_limit_fail_open_events: int
    idempotency_fail_open: int
    produce_latency_ms: ProduceLatency
    producer_queue_depth: int
    dead_letters_pending: int
    dead_letters_written: int
    dead_letters_dropped: int
    stream_subscribers: int
    shared_state_up: int
    # Query API (gateway/query_cache.py): answers from the cache (shared: from Redis), run, never cacheable.
    query_cache_hits: int = 0
    query_cache_shared_hits: int = 0
    query_cache_misses: int = 0
    query_cache_bypassed: int = 0
    query_cache_hit_ratio: float | None = None
    queries_rate_limited: int = 0
    query_latency_ms: dict[str, ProduceLatency] = {}


class WindowRow(msgspec.Struct):
    """One window aggregate row (``type``/``source`` are ``*`` for tenant-wide rows)."""

    window_seconds: int
    slide_seconds: int
    window_start: int
    window_end: int
    type: str
    source: str
    event_count: int
    error_count: int
    error_rate: float
    distinct_users: int
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    is_final: bool
    version: int


class StreamMessage(msgspec.Struct):
    """One live-stream message: the window rows that changed since the previous message."""

    kind: str
    tenant: str
    rows: list[WindowRow]


class SqlRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /api/sql``: one SELECT, with optional bound parameters (``{name:Type}`` in the SQL)."""

    sql: str
    params: dict[str, str | int | float | bool | list[str | int | float] | None] = {}


class QueryResult(msgspec.Struct):
    """A query API answer: column names and rows, scoped to the key's tenant."""

    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    cached: bool
    elapsed_ms: float


class SchemaRegistration(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /api/schemas`` and ``/api/schemas/check``: a JSON Schema (draft 2020-12) of the events' ``data``."""

    type: str
    schema: dict[str, Any] | bool


class SchemaInfo(msgspec.Struct):
    """One registered version of the key's tenant's schema for ``type``."""

    type: str
    version: int
    mode: str
    fingerprint: str
    created_at: str
    schema: Any


class SchemaList(msgspec.Struct):
    """``GET /api/schemas``: the latest version of every type, or every version of one (``?type=``)."""

    schemas: list[SchemaInfo]


class SchemaRegistered(msgspec.Struct):
    """A registration's outcome: the version (``new`` false when the schema was already the latest)."""

    type: str
    version: int
    new: bool
    mode: str


class SchemaCheck(msgspec.Struct):
    """Whether the schema could be registered now: ``reasons`` say why not."""

    type: str
    compatible: bool
    mode: str
    latest_version: int
    reasons: list[str]


class SchemaRefused(msgspec.Struct):
    """409: the schema breaks the type's compatibility mode; ``reasons`` (with JSON pointers into the schemas)."""

    error: str
    detail: str
    mode: str
    reasons: list[str]


class SchemaModeChange(msgspec.Struct, forbid_unknown_fields=True):
    """``PUT /api/schemas/mode``: an event type's compatibility mode."""

    type: str
    mode: str


class SchemaMode(msgspec.Struct):
    type: str
    mode: str
