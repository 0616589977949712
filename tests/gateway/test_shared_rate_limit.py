"""Rate limits shared through a real Redis: a tenant's total over every replica stays within its
quota (the two-process test, with the per-process limiter as the negative control), leases spare
the round trips, and an unreachable Redis fails open to the local limit, counted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from eventpulse.cache.client import async_client
from eventpulse.config.redis import RedisSettings
from gateway.metrics import GatewayMetrics
from gateway.shared_rate_limit import SharedLimiter
from tests.gateway.conftest import event, gateway_process, gateway_settings
from tests.support.services import free_port

RATE, BURST = 50.0, 100  # the flooding tenant's quota: BURST + RATE x seconds


def limiter(redis: RedisSettings, metrics: GatewayMetrics, lease_s: float = 0.2) -> SharedLimiter:
    return SharedLimiter(
        async_client(redis),
        prefix=redis.key_prefix,
        rate_per_s=RATE,
        burst=BURST,
        lease_s=lease_s,
        lease_max=1000,
        retry_s=redis.retry_s,
        metrics=metrics,
    )


def test_replicas_share_one_bucket_and_lease_tokens(redis_settings: RedisSettings):
    async def flood() -> tuple[int, int, float, list[GatewayMetrics]]:
        metrics = [GatewayMetrics(), GatewayMetrics()]
        replicas = [limiter(redis_settings, m) for m in metrics]
        admitted = attempts = 0
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            for replica in replicas:
                attempts += 1
                admitted += await replica.bucket("acme").admit(1)
            await asyncio.sleep(0)
        elapsed = time.monotonic() - started
        for replica in replicas:
            await replica.client.aclose()
        return admitted, attempts, elapsed, metrics

    admitted, attempts, elapsed, metrics = asyncio.run(flood())
    quota = BURST + RATE * elapsed
    assert attempts > 3 * quota  # the tenant asked for far more than its quota...
    assert 0.8 * quota <= admitted <= quota  # ...and got it, once, over both replicas
    leases = sum(m.rate_limit_leases for m in metrics)
    # Admitted requests mostly spent leased tokens: a round trip per lease (20 tokens), plus refusals
    # only when the bucket's last known level could have refilled.
    assert leases < admitted / 5
    assert all(m.shared_state_errors == 0 for m in metrics)


def test_unreachable_redis_fails_open_to_the_local_limit_counted_and_logged(caplog: pytest.LogCaptureFixture):
    dead = RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", retry_s=30)
    metrics = GatewayMetrics()

    async def flood() -> tuple[int, bool, float]:
        shared = limiter(dead, metrics)
        bucket = shared.bucket("acme")
        started = time.monotonic()
        admitted = sum([await bucket.admit(1) for _ in range(BURST * 2)])
        elapsed = time.monotonic() - started
        reachable = shared.reachable
        await shared.client.aclose()
        return admitted, reachable, elapsed

    with caplog.at_level("WARNING"):
        admitted, reachable, elapsed = asyncio.run(flood())
    assert not reachable
    assert BURST <= admitted <= BURST + RATE * elapsed + 1  # the local bucket's quota, not unlimited
    assert metrics.rate_limit_fail_open_events == admitted
    assert metrics.shared_state_errors == 1  # then no round trip until retry_s has passed
    assert [r.message for r in caplog.records].count(
        "Redis unreachable: rate limits fall back to this process's own buckets"
    ) == 1


async def _flood(urls: list[str], key: str, seconds: float, batch: int = 10) -> tuple[int, float]:
    """Batches from 8 clients per gateway for ``seconds``; the events admitted and the elapsed time.

    A batch is a fifth of a second of the quota: the clients (30-100 requests/s per gateway on two
    busy cores shared with the gateways) ask far more often than that."""
    body = [event() for _ in range(batch)]
    admitted = 0

    async def client(http: httpx.AsyncClient, stop: float) -> None:
        nonlocal admitted
        while time.monotonic() < stop:
            response = await http.post("/api/events/batch", json=body)
            assert response.status_code in (202, 429), response.text
            if response.status_code == 202:
                admitted += response.json()["accepted"]

    clients = [httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=30) for url in urls]
    for http in clients:  # connections open before the clock starts
        await asyncio.gather(*(http.get("/api/health") for _ in range(8)))
    started = time.monotonic()
    stop = started + seconds
    await asyncio.gather(*(client(http, stop) for http in clients for _ in range(8)))
    elapsed = time.monotonic() - started
    for http in clients:
        await http.aclose()
    return admitted, elapsed


@pytest.mark.integration
@pytest.mark.parametrize("shared", [True, False], ids=["redis", "per-process (negative control)"])
def test_two_gateway_processes_hold_a_flooding_tenant_to_its_quota(
    shared: bool, broker_settings, warehouse, redis_settings, make_key, tmp_path: Path
):
    redis = redis_settings if shared else None
    first = gateway_settings(broker_settings, warehouse, redis, key_refresh_s=0.2)
    second = gateway_settings(broker_settings, warehouse, redis, key_refresh_s=0.2)
    key = make_key("flooder", rate_per_s=RATE, burst=BURST)
    with gateway_process(first, tmp_path / "a.log") as a, gateway_process(second, tmp_path / "b.log") as b:
        for url in (a, b):
            deadline = time.monotonic() + 10
            while httpx.post(f"{url}/api/events", json=event(), headers={"X-API-Key": key}).status_code == 401:
                assert time.monotonic() < deadline, "key not loaded"
                time.sleep(0.1)
        time.sleep(BURST / RATE)  # the probes above took a token each: let the buckets fill again
        admitted, elapsed = asyncio.run(_flood([a, b], key, 5.0))
        health = httpx.get(f"{a}/api/health").json()["shared_state"]
        metrics = httpx.get(f"{a}/api/metrics").json()
    quota = BURST + RATE * elapsed
    if shared:
        assert health["mode"] == "redis"
        assert 0.7 * quota <= admitted <= 1.05 * quota, (admitted, quota)
        assert metrics["shared_state_errors"] == 0 and metrics["rate_limit_leases"] > 0
    else:
        assert health["mode"] == "local" and "per process" in health["detail"]
        assert admitted > 1.6 * quota, (admitted, quota)  # each process gave the tenant its whole quota
