"""The historical page: totals, breakdowns and the previous period equal direct queries."""

import time
from datetime import UTC, datetime, timedelta

import streamlit as st

from dashboards import formatting as fmt
from eventpulse.aggregation.batch_sql import output_columns, recompute_query
from eventpulse.aggregation.spec import BATCH_VERSION_BASE, WindowSpec
from tests.dashboards.apptest import badges, metrics, open_page, table_with
from tests.dashboards.conftest import use_warehouse
from tests.dashboards.seeding import reopen_newest_minute, seed


def test_historical_totals_and_breakdowns_match_the_warehouse(dashboard_env, sql):
    at = open_page("historical")
    shown = metrics(at)
    events, errors = sql(
        """SELECT sum(event_count), sum(error_count) FROM window_aggregates FINAL
           WHERE window_seconds = 60 AND slide_seconds = 60 AND type = '*' AND source = '*'"""
    )[0]
    assert events == dashboard_env.valid
    assert shown["Events"] == fmt.count(events)
    assert shown["Errors"] == fmt.count(errors)
    assert shown["Error rate"] == fmt.percent(errors / events)
    assert any("minute buckets" in c.value and "`window_aggregates`" in c.value for c in at.caption)
    for dim in ("type", "source", "tenant"):
        at.segmented_control(key="hist_dim").set_value(dim).run()
        assert not at.exception
        table = table_with(at, dim)
        expected = sql(f"SELECT {dim}, count() AS n FROM events FINAL GROUP BY {dim} ORDER BY n DESC, {dim}")
        assert list(zip(table[dim], table["events"], strict=True)) == expected
    assert len(at.get("download_button")) >= 2  # CSV and Parquet of the breakdown


def _rollup(client, table: str, seconds: int, start: datetime, end: datetime) -> None:
    sql, params = recompute_query(WindowSpec(seconds, seconds), start, end)
    columns = ", ".join(output_columns())
    client.command(
        f"""INSERT INTO {table} ({columns}, is_final, origin, version, emitted_at)
            SELECT {columns}, 1, 'batch', {BATCH_VERSION_BASE + 1}, now64(3) FROM ({sql})""",
        parameters=params,
    )


def test_previous_period_and_rollups(monkeypatch, warehouse, warehouse_client):
    now_ms = int(time.time() * 1000)
    first = seed(warehouse_client, 3_000, now_ms - 100 * 60_000, 20, seed_value=1)  # the previous hour
    second = seed(warehouse_client, 4_500, now_ms - 40 * 60_000, 20, seed_value=2)  # this hour
    # Hourly rollups up to the last full hour, as orchestration writes them.
    cut = datetime.fromtimestamp(now_ms // 3_600_000 * 3600, tz=UTC)
    _rollup(warehouse_client, "rollup_hourly", 3600, cut - timedelta(days=1), cut)
    use_warehouse(monkeypatch, warehouse)

    at = open_page("historical")  # last hour in minute buckets: the 60 s windows
    shown = {m.label: (m.value, m.delta) for m in at.metric}
    assert shown["Events"] == (fmt.count(second.events), fmt.delta_percent(second.events, first.events))

    at.sidebar.selectbox(key="range").select("Last 24 hours").run()  # hour buckets: rollups, then windows
    assert not at.exception
    caption = " ".join(c.value for c in at.caption)
    assert "hour buckets" in caption and "`rollup_hourly`" in caption and "`window_aggregates`" in caption
    assert metrics(at)["Events"] == fmt.count(first.events + second.events)


def test_an_empty_range_says_what_to_do(monkeypatch, warehouse):
    use_warehouse(monkeypatch, warehouse)  # a fresh database: no aggregates at all
    at = open_page("historical")
    assert any("Pick a longer time range or another tenant" in i.value and "make run" in i.value for i in at.info)
    assert not at.metric


def test_the_open_bucket_is_marked_provisional(monkeypatch, warehouse, warehouse_client):
    seed(warehouse_client, 1_200, int(time.time() * 1000) - 10 * 60_000, 2)  # ten minutes up to now
    use_warehouse(monkeypatch, warehouse)
    at = open_page("historical")
    assert not [b for b in badges(at) if "Provisional" in b]  # every window final: nothing marked
    newest = reopen_newest_minute(warehouse_client)
    st.cache_data.clear()
    at = open_page("historical")
    assert [b for b in badges(at) if f"Provisional from {newest:%Y-%m-%d %H:%M} UTC: 1 bucket(s)" in b]
