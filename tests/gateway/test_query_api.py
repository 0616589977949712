"""The query API: read-scoped keys only, the key's tenant only, cached briefly, rate limited per key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eventpulse.api_keys import create_key
from eventpulse.warehouse.client import create_client
from tests.gateway.conftest import gateway_settings, serve, wait_for_key

START = datetime(2026, 11, 2, 12, tzinfo=UTC)


_WINDOW_COLUMNS = [
    "tenant",
    "window_seconds",
    "slide_seconds",
    "window_start",
    "window_end",
    "type",
    "source",
    "event_count",
    "error_count",
    "error_rate",
    "distinct_users",
    "latency_count",
    "latency_sum",
]
"""The window_aggregates columns these tests fill (the rest take their defaults)."""


@pytest.fixture
def two_tenants(warehouse):
    """Both tenants own events e1..e3 (same ids, same users) and a minute of window aggregates."""
    admin = create_client(warehouse, role="admin")
    for tenant, n in (("acme", 1), ("globex", 100)):
        rows = [[tenant, f"e{i}", START + timedelta(seconds=i), "click", "web", "u1", "{}", "{}"] for i in range(1, 4)]
        admin.insert(
            "events", rows, column_names=["tenant", "id", "timestamp", "type", "source", "user_id", "data", "extra"]
        )
        windows = []
        for minute in range(3):
            start = START + timedelta(minutes=minute)
            for type_, source, count in (("*", "*", 3 * n), ("click", "web", 2 * n), ("view", "web", n)):
                windows.append(
                    [
                        tenant,
                        60,
                        60,
                        start,
                        start + timedelta(minutes=1),
                        type_,
                        source,
                        count,
                        0,
                        0.0,
                        1,
                        count,
                        10.0 * count,
                        1,
                        "stream",
                        1,
                        start,
                    ]
                )
        columns = [*_WINDOW_COLUMNS, "is_final", "origin", "version", "emitted_at"]
        admin.insert("window_aggregates", windows, column_names=columns)
    admin.close()


def _sql(http, key: str, sql: str, **params):
    return http.post("/api/sql", json={"sql": sql, "params": params}, headers={"X-API-Key": key})


def test_sql_reads_only_the_keys_tenant(gateway, make_key, two_tenants):
    key = make_key("acme", scopes=("read",))
    wait_for_key(gateway, key)
    with gateway.client() as http:
        own = _sql(http, key, "SELECT tenant, count() AS n FROM events GROUP BY tenant")
        assert own.status_code == 200, own.text
        assert own.json()["rows"] == [["acme", 3]] and own.json()["columns"] == ["tenant", "n"]
        for attack in (
            "SELECT tenant, id FROM events WHERE tenant = 'globex'",
            "SELECT tenant, id FROM events AS a JOIN events AS b USING (id) WHERE b.tenant = 'globex'",
            "WITH x AS (SELECT * FROM events) SELECT tenant, id FROM x WHERE tenant != 'acme'",
            "SELECT tenant, id FROM events UNION ALL SELECT tenant, id FROM late_events WHERE tenant = 'globex'",
        ):
            answer = _sql(http, key, attack)
            assert answer.status_code == 200 and "globex" not in answer.text, attack
        bound = _sql(http, key, "SELECT count() AS n FROM events WHERE id = {id:String}", id="e2")
        assert bound.json()["rows"] == [[1]]
        for refused in (
            "SELECT * FROM api_keys",
            "SELECT * FROM file('/etc/passwd', 'LineAsString')",
            "SELECT * FROM system.tables",
            "SELECT 1 INTO OUTFILE '/tmp/x'",
            "SELECT 1 SETTINGS max_memory_usage = 0",
            "DROP TABLE events",
        ):
            answer = _sql(http, key, refused)
            assert answer.status_code == 400 and answer.json()["error"] == "refused", refused
        tampered = _sql(http, key, "SELECT count() FROM events", eventpulse_tenants=["globex"])
        assert tampered.status_code == 400 and "reserved" in tampered.json()["detail"]


def test_metrics_query_with_breakdown_is_the_tenants(gateway, make_key, two_tenants):
    key = make_key("acme", scopes=("read",))
    wait_for_key(gateway, key)
    span = {"start": START.isoformat(), "end": (START + timedelta(minutes=3)).isoformat()}
    with gateway.client(key) as http:
        total = http.get("/api/metrics/query", params={"metric": "event_count", "granularity": 60, **span})
        assert total.status_code == 200, total.text
        assert [row[1] for row in total.json()["rows"]] == [3, 3, 3]  # acme's, not globex's 300
        again = http.get("/api/metrics/query", params={"metric": "event_count", "granularity": 60, **span})
        assert again.json()["cached"]  # within query_cache_ttl_s
        assert again.json()["rows"] == total.json()["rows"]
        hourly = http.get("/api/metrics/query", params={"metric": "event_count", "granularity": 3600, **span})
        assert [row[1] for row in hourly.json()["rows"]] == [9]
        by_type = http.get("/api/metrics/query", params={"granularity": 3600, "breakdown": "type", **span})
        assert [row[1:] for row in by_type.json()["rows"]] == [["click", 6], ["view", 3]]
        only_view = http.get("/api/metrics/query", params={"granularity": 3600, "type": "view", **span})
        assert [row[1] for row in only_view.json()["rows"]] == [3]
        latency = http.get("/api/metrics/query", params={"metric": "latency_avg", "granularity": 3600, **span})
        assert latency.json()["rows"][0][1] == pytest.approx(10.0)
        for bad in ({"metric": "nope"}, {"breakdown": "tenant"}, {"granularity": "0"}, {"start": "soon"}):
            assert http.get("/api/metrics/query", params={**span, **bad}).status_code == 400, bad


def test_only_read_keys_and_a_rate_limit_per_key(start_gateway, make_key, two_tenants):
    with start_gateway(query_rate_per_s=0.01, query_burst=3) as gateway:
        ingest = make_key("acme", scopes=("ingest", "stream"))
        read, other = make_key("acme", scopes=("read",)), make_key("acme", scopes=("read",))
        for key in (ingest, read, other):
            wait_for_key(gateway, key)
        with gateway.client() as http:
            assert _sql(http, ingest, "SELECT 1").status_code == 403
            assert http.post("/api/sql", json={"sql": "SELECT 1"}).status_code == 401
            assert http.get("/api/metrics/query", headers={"X-API-Key": ingest}).status_code == 403
            codes = [_sql(http, read, f"SELECT {i}").status_code for i in range(5)]
            assert codes == [200, 200, 200, 429, 429]
            assert _sql(http, other, "SELECT 1").status_code == 200  # each key has its own bucket
        spec = gateway.client().get("/openapi.json").json()
        assert {"/api/sql", "/api/metrics/query"} <= set(spec["paths"])
        assert "read" in spec["paths"]["/api/sql"]["post"]["responses"]["403"]["description"]


def _window(tenant: str, start: datetime, count: int) -> list:
    return [tenant, 60, 60, start, start + timedelta(minutes=1), "*", "*", count, 0, 0.0, 1, count, 10.0 * count]


def test_answers_are_cached_until_newer_rows_land(start_gateway, make_key, two_tenants, warehouse):
    """The cache is keyed by the data's version: a hit while nothing changed, a fresh answer at once
    after an insert (``query_cache_version_s`` 0: the version is read on every query)."""
    span = {"start": START.isoformat(), "end": (START + timedelta(hours=1)).isoformat(), "granularity": 3600}
    with start_gateway(query_cache_version_s=0) as gateway:
        key = make_key("acme", scopes=("read",))
        wait_for_key(gateway, key)
        admin = create_client(warehouse, role="admin")
        with gateway.client(key) as http:
            first = http.get("/api/metrics/query", params=span).json()
            again = http.get("/api/metrics/query", params=span).json()
            assert (first["rows"][0][1], first["cached"], again["cached"]) == (9, False, True)
            admin.insert("window_aggregates", [_window("globex", START + timedelta(minutes=10), 50)], _WINDOW_COLUMNS)
            other = http.get("/api/metrics/query", params=span).json()  # another tenant's rows: a new version
            assert (other["rows"][0][1], other["cached"]) == (9, False)
            admin.insert("window_aggregates", [_window("acme", START + timedelta(minutes=10), 5)], _WINDOW_COLUMNS)
            fresh = http.get("/api/metrics/query", params=span).json()
            assert (fresh["rows"][0][1], fresh["cached"]) == (14, False)
            clock = {"sql": "SELECT count() AS n FROM events WHERE timestamp < now()"}  # moves with the clock
            assert [http.post("/api/sql", json=clock).json()["cached"] for _ in range(2)] == [False, False]
            stats = http.get("/api/metrics").json()
        assert (stats["query_cache_hits"], stats["query_cache_misses"], stats["query_cache_bypassed"]) == (1, 3, 2)
        assert stats["query_latency_ms"]["hit"]["p50"] is not None
        admin.close()


def test_replicas_share_answers_and_per_key_buckets_through_redis(
    broker_settings, warehouse, redis_settings, two_tenants
):
    """Two gateways on one Redis: an answer of one is a hit in the other, and a key's query bucket
    holds over both (the negative control, without Redis, admits the burst in each)."""
    admitted = {}
    for mode, redis in (("shared", redis_settings), ("local", None)):
        settings = [
            gateway_settings(broker_settings, warehouse, redis, query_rate_per_s=0.01, query_burst=4) for _ in (1, 2)
        ]
        with serve(settings[0]) as a, serve(settings[1]) as b:
            key = create_key_for(warehouse, "acme")
            for gw in (a, b):
                wait_for_key(gw, key)
            with a.client(key) as http_a, b.client(key) as http_b:
                if mode == "shared":
                    sql = {"sql": "SELECT count() AS n FROM events"}
                    assert not http_a.post("/api/sql", json=sql).json()["cached"]
                    shared = http_b.post("/api/sql", json=sql).json()
                    assert shared["cached"] and shared["rows"] == [[3]]
                    assert b.services.metrics.query_cache_shared_hits == 1
                    spent = 2
                else:
                    spent = 0
                codes = [
                    (http_a if i % 2 else http_b).post("/api/sql", json={"sql": f"SELECT {i}"}).status_code
                    for i in range(10)
                ]
            admitted[mode] = spent + codes.count(200)
            assert set(codes) == {200, 429}
    assert admitted == {"shared": 4, "local": 8}


def create_key_for(warehouse, tenant: str) -> str:
    admin = create_client(warehouse, role="admin")
    try:
        return create_key(admin, tenant, ("read",))[1]
    finally:
        admin.close()
