"""The memory of acknowledged ids in a real Redis: a client retry after a real gateway restart is
answered ``duplicate: true`` and not produced again (counted on the real topic), where the
per-process memory (the negative control) produces it twice; an unreachable Redis leaves the
process's own memory, counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from eventpulse.cache.client import async_client
from eventpulse.config.redis import RedisSettings
from gateway.metrics import GatewayMetrics
from gateway.recent_ids import RecentIds
from gateway.shared_recent_ids import SharedRecentIds
from tests.gateway.conftest import event, gateway_process, gateway_settings, read_topic
from tests.support.services import free_port


def post_until_key_loads(url: str, key: str, path: str, body: object) -> httpx.Response:
    for _ in range(100):
        response = httpx.post(f"{url}{path}", json=body, headers={"X-API-Key": key}, timeout=30)
        if response.status_code != 401:
            return response
        asyncio.run(asyncio.sleep(0.1))
    raise TimeoutError("key not loaded")


@pytest.mark.integration
@pytest.mark.parametrize("shared", [True, False], ids=["redis", "per-process (negative control)"])
def test_a_retry_after_a_gateway_restart_is_a_duplicate(
    shared: bool, broker_settings, warehouse, redis_settings, make_key, tmp_path: Path
):
    settings = gateway_settings(broker_settings, warehouse, redis_settings if shared else None, key_refresh_s=0.2)
    key = make_key("acme")
    single = event("retry-1")
    batch = [event(f"retry-b{i}", data={"user_id": f"u{i}"}) for i in range(50)]
    answers = []
    for incarnation in range(2):  # the same gateway, stopped (SIGTERM) and started again
        with gateway_process(settings, tmp_path / f"gateway-{incarnation}.log") as url:
            answers.append(
                (
                    post_until_key_loads(url, key, "/api/events", single),
                    post_until_key_loads(url, key, "/api/events/batch", batch),
                )
            )
    (one, many), (one_again, many_again) = answers
    assert one.status_code == many.status_code == one_again.status_code == many_again.status_code == 202
    assert one.json() == {"id": "retry-1", "duplicate": False} and many.json()["duplicates"] == 0
    messages = read_topic(broker_settings.bootstrap, broker_settings.events_topic, expect=51 if shared else 102)
    ids = [value["id"] for _, value in messages]
    if shared:
        assert one_again.json() == {"id": "retry-1", "duplicate": True}
        assert many_again.json()["accepted"] == 50 and many_again.json()["duplicates"] == 50
        assert sorted(ids) == sorted(["retry-1", *(e["id"] for e in batch)])  # each once
    else:
        assert one_again.json()["duplicate"] is False and many_again.json()["duplicates"] == 0
        assert len(ids) == 102 and len(set(ids)) == 51  # produced again after the restart


def test_ids_expire_with_the_idempotency_horizon(redis_settings: RedisSettings):
    async def run() -> tuple[set, set, set]:
        metrics = GatewayMetrics()
        client = async_client(redis_settings)

        def replica() -> SharedRecentIds:
            local = RecentIds(ttl_s=0.5, per_tenant=1000)
            return SharedRecentIds(
                client, local, prefix=redis_settings.key_prefix, ttl_s=0.5, retry_s=1, metrics=metrics
            )

        first, second = replica(), replica()
        await first.add("acme", [("a", 1), ("b", 2)])
        seen_by_other = await second.seen_among("acme", [("a", 1), ("b", 2), ("c", 3)])
        other_tenant = await second.seen_among("zeta", [("a", 1)])
        await asyncio.sleep(0.7)
        after_horizon = await replica().seen_among("acme", [("a", 1), ("b", 2)])
        await client.aclose()
        return seen_by_other, other_tenant, after_horizon

    seen_by_other, other_tenant, after_horizon = asyncio.run(run())
    assert seen_by_other == {("a", 1), ("b", 2)}  # another replica's acks
    assert other_tenant == set()  # per tenant
    assert after_horizon == set()  # gone after the TTL


def test_unreachable_redis_leaves_the_process_memory_counted():
    dead = RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", retry_s=30)
    metrics = GatewayMetrics()

    async def run() -> tuple[set, set]:
        client = async_client(dead)
        ids = SharedRecentIds(
            client, RecentIds(300, 1000), prefix="x:", ttl_s=300, retry_s=dead.retry_s, metrics=metrics
        )
        await ids.add("acme", [("a", 1)])
        seen = await ids.seen_among("acme", [("a", 1), ("b", 2)])
        await ids.add("acme", [("b", 2)])
        seen_after = await ids.seen_among("acme", [("a", 1), ("b", 2)])
        await client.aclose()
        return seen, seen_after

    seen, seen_after = asyncio.run(run())
    assert seen == {("a", 1)} and seen_after == {("a", 1), ("b", 2)}  # this process still remembers
    assert metrics.shared_state_errors == 1  # one failure, then local until retry_s
    assert metrics.idempotency_fail_open == 2
