"""The health page against the pipeline's own metrics, dead letters and a real gateway."""

import time
from datetime import UTC, datetime, timedelta

import streamlit as st

from dashboards import formatting as fmt
from devstack.metrics import RestartMetrics
from devstack.supervisor import ServiceEvent
from tests.dashboards.apptest import badges, metrics, open_page, table_with
from tests.dashboards.conftest import use_warehouse
from tests.gateway.conftest import gateway_settings, serve

LATEST_SUM = """
    WITH (SELECT max(time) FROM pipeline_metrics) AS newest
    SELECT sum(v), max(v) FROM (
        SELECT process, label, argMax(value, time) AS v FROM pipeline_metrics
        WHERE metric = {metric:String} AND time >= newest - INTERVAL 30 SECOND
        GROUP BY process, label)"""


def test_health_page_shows_dataflow_metrics_and_dead_letters(dashboard_env, sql, monkeypatch):
    with serve(gateway_settings(dashboard_env.broker, dashboard_env.warehouse)) as gateway:
        monkeypatch.setenv("EVENTPULSE_DASHBOARD_GATEWAY_URL", gateway.url)
        at = open_page("health")
    shown = metrics(at)
    assert shown["Dead letters"] == fmt.count(dashboard_env.invalid)
    assert sql("SELECT count() FROM dead_letters FINAL")[0][0] == dashboard_env.invalid
    events_in = sql(LATEST_SUM, metric="events_in_per_s")[0][0]
    assert shown["Throughput in"] == f"{fmt.rate(events_in)}/s"
    p95 = sql(LATEST_SUM, metric="processing_latency_ms_p95")[0][1]
    assert shown["Processing p95"] == fmt.ms(p95)
    rows = sql("SELECT sum(rows) FROM system.parts WHERE database = currentDatabase() AND active")[0][0]
    shown_rows = int(shown["Rows"].replace(",", ""))
    assert dashboard_env.valid <= rows <= shown_rows  # background merges only remove (duplicate) rows
    assert any("ready" in b for b in badges(at))
    gateway_metrics = table_with(at, "metric")
    assert len(gateway_metrics) > 0
    reasons = table_with(at, "stage")
    expected = sql(
        "SELECT stage, reason, count() AS n FROM dead_letters FINAL GROUP BY ALL ORDER BY n DESC, stage, reason"
    )
    assert list(zip(reasons["stage"], reasons["reason"], reasons["letters"], strict=True)) == expected


def test_health_page_without_pipeline_metrics_or_gateway(monkeypatch, warehouse, warehouse_client):
    warehouse_client.command("DROP TABLE pipeline_metrics")
    warehouse_client.command("DROP TABLE late_events")
    use_warehouse(monkeypatch, warehouse)  # the gateway URL points at a closed port
    at = open_page("health")
    assert any("No pipeline metrics yet" in i.value for i in at.info)
    assert any("No batch recompute yet" in i.value for i in at.info)
    assert metrics(at)["Late events"] == "–"
    assert any("unreachable" in b for b in badges(at))
    assert any("per process: no Redis" in b for b in badges(at))  # the query cache says it has no Redis


def test_health_page_says_where_shared_state_lives_and_how_the_query_cache_does(
    dashboard_env, redis_settings, monkeypatch
):
    monkeypatch.setenv("EVENTPULSE_REDIS_URL", redis_settings.url)
    monkeypatch.setenv("EVENTPULSE_REDIS_KEY_PREFIX", redis_settings.key_prefix)
    with serve(gateway_settings(dashboard_env.broker, dashboard_env.warehouse, redis_settings)) as gateway:
        monkeypatch.setenv("EVENTPULSE_DASHBOARD_GATEWAY_URL", gateway.url)
        for _ in range(3):  # the box shows what the runs before it did; Streamlit's own cache emptied
            st.cache_data.clear()
            at = open_page("health")
    shown = badges(at)
    assert sum("shared (Redis)" in b for b in shown) == 2  # the gateway's state and the query cache
    hit_ratio = metrics(at)["Hit ratio"]
    assert hit_ratio not in ("–", "0%"), hit_ratio  # the second run's queries came from Redis


def test_health_page_lists_the_latest_batch_recomputes(monkeypatch, warehouse, warehouse_client):
    columns = ["tenant", "window_seconds", "slide_seconds", "window_start", "window_end", "type", "source"]
    columns += ["event_count", "is_final", "origin", "version", "emitted_at"]
    rows = []
    for day, origin, emitted in (("2026-11-01", "batch", 1), ("2026-11-02", "batch", 2), ("2026-11-03", "stream", 3)):
        for tenant in ("a", "b"):
            start = datetime.fromisoformat(f"{day}T10:00:00+00:00")
            emitted_at = datetime(2026, 11, 21, emitted, tzinfo=UTC)
            rows.append(
                [tenant, 60, 60, start, start + timedelta(minutes=1), "*", "*", 5, 1, origin, emitted, emitted_at]
            )
    warehouse_client.insert("window_aggregates", rows, column_names=columns)
    use_warehouse(monkeypatch, warehouse)
    at = open_page("health")
    shown = table_with(at, "recomputed_day")
    assert [str(d)[:10] for d in shown["recomputed_day"]] == ["2026-11-02", "2026-11-01"]  # newest first, no stream day
    assert list(shown["window_rows"]) == [2, 2] and list(shown["tenants"]) == [2, 2]


def test_health_page_shows_service_restarts(monkeypatch, warehouse):
    """Restarts written by `eventpulse up`'s supervisor (devstack.metrics) are shown."""
    metrics, now = RestartMetrics(warehouse), time.time() - 60
    exits = (("flow", -9, 1, False), ("flow", 1, 2, False), ("gateway", 3, 1, False), ("gateway", 3, 1, True))
    for second, (service, status, restarts, gave_up) in enumerate(exits):
        metrics.record(ServiceEvent(service, status, "test", restarts, gave_up, 1.0, now + second))
    metrics.close()
    use_warehouse(monkeypatch, warehouse)
    at = open_page("health")
    assert any("3 service restart(s) in this range; gave up on gateway" in e.value for e in at.error)
    shown = table_with(at, "service")
    assert list(zip(shown["service"], shown["restarts"], shown["last_exit_status"], strict=True)) == [
        ("flow", 2, 1),
        ("gateway", 1, 3),
    ]


def test_health_page_lists_recent_pipeline_incidents(monkeypatch, warehouse, warehouse_client):
    from eventpulse.incidents import Incident, insert_incidents

    use_warehouse(monkeypatch, warehouse)
    assert any("No pipeline incidents" in s.value for s in open_page("health").success)
    incident = Incident(
        "flow", "topic_recreated", "events", 2, 9000, 0, 120, "reset to earliest (offset 0) as incarnation X", "test"
    )
    insert_incidents(warehouse_client, [incident])
    st.cache_data.clear()  # the first page run cached "no incidents"
    at = open_page("health")
    shown = table_with(at, "time")
    assert list(zip(shown["kind"], shown["partition"], shown["expected_offset"], shown["log_end"], strict=True)) == [
        ("topic_recreated", 2, 9000, 120)
    ]
    assert metrics(at)["Incidents"] == "1"
