"""Per-tenant token buckets in Redis, shared by every gateway replica, with a local allowance.

The bucket of a tenant is one Redis hash (``tokens``, ``ts``) refilled and charged by one Lua
script (atomic, on Redis's clock). A request does not pay a round trip: the process *leases* a
slice of tokens (``rate_limit_lease_s`` of the tenant's rate, at most ``rate_limit_lease_max``) and
spends it locally; only when its lease is spent does it go back to Redis. Leased tokens are taken
from the shared bucket when they are leased, so the tenant's total over all replicas never exceeds
``burst + rate x time``: a lease left unspent only admits fewer.

A refusal is remembered too: the shared bucket cannot hold ``n`` tokens before its last known
level has refilled to ``n`` (other replicas only take tokens), so until it could hold a whole
lease a replica refuses on its own, again without a round trip: a flooding tenant costs one round
trip per lease's worth of refill and replica, not one per request.

Redis unreachable (error or ``EVENTPULSE_REDIS_TIMEOUT_S``): the replica fails open to an
in-process bucket of the same rate and burst for ``EVENTPULSE_REDIS_RETRY_S`` and then tries
Redis again. Each outage is logged once (and its end), every failure counted
(``shared_state_errors``) and every event admitted that way too (``rate_limit_fail_open_events``).
While Redis is down, N replicas admit up to N x the tenant's rate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from eventpulse.cache.client import REDIS_ERRORS, Outage
from gateway.metrics import GatewayMetrics
from gateway.rate_limit import Decision, TokenBucket

# KEYS[1]: the bucket. ARGV: rate (tokens/s), burst, need (tokens this request lacks), want (the
# lease asked for, >= need). Grants at least `need` and at most `want` tokens when the bucket holds
# min(need, burst) (a request above the burst passes on a full bucket and leaves debt, as the local
# bucket does); returns {granted, tokens left as a string} (Lua numbers come back as integers).
LEASE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local need = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local granted = 0
if tokens >= math.min(need, burst) then
  granted = math.max(need, math.min(want, math.floor(tokens)))
  tokens = tokens - granted
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {granted, tostring(tokens)}
"""


class SharedLimiter:
    """One `SharedBucket` per tenant, all in Redis through ``client`` (a ``redis.asyncio.Redis``)."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str,
        rate_per_s: float,
        burst: int,
        lease_s: float,
        lease_max: int,
        retry_s: float,
        metrics: GatewayMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.metrics = metrics
        self.clock = clock
        self._prefix = prefix
        self._lease_s = lease_s
        self._lease_max = lease_max
        self._script = client.register_script(LEASE_SCRIPT)
        self._buckets: dict[str, SharedBucket] = {}
        self.outage = Outage("rate limits fall back to this process's own buckets", retry_s, clock)

    @property
    def reachable(self) -> bool:
        """False while failing open after a Redis error."""
        return self.outage.up

    def bucket(self, tenant: str, rate_per_s: float = 0.0, burst: int = 0) -> SharedBucket:
        rate = rate_per_s or self.rate_per_s
        size = burst or self.burst
        found = self._buckets.get(tenant)
        if found is None:
            key = f"{self._prefix}rl:{{{tenant}}}"
            found = self._buckets[tenant] = SharedBucket(self, key, rate, size)
        elif found.rate != rate or found.burst != size:
            found.rate, found.burst = rate, size
            found.fallback.rate, found.fallback.burst = rate, size
        return found

    def lease_size(self, rate: float, burst: int) -> int:
        return max(1, min(self._lease_max, burst, int(rate * self._lease_s)))

    async def lease(self, key: str, rate: float, burst: int, need: int, want: int) -> tuple[int, float]:
        """Take between ``need`` and ``want`` tokens from the shared bucket (0 if it lacks ``need``)."""
        self.metrics.rate_limit_leases += 1
        granted, tokens = await self._script(keys=[key], args=[rate, burst, need, want])
        self.outage.succeeded()
        return int(granted), float(tokens)

    def went_down(self, exc: BaseException) -> None:
        self.metrics.shared_state_errors += 1
        self.outage.failed(exc)

    def fail_open(self, bucket: SharedBucket, cost: int) -> bool:
        """Charge the in-process bucket while Redis is unreachable (counted)."""
        if bucket.fallback.take(cost):
            self.metrics.rate_limit_fail_open_events += cost
            return True
        return False


class SharedBucket:
    """A tenant's share of its Redis bucket: tokens leased and not yet spent, and the bucket's last
    known level (an upper bound of what it holds now, for refusals without a round trip)."""

    __slots__ = ("_lock", "burst", "fallback", "key", "known", "known_at", "leased", "owner", "rate")

    def __init__(self, owner: SharedLimiter, key: str, rate: float, burst: int) -> None:
        self.owner = owner
        self.key = key
        self.rate = rate
        self.burst = burst
        self.leased = 0
        self.known = float(burst)
        self.known_at = owner.clock()
        self.fallback = TokenBucket(rate, burst, owner.clock)
        self._lock = asyncio.Lock()

    def _upper_bound(self) -> float:
        tokens = self.known + (self.owner.clock() - self.known_at) * self.rate
        return tokens if tokens < self.burst else float(self.burst)

    async def admit(self, cost: int) -> bool:
        if self.leased >= cost:  # the hot path: spend the lease
            self.leased -= cost
            return True
        owner = self.owner
        if not owner.reachable:
            return owner.fail_open(self, cost)
        if self._upper_bound() < self._threshold(cost):
            return False  # the shared bucket cannot hold a lease yet, whatever the other replicas did
        async with self._lock:  # one lease in flight per tenant: the others wait for it and spend it
            if self.leased >= cost:
                self.leased -= cost
                return True
            if self._upper_bound() < self._threshold(cost):
                return False
            need = cost - self.leased
            want = max(need, owner.lease_size(self.rate, self.burst))
            try:
                granted, tokens = await owner.lease(self.key, self.rate, self.burst, need, want)
            except REDIS_ERRORS as exc:
                owner.went_down(exc)
                return owner.fail_open(self, cost)
            self.known, self.known_at = tokens, owner.clock()
            if granted < need:
                return False
            self.leased += granted - cost
            return True

    def _threshold(self, cost: int) -> float:
        """Ask Redis only once its bucket could hold a whole lease (or this request, if larger): a
        flooded bucket is then asked once per lease's worth of refill, not once per token."""
        return min(max(cost - self.leased, self.owner.lease_size(self.rate, self.burst)), self.burst)

    def has_token(self) -> bool:
        if self.leased >= 1:
            return True
        if not self.owner.reachable:
            return self.fallback.has_token()
        return self._upper_bound() >= 1

    def refusal(self, cost: int) -> Decision:
        if not self.owner.reachable:
            return self.fallback.refusal(cost)
        tokens = self._upper_bound()
        return self._decision(False, tokens, max(1, math.ceil((self._threshold(cost) - tokens) / self.rate)))

    def status(self) -> Decision:
        if not self.owner.reachable:
            return self.fallback.status()
        return self._decision(True, self._upper_bound(), 0)

    def _decision(self, allowed: bool, tokens: float, retry_after: int) -> Decision:
        remaining = max(0, int(tokens)) + self.leased
        reset = math.ceil(max(0.0, self.burst - tokens) / self.rate)
        return Decision(allowed, self.burst, min(remaining, self.burst), reset, retry_after)
