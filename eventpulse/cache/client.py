"""The one factory for Redis clients, and the status a health page shows.

Clients are created by the component that owns them (the gateway's lifespan, the dashboards'
cached resource), never at import. ``None`` means no Redis is configured: the caller keeps its
state in its own process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec
import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from redis.backoff import NoBackoff

from eventpulse.config.redis import RedisSettings

log = logging.getLogger(__name__)

# What every client treats as "Redis is unreachable": fail open to local state.
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)


def async_client(settings: RedisSettings) -> redis.asyncio.Redis | None:
    """An asyncio client (the gateway's event loop) for ``settings.url``, or None without one."""
    if not settings.enabled:
        return None
    return redis.asyncio.Redis.from_url(
        settings.url,
        socket_timeout=settings.timeout_s,
        socket_connect_timeout=settings.timeout_s,
        retry=redis.asyncio.retry.Retry(NoBackoff(), 0),  # no hidden retries: the caller fails open at once
    )


def sync_client(settings: RedisSettings) -> redis.Redis | None:
    """A blocking client (dashboards, tests) for ``settings.url``, or None without one."""
    if not settings.enabled:
        return None
    return redis.Redis.from_url(
        settings.url,
        socket_timeout=settings.timeout_s,
        socket_connect_timeout=settings.timeout_s,
        retry=redis.retry.Retry(NoBackoff(), 0),
    )


class SharedState(msgspec.Struct):
    """What a health page says about the shared state store.

    ``mode`` is ``redis`` (configured and answering), ``degraded`` (configured, not answering:
    local state in use until it answers again) or ``local`` (none configured: correct for one
    process only).
    """

    mode: str
    url: str | None
    detail: str


def local_state(what: str) -> SharedState:
    return SharedState(
        "local", None, f"no Redis (EVENTPULSE_REDIS_URL is empty): {what} are kept per process, correct for one process"
    )


def probe(client: redis.Redis | None, settings: RedisSettings, what: str) -> SharedState:
    """Ping ``client`` (blocking) and describe the outcome."""
    if client is None:
        return local_state(what)
    try:
        client.ping()
    except REDIS_ERRORS as exc:
        return SharedState("degraded", settings.redacted_url(), f"Redis unreachable, {what} per process: {exc}")
    return SharedState("redis", settings.redacted_url(), f"{what} shared through Redis")


class Outage:
    """Whether Redis may be asked now, for a component that fails open to local state.

    After a failure (`failed`) Redis is left alone for ``retry_s``; the first failure of an outage
    and its end (the next `succeeded`) are logged once each, as ``Redis unreachable: <fallback>``
    and ``Redis reachable again``. Counting the failures is the caller's (its own metrics).
    """

    def __init__(self, fallback: str, retry_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._fallback = fallback
        self._retry_s = retry_s
        self._clock = clock
        self.down_until = 0.0
        self.last_error: str | None = None

    @property
    def up(self) -> bool:
        return self.down_until <= self._clock()

    def failed(self, exc: BaseException) -> None:
        self.down_until = self._clock() + self._retry_s
        error = f"{type(exc).__name__}: {exc}"[:300]
        if self.last_error is None:
            log.warning(f"Redis unreachable: {self._fallback}", extra={"error": error, "retry_s": self._retry_s})
        self.last_error = error

    def succeeded(self) -> None:
        if self.last_error is not None:
            log.warning("Redis reachable again", extra={"fallback_was": self._fallback, "after": self.last_error})
            self.last_error = None
