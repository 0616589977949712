"""Per-tenant token buckets: 429 with headers, and one flooding tenant does not slow the others."""

import asyncio
import statistics
import time

import httpx

from gateway.rate_limit import TenantLimiter
from tests.gateway.conftest import event, wait_for_key


def test_token_bucket_rates_bursts_and_debt():
    now = [0.0]
    limiter = TenantLimiter(rate_per_s=10, burst=20, clock=lambda: now[0])
    bucket = limiter.bucket("a")
    assert bucket.charge(15).allowed
    denied = bucket.charge(10)
    assert not denied.allowed and denied.retry_after_s == 1 and denied.remaining == 5
    now[0] += 0.5
    assert bucket.charge(10).allowed  # refilled 5
    # A batch bigger than the bucket passes when the bucket is full, leaving debt.
    now[0] += 10
    assert bucket.charge(50).allowed
    assert not bucket.peek().allowed
    now[0] += 3.2
    assert bucket.peek().allowed
    assert limiter.bucket("b").charge(20).allowed  # tenants have their own buckets


def test_429_with_rate_limit_headers(start_gateway, make_key):
    with start_gateway(rate_per_s=5, burst=10) as gw:
        key = make_key("acme")
        wait_for_key(gw, key)
        with gw.client(key) as http:
            ok = http.post("/api/events/batch", json=[event() for _ in range(10)])
            limited = http.post("/api/events", json=event())
        # By default the RateLimit-* headers come with the refusal only.
        assert ok.status_code == 202 and "ratelimit-limit" not in ok.headers
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["ratelimit-limit"] == "10"
        assert limited.headers["ratelimit-remaining"] == "0"
        assert int(limited.headers["ratelimit-reset"]) >= 1
        assert limited.json()["error"] == "rate_limited"
        assert gw.client().get("/api/metrics").json()["requests_rate_limited"] == 1


def test_rate_limit_headers_on_every_answer_when_asked(start_gateway, make_key):
    with start_gateway(rate_per_s=0.01, burst=10, rate_limit_headers="always") as gw:
        key = make_key("acme")
        wait_for_key(gw, key)
        with gw.client(key) as http:
            single = http.post("/api/events", json=event())
            batch = http.post("/api/events/batch", json=[event() for _ in range(4)])
            limited = http.post("/api/events/batch", json=[event() for _ in range(6)])
        assert single.status_code == 202 and single.headers["ratelimit-limit"] == "10"
        assert int(single.headers["ratelimit-remaining"]) == 9
        assert batch.status_code == 202 and int(batch.headers["ratelimit-remaining"]) == 5
        assert limited.status_code == 429 and limited.headers["ratelimit-remaining"] == "5"


def test_a_flooding_tenant_does_not_slow_the_others(start_gateway, make_key):
    with start_gateway() as gw:
        flooder = make_key("flooder", rate_per_s=200, burst=200)
        quiet = make_key("quiet")
        wait_for_key(gw, flooder)
        wait_for_key(gw, quiet)
        batch = [event(f"f{i}") for i in range(100)]

        samples = 20

        async def quiet_tenant(client: httpx.AsyncClient) -> list[tuple[int, float]]:
            out = []
            while len(out) < samples:
                started = time.perf_counter()
                r = await client.post("/api/events", json=event(), headers={"X-API-Key": quiet})
                out.append((r.status_code, time.perf_counter() - started))
                await asyncio.sleep(0.02)
            return out

        async def flood(client: httpx.AsyncClient, done: asyncio.Event) -> list[int]:
            codes = []
            while not done.is_set():
                r = await client.post("/api/events/batch", json=batch, headers={"X-API-Key": flooder})
                codes.append(r.status_code)
            return codes

        async def quiet_under_flood(client: httpx.AsyncClient) -> tuple[list[int], list[tuple[int, float]]]:
            done = asyncio.Event()
            floods = [asyncio.create_task(flood(client, done)) for _ in range(4)]
            await asyncio.sleep(0.5)  # the flooder is past its burst
            results = await quiet_tenant(client)
            done.set()
            return [c for task in floods for c in await task], results

        async def main():
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                alone = await quiet_tenant(client)  # the baseline, measured in the same run
                return alone, *await quiet_under_flood(client)

        alone, flood_codes, flooded = asyncio.run(main())
        assert flood_codes.count(429) > 10 * flood_codes.count(202)  # the flooder is held to its rate
        assert {code for code, _ in alone + flooded} == {202}
        base = sorted(t for _, t in alone)
        under = sorted(t for _, t in flooded)
        # Ratios against the quiet tenant alone, measured in the same run (the machine is noisy and
        # shared): the quiet tenant keeps its own bucket (every request 202) and its latency stays
        # within a small factor of its baseline while the flooder is refused.
        # The tail: the second-slowest of 20, so one scheduler stall of a loaded 2-core machine (456 ms once,
        # on a clean-clone CI run, with every other sample near the baseline) is not read as a slow tenant.
        assert statistics.median(under) < 3 * statistics.median(base) + 0.03
        assert under[samples - 2] < 5 * base[samples - 2] + 0.1
