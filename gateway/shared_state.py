"""Factories that pick the in-process or the Redis-backed rate limiter and id memory from the
settings, and what ``/api/health`` says about them.

Without ``EVENTPULSE_REDIS_URL`` both are in-process (`TenantLimiter`, `RecentIds`): right for one
gateway process; with N processes or replicas a tenant gets N x its rate and a retry that reaches
another process (or this one after a restart) is produced again. With it, both are shared
(`SharedLimiter`, `SharedRecentIds`) and fail open to the in-process ones while Redis is unreachable.
"""

from __future__ import annotations

from typing import Any

from eventpulse.cache.client import SharedState, local_state
from eventpulse.settings import Settings
from gateway.metrics import GatewayMetrics
from gateway.rate_limit import Limiter, TenantLimiter
from gateway.recent_ids import RecentIds
from gateway.shared_rate_limit import SharedLimiter
from gateway.shared_recent_ids import SharedRecentIds

_WHAT = "rate limits and acknowledged ids"


def build_limiter(settings: Settings, redis: Any | None, metrics: GatewayMetrics) -> Limiter:
    gw = settings.gateway
    if redis is None:
        return TenantLimiter(gw.rate_per_s, gw.burst)
    return SharedLimiter(
        redis,
        prefix=settings.redis.key_prefix,
        rate_per_s=gw.rate_per_s,
        burst=gw.burst,
        lease_s=gw.rate_limit_lease_s,
        lease_max=gw.rate_limit_lease_max,
        retry_s=settings.redis.retry_s,
        metrics=metrics,
    )


def build_query_limiter(settings: Settings, redis: Any | None, metrics: GatewayMetrics) -> Limiter:
    """Per-key query buckets (``query_rate_per_s``, ``query_burst``): in Redis when it is set (one
    bucket per key for every replica, under ``<prefix>qrl:``), else per process."""
    gw = settings.gateway
    if redis is None:
        return TenantLimiter(gw.query_rate_per_s, gw.query_burst)
    return SharedLimiter(
        redis,
        prefix=f"{settings.redis.key_prefix}q",
        rate_per_s=gw.query_rate_per_s,
        burst=gw.query_burst,
        lease_s=gw.rate_limit_lease_s,
        lease_max=gw.rate_limit_lease_max,
        retry_s=settings.redis.retry_s,
        metrics=metrics,
    )


def build_recent_ids(settings: Settings, redis: Any | None, metrics: GatewayMetrics) -> RecentIds | SharedRecentIds:
    gw = settings.gateway
    local = RecentIds(gw.recent_ids_ttl_s, gw.recent_ids_per_tenant)
    if redis is None:
        return local
    return SharedRecentIds(
        redis,
        local,
        prefix=settings.redis.key_prefix,
        ttl_s=gw.recent_ids_ttl_s,
        retry_s=settings.redis.retry_s,
        metrics=metrics,
    )


def shared_state(settings: Settings, limiter: Limiter) -> SharedState:
    """``redis`` / ``degraded`` (failing open right now) / ``local`` (no Redis configured)."""
    if not isinstance(limiter, SharedLimiter):
        return local_state(_WHAT)
    url = settings.redis.redacted_url()
    if limiter.reachable:
        return SharedState("redis", url, f"{_WHAT} shared through Redis")
    return SharedState("degraded", url, f"Redis unreachable, {_WHAT} per process: {limiter.outage.last_error}")
