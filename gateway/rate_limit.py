"""Per-tenant token buckets (events per second and burst), so one tenant cannot starve the others.

A request is charged one token per event. A batch larger than the bucket is let through when the
bucket is full and leaves it in debt, so the long-run rate still holds and no batch size is
impossible. `TenantLimiter`'s buckets live in the process (each worker process limits on its own);
`gateway.shared_rate_limit.SharedLimiter` keeps them in Redis, shared by every replica. Both hand
out buckets with the `Bucket` interface, and `build_limiter` picks one from the settings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol


class Decision(NamedTuple):
    """The outcome of a charge, with what the ``RateLimit-*`` headers report (a tuple: one per request)."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the bucket is full again
    retry_after_s: int  # seconds until this request could pass (0 when allowed)

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [
            (b"ratelimit-limit", b"%d" % self.limit),
            (b"ratelimit-remaining", b"%d" % self.remaining),
            (b"ratelimit-reset", b"%d" % self.reset_s),
        ]
        if not self.allowed:
            out.append((b"retry-after", b"%d" % self.retry_after_s))
        return out


class Bucket(Protocol):
    """What the handlers ask of a tenant's bucket, in-process or shared."""

    async def admit(self, cost: int) -> bool:
        """Charge ``cost`` tokens if they are there (see the module doc for batches above the burst)."""
        ...

    def has_token(self) -> bool:
        """Could one token be there? A cheap check before reading a batch's body (no round trip)."""
        ...

    def refusal(self, cost: int) -> Decision: ...

    def status(self) -> Decision: ...


class Limiter(Protocol):
    def bucket(self, tenant: str, rate_per_s: float = 0.0, burst: int = 0) -> Bucket: ...


class TokenBucket:
    """``tokens`` refill at ``rate`` per second up to ``burst``. `take` and `has_token` run on every
    request, so they are plain arithmetic with one clock read each; a `Decision` is built only for
    the headers."""

    __slots__ = ("burst", "clock", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()

    def _refill(self) -> float:
        now = self.clock()
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.burst:
            tokens = float(self.burst)
        self.tokens = tokens
        self.stamp = now
        return tokens

    def take(self, cost: int) -> bool:
        """Charge ``cost`` tokens if the bucket holds them (or is full, for a cost above the burst)."""
        tokens = self._refill()
        if tokens >= (cost if cost < self.burst else self.burst):
            self.tokens = tokens - cost
            return True
        return False

    async def admit(self, cost: int) -> bool:
        """`take`, as the `Bucket` interface has it."""
        return self.take(cost)

    def charge(self, cost: int) -> Decision:
        """`take`, with what the ``RateLimit-*`` headers report."""
        return self.status() if self.take(cost) else self.refusal(cost)

    def status(self) -> Decision:
        """The bucket now, as an allowed decision."""
        return self._decision(True, 0)

    def refusal(self, cost: int) -> Decision:
        """Why ``cost`` tokens cannot be charged now, with the seconds until they can."""
        need = cost if cost < self.burst else self.burst
        return self._decision(False, max(1, math.ceil((need - self.tokens) / self.rate)))

    def peek(self) -> Decision:
        """Allowed if at least one token is there (a cheap check before reading a body)."""
        return self.status() if self.has_token() else self.refusal(1)

    def has_token(self) -> bool:
        """`peek` without the decision (the request path needs it only when refused)."""
        return self._refill() >= 1

    def _decision(self, allowed: bool, retry_after: int) -> Decision:
        remaining = max(0, int(self.tokens))
        reset = math.ceil(max(0.0, self.burst - self.tokens) / self.rate)
        return Decision(allowed, self.burst, remaining, reset, retry_after)


class TenantLimiter:
    """One `TokenBucket` per tenant; a key's own rate/burst (if set) override the defaults."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, tenant: str, rate_per_s: float = 0.0, burst: int = 0) -> TokenBucket:
        rate = rate_per_s or self.rate_per_s
        size = burst or self.burst
        found = self._buckets.get(tenant)
        if found is None:
            found = self._buckets[tenant] = TokenBucket(rate, size, self._clock)
        elif found.rate != rate or found.burst != size:
            found.rate, found.burst = rate, size
        return found
