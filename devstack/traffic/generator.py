"""A deterministic generator of realistic events, valid and invalid.

Tenants, types, sources and users follow skewed (Zipf-like) popularity, latencies are
log-normal with occasional spikes, a share of events are errors, and a share of messages are
invalid in one of the ways the validator must catch, each labelled with the expected reason.
Everything derives from one seed, so tests can recompute what was sent.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from eventpulse.events.rejections import RejectReason

EVENT_TYPES = (
    "page_view",
    "user_action",
    "api_call",
    "purchase",
    "signup",
    "login",
    "search",
    "add_to_cart",
    "error",
    "heartbeat",
)
SOURCES = ("web_app", "ios_app", "android_app", "backend", "partner_api")
ACTIONS = ("click", "scroll", "submit", "view", "hover", "share")

# Invalid messages and the reason the validator must give them.
INVALID_KINDS: tuple[RejectReason, ...] = (
    RejectReason.MALFORMED_JSON,
    RejectReason.MISSING_FIELD,
    RejectReason.WRONG_TYPE,
    RejectReason.PAYLOAD_TOO_LARGE,
    RejectReason.TIMESTAMP_IN_FUTURE,
)


@dataclass(frozen=True)
class TrafficProfile:
    """The shape of generated traffic."""

    tenants: int = 20
    types: int = 10
    sources: int = 5
    users_per_tenant: int = 500
    error_share: float = 0.02
    invalid_share: float = 0.01
    max_disorder_ms: int = 2000
    latency_median_ms: float = 40.0
    payload_padding: int = 60
    oversized_bytes: int = 70 * 1024
    future_skew_ms: int = 3_600_000
    type_names: tuple[str, ...] = field(default=EVENT_TYPES)
    source_names: tuple[str, ...] = field(default=SOURCES)

    def tenant_names(self) -> list[str]:
        return [f"tenant-{i:02d}" for i in range(self.tenants)]


@dataclass(frozen=True, slots=True)
class GeneratedMessage:
    """One message for the events topic, with what the test should expect of it."""

    key: bytes
    value: bytes
    valid: bool
    tenant: str
    event: dict[str, Any] | None  # the wire document of a valid event
    reason: RejectReason | None  # why an invalid message must be refused


class EventFactory:
    """Makes events for a `TrafficProfile` from a seed (same seed, same events)."""

    def __init__(self, profile: TrafficProfile | None = None, seed: int = 0, id_prefix: str = "evt") -> None:
        self.profile = profile or TrafficProfile()
        self._id_prefix = id_prefix
        self._rng = random.Random(seed)
        self._tenants = self.profile.tenant_names()
        self._types = list(self.profile.type_names[: self.profile.types])
        self._sources = list(self.profile.source_names[: self.profile.sources])
        self._tenant_weights = [1 / (i + 1) for i in range(len(self._tenants))]
        self._type_weights = [1 / (i + 1) ** 0.8 for i in range(len(self._types))]
        self._seq = 0

    def submission(self, timestamp_ms: int) -> tuple[str, dict[str, Any]]:
        """A valid event as a client would submit it (no tenant), and the tenant it belongs to."""
        rng, p = self._rng, self.profile
        tenant = rng.choices(self._tenants, self._tenant_weights)[0]
        event_type = rng.choices(self._types, self._type_weights)[0]
        user = int(rng.paretovariate(1.2)) % p.users_per_tenant
        latency = round(rng.lognormvariate(0, 0.6) * p.latency_median_ms * (8 if rng.random() < 0.01 else 1), 3)
        data: dict[str, Any] = {
            "user_id": f"u{user:05d}",
            "action": rng.choice(ACTIONS),
            "latency_ms": latency,
            "metadata": {"session": f"s{rng.getrandbits(32):08x}", "pad": "x" * rng.randint(0, p.payload_padding)},
        }
        if rng.random() < p.error_share:
            data["error"] = True
            data["status_code"] = rng.choice((500, 502, 503))
        self._seq += 1
        event = {
            "id": f"{self._id_prefix}-{self._seq:010d}-{rng.getrandbits(32):08x}",
            "timestamp": timestamp_ms,
            "type": event_type,
            "source": rng.choice(self._sources),
            "data": data,
        }
        return tenant, event

    def _invalid(self, tenant: str, timestamp_ms: int, received_ms: int) -> tuple[bytes, RejectReason]:
        reason = self._rng.choice(INVALID_KINDS)
        _, event = self.submission(timestamp_ms)
        event.update(tenant=tenant, received_at=received_ms)
        match reason:
            case RejectReason.MALFORMED_JSON:
                return orjson.dumps(event)[:-7] + b"{,", reason
            case RejectReason.MISSING_FIELD:
                del event["type"]
            case RejectReason.WRONG_TYPE:
                event["timestamp"] = [timestamp_ms]  # an array: neither a number nor a date-time string
            case RejectReason.PAYLOAD_TOO_LARGE:
                event["data"]["blob"] = "y" * self.profile.oversized_bytes
            case RejectReason.TIMESTAMP_IN_FUTURE:
                event["timestamp"] = received_ms + self.profile.future_skew_ms
        return orjson.dumps(event), reason

    def messages(self, n: int, start_ms: int, rate_per_s: float = 10_000.0) -> Iterator[GeneratedMessage]:
        """``n`` wire messages whose event times advance at ``rate_per_s`` from ``start_ms``.

        Event times are disordered by up to ``max_disorder_ms``; ``received_at`` is the
        undisordered time, so the timestamp checks see realistic skew.
        """
        rng, p = self._rng, self.profile
        for i in range(n):
            received = start_ms + int(i * 1000 / rate_per_s)
            timestamp = max(0, received - rng.randint(0, p.max_disorder_ms))
            tenant, event = self.submission(timestamp)
            user = event["data"]["user_id"]
            key = f"{tenant}:{user}".encode()
            if rng.random() < p.invalid_share:
                value, reason = self._invalid(tenant, timestamp, received)
                yield GeneratedMessage(key, value, False, tenant, None, reason)
                continue
            event.update(tenant=tenant, received_at=received, schema_version=1)
            yield GeneratedMessage(key, orjson.dumps(event), True, tenant, event, None)
