"""The ingestion gateway (gateway/)."""

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section
from eventpulse.config.tls import check_pair


class GatewaySettings(Section):
    """Listen address, request limits, delivery deadline, rate limits and live-stream knobs of the gateway.

    Environment: ``EVENTPULSE_GATEWAY_<FIELD>``, e.g. ``EVENTPULSE_GATEWAY_PORT``,
    ``EVENTPULSE_GATEWAY_RATE_PER_S``, ``EVENTPULSE_GATEWAY_CORS_ORIGINS='["https://app.example"]'``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_GATEWAY_")

    host: str = Field("127.0.0.1")
    port: int = Field(8000)
    tls_certfile: Path | None = Field(
        None, description="Serve HTTPS with this certificate chain (PEM; uvicorn's ssl_certfile). Empty: plain HTTP."
    )
    tls_keyfile: Path | None = Field(None, description="The certificate's private key (PEM; uvicorn's ssl_keyfile).")
    workers: int = Field(
        1,
        ge=1,
        description="Server processes; each has its own producer (and rate limiter, unless Redis is set).",
    )
    max_batch_events: int = Field(10_000, gt=0, description="Most events in one batch request.")
    max_batch_bytes: int = Field(5 * 1024 * 1024, gt=0, description="Largest batch request body.")
    # Delivery: a 2xx is sent only once the broker acknowledged every accepted event.
    ack_timeout_s: float = Field(10.0, gt=0, description="Wait this long for broker acks, then answer 503.")
    max_queued_events: int = Field(
        200_000, gt=0, description="Events queued in the producer (not yet acked) before shedding load with 503."
    )
    retry_after_s: int = Field(2, ge=1, description="Retry-After sent with 503 answers.")
    linger_ms: float = Field(
        1.0,
        ge=0,
        description=(
            "Producer linger: batches events across requests but delays every ack. Measured: 1 ms answers single"
            " events as fast as 0.5 ms with 1/3 less producer CPU on 100-event batches; 2 ms cut single-event"
            " throughput by a third."
        ),
    )
    # Idempotency: client ids seen recently are not produced again (the warehouse dedups anyway).
    recent_ids_ttl_s: float = Field(300.0, ge=0, description="How long an acked (id, timestamp) is remembered.")
    recent_ids_per_tenant: int = Field(100_000, ge=0, description="Most remembered ids per tenant.")
    # API keys and rate limits.
    key_refresh_s: float = Field(1.0, gt=0, le=2.0, description="Reload API keys from the warehouse this often.")
    key_max_stale_s: float = Field(
        300.0, gt=0, description="Refuse requests (503) once keys could not be reloaded for this long."
    )
    rate_per_s: float = Field(50_000.0, gt=0, description="Default events/s per tenant (token bucket refill).")
    burst: int = Field(100_000, gt=0, description="Default bucket size per tenant (events).")
    rate_limit_lease_s: float = Field(
        0.01,
        gt=0,
        description="With Redis: a process leases this many seconds of a tenant's rate per round trip and"
        " spends them locally (the tenant's total never exceeds its quota; a lease left unspent admits less).",
    )
    rate_limit_lease_max: int = Field(1000, ge=1, description="With Redis: most tokens leased in one round trip.")
    # Dead letters (rejected events) go to the warehouse table in the background.
    dead_letter_flush_s: float = Field(1.0, gt=0, description="Write rejected events this often.")
    dead_letter_queue: int = Field(100_000, gt=0, description="Rejected events held before dropping (counted).")
    # Live stream.
    stream_poll_s: float = Field(1.0, gt=0, description="How often a tenant's window aggregates are re-read.")
    stream_rows: int = Field(500, gt=0, description="Latest window rows read per poll.")
    stream_queue: int = Field(32, gt=0, description="Messages buffered per live subscriber before it is dropped.")
    max_decompression_ratio: int = Field(
        200,
        ge=1,
        description="A compressed body (Content-Encoding gzip, zstd, deflate) may decompress to at most this many"
        " times its size (and never past the route's byte limit); more is refused with 413 as a decompression bomb.",
    )
    # WebSocket ingestion (/ws/ingest, see gateway/ws_ingest.py).
    ws_max_unacked: int = Field(
        10_000,
        gt=0,
        description="WebSocket ingest: events of one connection read and not yet answered (waiting for the broker, or"
        " for the client to read its answers). While this many wait the next frame is not read, so a client that"
        " sends faster than the broker acknowledges, or that does not read its acks, is paused (TCP backpressure).",
    )
    ws_max_connections: int = Field(
        1024,
        ge=0,
        description="WebSocket ingest connections served at once per process; the handshake of one more is refused"
        " with 503 and Retry-After. 0: no limit of its own (max_connections still counts them).",
    )
    ws_max_connections_per_tenant: int = Field(
        64,
        ge=0,
        description="WebSocket ingest connections per tenant and process; one more is refused with 429. 0: no limit.",
    )
    # Query API (/api/sql, /api/metrics/query).
    query_rate_per_s: float = Field(20.0, gt=0, description="Queries per second per read key (token bucket refill).")
    query_burst: int = Field(40, gt=0, description="Query bucket size per read key.")
    query_cache_ttl_s: float = Field(
        300.0,
        ge=0,
        description="Seconds a query API answer is kept while its data does not change (answers of changed data"
        " are never served: the key holds the data version); 0: no cache.",
    )
    query_cache_version_s: float = Field(
        1.0,
        ge=0,
        description="Seconds the data version of a table set (system.parts) is reused before it is read again:"
        " new rows show in cached answers within this long; 0: read it on every query (exact).",
    )
    query_cache_entries: int = Field(1024, gt=0, description="Query API answers kept in each process's cache.")
    # HTTP connections (see gateway/server.py).
    header_timeout_s: float = Field(
        10.0,
        ge=0,
        description="A request's headers must arrive within this many seconds of its connection (first request)"
        " or its first byte (later ones), else 408 and the connection is closed; 0: no deadline.",
    )
    body_timeout_s: float = Field(
        30.0,
        ge=0,
        description="A request's body must arrive within this many seconds of its headers, else 408 and the"
        " connection is closed; 0: no deadline. 30 s carries a full batch (5 MiB) at 1.4 Mbit/s.",
    )
    max_connections: int = Field(
        4096,
        ge=0,
        description="Open connections served at once per process (uvicorn's limit_concurrency): a request on a"
        " connection beyond them is answered 503 and the connection closed; 0: no limit. Keep it under the"
        " process's file limit (ulimit -n).",
    )
    keep_alive_s: int = Field(5, ge=1, description="Close a keep-alive connection idle this long (uvicorn's default).")
    # HTTP.
    cors_origins: tuple[str, ...] = Field((), description="Origins allowed by CORS ('*' for any); empty: off.")
    log_requests: Literal["all", "errors", "none"] = Field(
        "errors", description="Which requests get a JSON access-log line (4xx/5xx only by default)."
    )
    log_level: str = Field("INFO")
    rate_limit_headers: Literal["always", "refused"] = Field(
        "refused",
        description="RateLimit-Limit/Remaining/Reset with 429 answers only ('refused'), or on every ingest answer"
        " ('always': ~10 % fewer single events/s at one core; uvicorn checks each header it sends).",
    )
    proxy_headers: bool = Field(
        False,
        description="Behind a load balancer: take the client address from X-Forwarded-For/-Proto sent by the"
        " addresses in forwarded_allow_ips (uvicorn's ProxyHeadersMiddleware; off: one layer less per request).",
    )
    forwarded_allow_ips: str = Field("127.0.0.1", description="Proxies trusted for X-Forwarded-* (comma-separated).")
    # Process tuning (see gateway/runtime.py).
    gc_gen0_threshold: int = Field(
        50_000, ge=0, description="Young-generation GC threshold of a serving process (0: Python's default, 700)."
    )
    gc_freeze: bool = Field(True, description="gc.freeze() the start-up heap so full collections skip it.")

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        check_pair("gateway", self.tls_certfile, self.tls_keyfile)
        return self
