"""The query cache on a real warehouse and a real Redis: a result is shared by two processes'
caches, and never served once newer rows landed in a table the query reads (the entry a key of the
query alone would have served still holds the old answer: the negative control)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import polars as pl

from eventpulse.cache.client import sync_client
from eventpulse.cache.query_cache import QueryCache, tables_read
from eventpulse.config.redis import RedisSettings
from eventpulse.warehouse.client import create_client
from tests.support.services import free_port

SQL = "SELECT metric, sum(value) AS total FROM pipeline_metrics WHERE metric = {m:String} GROUP BY metric"
PARAMS = {"m": "cache_test"}


def _insert(client, value: float) -> None:
    row = [datetime.now(UTC), "test", "cache_test", "", value]
    client.insert("pipeline_metrics", [row], column_names=["time", "process", "metric", "label", "value"])


def test_results_are_shared_and_invalidated_when_newer_rows_land(warehouse, redis_settings: RedisSettings):
    client = create_client(warehouse, role="admin")
    redis = sync_client(redis_settings)
    first, second = (QueryCache(redis, prefix=redis_settings.key_prefix, ttl_s=60) for _ in range(2))
    try:
        _insert(client, 1.0)
        assert first.frame(client, SQL, PARAMS, {})["total"].to_list() == [1.0]
        old_key = first.key(client, SQL, PARAMS, {})
        assert second.frame(client, SQL, PARAMS, {})["total"].to_list() == [1.0]
        assert (first.misses, second.hits, second.misses) == (1, 1, 0)  # the other process's result

        _insert(client, 2.0)  # newer rows land
        assert first.frame(client, SQL, PARAMS, {})["total"].to_list() == [3.0]
        assert second.frame(client, SQL, PARAMS, {})["total"].to_list() == [3.0]
        assert (first.misses, second.hits) == (2, 2)
        # Negative control: the old entry is still there with the old answer; a key without the
        # data version would have served it.
        assert first.key(client, SQL, PARAMS, {}) != old_key
        assert pl.read_ipc(redis.get(old_key))["total"].to_list() == [1.0]

        stats = second.stats()
        assert stats["mode"] == "redis" and stats["hit_ratio"] == 1.0 and stats["hit_p50_ms"] is not None
        assert first.stats()["hit_ratio"] == 0.0 and first.stats()["miss_p50_ms"] is not None
    finally:
        client.close()
        redis.close()


def test_queries_on_the_clock_or_system_tables_are_not_cached(warehouse, redis_settings: RedisSettings):
    assert tables_read("SELECT count() FROM events WHERE tenant = {t:String}") == ["events"]
    assert tables_read("SELECT a FROM (SELECT a FROM window_aggregates FINAL) JOIN rollup_daily USING a") == [
        "rollup_daily",
        "window_aggregates",
    ]
    assert tables_read("SELECT count() FROM window_aggregates WHERE window_start > now64(3) - 60") is None
    assert tables_read("SELECT * FROM system.parts") is None
    assert tables_read("SELECT * FROM numbers(3)") is None
    client = create_client(warehouse, role="admin")
    cache = QueryCache(sync_client(redis_settings), prefix=redis_settings.key_prefix, ttl_s=60)
    try:
        for _ in range(2):
            assert cache.frame(client, "SELECT count() AS n FROM system.tables", {}, {}).height == 1
        assert (cache.hits, cache.misses, cache.bypassed) == (0, 0, 2)
    finally:
        client.close()


def test_without_redis_or_with_it_down_queries_run_uncached(warehouse):
    client = create_client(warehouse, role="admin")
    dead = RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", retry_s=30)
    caches = [QueryCache(None, prefix="x:", ttl_s=60), QueryCache(sync_client(dead), prefix="x:", ttl_s=60)]
    try:
        _insert(client, 5.0)
        for cache in caches:
            for _ in range(2):
                assert cache.frame(client, SQL, PARAMS, {})["total"].to_list() == [5.0]
        local, down = caches
        assert local.mode == "local" and local.bypassed == 2
        assert down.mode == "degraded" and down.errors == 1 and down.hits == 0  # one failure, then straight through
    finally:
        client.close()


def test_a_shared_data_version_shows_new_rows_within_its_period(warehouse, redis_settings: RedisSettings):
    """With ``version_s`` the data version is read once per period for every process: new rows show
    after that period plus one background probe (and not before it: the bound is real, not a lucky
    timing), and no call waits for the probe once a version is known."""
    client = create_client(warehouse, role="admin")
    redis = sync_client(redis_settings)
    params = {"m": "version_test"}
    sql = SQL.replace("cache_test", "version_test")
    caches = [QueryCache(redis, prefix=redis_settings.key_prefix, ttl_s=60, version_s=1.0) for _ in range(2)]
    try:
        row = [datetime.now(UTC), "test", "version_test", "", 1.0]
        columns = ["time", "process", "metric", "label", "value"]
        client.insert("pipeline_metrics", [row], column_names=columns)
        assert caches[0].frame(client, sql, params, {})["total"].to_list() == [1.0]
        client.insert("pipeline_metrics", [row], column_names=columns)
        assert caches[1].frame(client, sql, params, {})["total"].to_list() == [1.0]  # within the period
        assert caches[1].hits == 1
        time.sleep(1.2)
        started = time.monotonic()
        seen = caches[1].frame(client, sql, params, {})["total"].to_list()  # starts the probe, not waits for it
        assert seen == [1.0] and caches[1].hits == 2
        while seen != [2.0] and time.monotonic() - started < 5.0:  # the probe lands: the next call sees the rows
            time.sleep(0.05)
            seen = caches[0].frame(client, sql, params, {})["total"].to_list()
        assert seen == [2.0], "the new row never showed"
        assert caches[1].errors == caches[0].errors == 0
    finally:
        client.close()
        redis.close()


def test_a_process_serves_results_it_holds_from_memory_exactly_as_fresh(warehouse, redis_settings: RedisSettings):
    """What a process already holds is served without Redis (gone from Redis here: still a hit), and
    no longer than the shared version says: after new rows and the period, the new answer."""
    client = create_client(warehouse, role="admin")
    redis = sync_client(redis_settings)
    params = {"m": "memory_test"}
    sql = SQL.replace("cache_test", "memory_test")
    row = [datetime.now(UTC), "test", "memory_test", "", 1.0]
    columns = ["time", "process", "metric", "label", "value"]
    cache = QueryCache(redis, prefix=redis_settings.key_prefix, ttl_s=60, version_s=1.0)
    try:
        client.insert("pipeline_metrics", [row], column_names=columns)
        assert cache.frame(client, sql, params, {})["total"].to_list() == [1.0]
        redis.flushdb()  # neither the result nor the version is in Redis now
        assert cache.frame(client, sql, params, {})["total"].to_list() == [1.0]
        assert (cache.hits, cache.misses) == (1, 1)
        client.insert("pipeline_metrics", [row], column_names=columns)
        time.sleep(1.2)  # the version this process read is past its period: asked again, then probed
        assert cache.frame(client, sql, params, {})["total"].to_list() == [2.0]
        assert (cache.hits, cache.misses) == (1, 2)
    finally:
        client.close()
        redis.close()


def test_the_memory_a_process_keeps_is_bounded(warehouse, redis_settings: RedisSettings):
    client = create_client(warehouse, role="admin")
    redis = sync_client(redis_settings)
    cache = QueryCache(redis, prefix=redis_settings.key_prefix, ttl_s=60, version_s=5.0, local_bytes=4096)
    sql = "SELECT count() AS n, {n:UInt32} AS asked FROM pipeline_metrics WHERE metric = 'cache_test'"
    try:
        _insert(client, 1.0)
        for n in range(200):
            assert cache.frame(client, sql, {"n": n}, {})["asked"].to_list() == [n]
        assert 0 < cache._local_bytes <= 4096 and 0 < len(cache._local) < 20
        assert cache.frame(client, sql, {"n": 0}, {})["asked"].to_list() == [0]  # dropped here, still in Redis
        assert cache.hits == 1
    finally:
        client.close()
        redis.close()
