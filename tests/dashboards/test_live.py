"""The live page against the pipeline's windows: headline numbers equal a direct query."""

import time
from datetime import UTC, datetime

from dashboards import formatting as fmt
from tests.dashboards.apptest import badges, metrics, open_page, table_with
from tests.dashboards.seeding import seed

LATEST_WINDOW = """
    SELECT window_start, sum(event_count), sum(error_count), sum(distinct_users),
           sum(latency_p50 * latency_count) / sum(latency_count), sum(latency_p99 * latency_count) / sum(latency_count)
    FROM window_aggregates FINAL
    WHERE window_seconds = 10 AND slide_seconds = 10 AND type = '*' AND source = '*' AND is_final = 1
      AND (tenant = {tenant:String} OR {tenant:String} = '')
    GROUP BY window_start ORDER BY window_start DESC LIMIT 1"""


def test_live_page_shows_the_latest_closed_window_of_all_tenants(dashboard_env, sql):
    at = open_page()
    shown = metrics(at)
    start, events, errors, users, p50, p99 = sql(LATEST_WINDOW, tenant="")[0]
    assert shown["Events/s"] == fmt.rate(events / 10)
    assert shown["Error rate"] == fmt.percent(errors / events)
    assert shown["Distinct users"] == fmt.count(users)
    assert shown["Latency p50"] == fmt.ms(p50)
    assert shown["Latency p99"] == fmt.ms(p99)
    assert any(f"Window {start:%H:%M:%S}" in b and "final" in b for b in badges(at))
    # Every event the pipeline accepted is in the last 15 minutes of 10 s windows.
    (raw,) = sql("SELECT count() FROM events FINAL")[0]
    assert raw == dashboard_env.valid
    assert any(f"**{fmt.count(raw)}** events" in c.value for c in at.caption)
    top_types = table_with(at, "type")
    expected = sql("""SELECT type, count() AS n FROM events FINAL GROUP BY type ORDER BY n DESC, type LIMIT 10""")
    assert list(zip(top_types["type"], top_types["events"], strict=True)) == expected


def test_live_page_for_one_tenant(dashboard_env, sql):
    at = open_page()
    at.sidebar.selectbox(key="tenant").select("tenant-01").run()
    assert not at.exception
    shown = metrics(at)
    _, events, errors, users, p50, _ = sql(LATEST_WINDOW, tenant="tenant-01")[0]
    assert shown["Events/s"] == fmt.rate(events / 10)
    assert shown["Error rate"] == fmt.percent(errors / events)
    assert shown["Distinct users"] == fmt.count(users)
    assert shown["Latency p50"] == fmt.ms(p50)  # one tenant: the window's own percentile


def test_live_page_marks_open_windows_provisional(monkeypatch, warehouse, warehouse_client):
    from tests.dashboards.conftest import use_warehouse

    now_ms = int(time.time() * 1000)
    seed(warehouse_client, 3_000, now_ms - 120_000, 30)
    # The stream's emission of a still-open window: a later window, is_final = 0.
    opened = datetime.fromtimestamp(now_ms // 10_000 * 10, tz=UTC)
    warehouse_client.command(
        """INSERT INTO window_aggregates
           SELECT * REPLACE ({start:DateTime64(3, 'UTC')} AS window_start,
                             {start:DateTime64(3, 'UTC')} + INTERVAL 10 SECOND AS window_end,
                             0 AS is_final, 'stream' AS origin, 1 AS version)
           FROM (SELECT * FROM window_aggregates FINAL
                 WHERE window_seconds = 10 AND type = '*' AND source = '*'
                   AND window_start = (SELECT max(window_start) FROM window_aggregates WHERE window_seconds = 10))""",
        parameters={"start": opened},
    )
    use_warehouse(monkeypatch, warehouse)
    at = open_page()
    assert any("1 provisional window(s)" in b for b in badges(at)), (badges(at), at.info, at.caption)
    assert any("final" in b and "Window" in b for b in badges(at))  # headline: latest closed window


def test_live_page_without_data_says_so(monkeypatch, warehouse):
    from tests.dashboards.conftest import use_warehouse

    use_warehouse(monkeypatch, warehouse)
    at = open_page()
    assert any("No windows in the last" in i.value for i in at.info)
