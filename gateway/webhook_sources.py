"""What the webhook route needs to know and remember: the registered sources, and the signatures seen.

`SourceCache` keeps every live source of ``webhook_sources`` in memory (its secret decrypted, its
mapping compiled), reloaded every ``EVENTPULSE_WEBHOOKS_REFRESH_S`` as `gateway.auth.KeyCache` reloads
API keys; past ``max_stale_s`` without a successful reload deliveries are refused (503).

`ReplayGuard` remembers each accepted signature until its timestamp leaves the tolerance window (after
that the signature is refused as stale anyway): one ``SET NX PX`` in Redis when ``EVENTPULSE_REDIS_URL``
is set, so a replay to any replica is refused; per process otherwise, and while Redis is unreachable
(fail open to local memory, counted, as the rate limits do).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

from eventpulse.cache.client import REDIS_ERRORS, Outage
from eventpulse.webhooks.mapping import Mapping
from eventpulse.webhooks.secrets import SecretBox
from eventpulse.webhooks.store import list_sources
from gateway.metrics import GatewayMetrics
from gateway.periodic import WarehouseMirror

log = logging.getLogger(__name__)

_LOCAL_CLAIMS = 500_000
"""Signatures one process remembers without Redis (~150 B each); past it the oldest is forgotten (its
replay would then be caught by the id memory, as a retry is)."""


@dataclass(frozen=True, slots=True)
class LiveSource:
    source: str
    tenant: str
    secret: str
    mapping: Mapping


class SourceCache(WarehouseMirror):
    """Live webhook sources by name, reloaded in the background from the warehouse."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        box_factory: Callable[[], SecretBox],
        refresh_s: float,
        max_stale_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("webhook-source", client_factory, refresh_s, max_stale_s, clock)
        self._box_factory = box_factory
        self._box: SecretBox | None = None
        self._sources: dict[str, LiveSource] = {}

    def get(self, source: str) -> LiveSource | None:
        return self._sources.get(source)

    def reload(self) -> int:
        """Read every source now (blocking); returns how many are live. A source whose secret or
        mapping cannot be read is left out (and logged); the others keep working."""
        rows = [row for row in self._read(list_sources) if not row.revoked]
        live: dict[str, LiveSource] = {}
        if rows and self._box is None:
            self._box = self._box_factory()  # raises SecretsUnavailable: no key, or no cryptography
        for row in rows:
            assert self._box is not None
            try:
                live[row.source] = LiveSource(
                    row.source, row.tenant, self._box.decrypt(row.secret_encrypted), Mapping.parse(row.mapping)
                )
            except (ValueError, RuntimeError) as exc:  # a bad mapping; SecretsUnavailable: a key that does not open it
                log.warning("webhook source skipped", extra={"source": row.source, "error": str(exc)})
        self._sources = live
        self._loaded()
        return len(live)


class ReplayGuard:
    """Claims a signature once: `claim` is True the first time within ``ttl_s``, False for a replay."""

    def __init__(
        self,
        redis: Any | None,
        *,
        prefix: str,
        retry_s: float,
        metrics: GatewayMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}whsig:"
        self._metrics = metrics
        self._clock = clock
        self._local: dict[str, float] = {}  # key -> expiry (wall clock), insertion ordered
        self._outage = Outage("webhook replays are refused by this process only", retry_s)

    async def claim(self, source: str, signature: str, ttl_s: float) -> bool:
        key = f"{self._prefix}{source}:{signature}"
        if self._redis is not None and self._outage.up:
            try:
                claimed = await self._redis.set(key, b"1", nx=True, px=max(1, int(ttl_s * 1000)))
            except REDIS_ERRORS as exc:
                self._metrics.shared_state_errors += 1
                self._outage.failed(exc)
            else:
                self._outage.succeeded()
                return bool(claimed)
        return self._claim_locally(key, ttl_s)

    async def release(self, source: str, signature: str) -> None:
        """Forget a claim whose delivery was not accepted (the broker did not ack): its resend is no replay."""
        key = f"{self._prefix}{source}:{signature}"
        self._local.pop(key, None)
        if self._redis is not None and self._outage.up:
            try:
                await self._redis.delete(key)
            except REDIS_ERRORS as exc:
                self._metrics.shared_state_errors += 1
                self._outage.failed(exc)

    def _claim_locally(self, key: str, ttl_s: float) -> bool:
        now = self._clock()
        while self._local:  # drop expired claims from the old end (ttls differ little: near age order)
            first = next(iter(self._local))
            if self._local[first] > now:
                break
            del self._local[first]
        expiry = self._local.get(key)
        if expiry is not None and expiry > now:
            return False
        if len(self._local) >= _LOCAL_CLAIMS:  # bounded memory: the oldest claim goes first
            del self._local[next(iter(self._local))]
        self._local[key] = now + ttl_s
        return True
