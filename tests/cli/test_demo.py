"""`eventpulse demo` against the real warehouse server (chDB over HTTP) and a real Dagster instance on disk."""

import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
from click.testing import CliRunner

from cli.main import cli
from devstack.traffic.generator import TrafficProfile
from devstack.traffic.history import day_messages, day_table, expected_events, insert_day
from eventpulse.aggregation.compare import compare_rows
from eventpulse.aggregation.spec import KEY_COLUMNS, metric_names, window_specs
from eventpulse.config.events import EventLimits
from flows.decode import FRAME_SCHEMA, Progress
from flows.metrics import PipelineMetrics
from flows.windowing import Slice, WindowConfig, WindowLogic

REPO = Path(__file__).resolve().parents[2]
PER_DAY = 4000
FAMILIES = window_specs((10, 60), ((300, 60),))  # the stream's defaults


def _env(warehouse, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster"
    home.mkdir(exist_ok=True)
    shutil.copyfile(REPO / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    return {
        "EVENTPULSE_WAREHOUSE_URL": warehouse.url,
        "EVENTPULSE_WAREHOUSE_DATABASE": warehouse.database,
        "EVENTPULSE_DATA_DIR": str(tmp_path),
        "DAGSTER_HOME": str(home),
    }


def _demo(env: dict[str, str], *args: str):
    result = CliRunner().invoke(cli, ["demo", "--events-per-day", str(PER_DAY), *args], env=env)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _per_day(client, sql: str) -> dict[date, int]:
    return {row[0]: int(row[1]) for row in client.query(sql).result_rows}


def _counts(client) -> dict[str, object]:
    return {
        "raw_rows": client.command("SELECT count() FROM events"),  # no FINAL: a duplicate would show
        "aggregate_rows": client.command("SELECT count() FROM window_aggregates"),
        "hourly_rows": client.command("SELECT count() FROM rollup_hourly"),
        "daily_rows": client.command("SELECT count() FROM rollup_daily"),
        "manifests": client.command("SELECT count() FROM archive_manifests"),
    }


def test_demo_fills_seven_days_through_the_batch_path_and_twice_changes_nothing(warehouse, warehouse_client, tmp_path):
    env = _env(warehouse, tmp_path)
    started = time.monotonic()
    first = _demo(env)
    took = time.monotonic() - started
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=k) for k in range(7, 0, -1)]

    raw = _per_day(warehouse_client, "SELECT toDate(timestamp) AS d, count() FROM events FINAL GROUP BY d")
    assert raw == {day: expected_events(day, PER_DAY) for day in days}
    assert len({row[0] for row in warehouse_client.query("SELECT DISTINCT tenant FROM events").result_rows}) > 10
    for table, seconds in (("window_aggregates", 10), ("window_aggregates", 60), ("rollup_hourly", 3600)):
        sums = _per_day(
            warehouse_client,
            f"SELECT toDate(window_start) AS d, sum(event_count) FROM {table} FINAL "
            f"WHERE window_seconds = {seconds} AND slide_seconds = {seconds} AND type = '*' AND source = '*' GROUP BY d",
        )
        assert sums == raw, (table, seconds)
    daily = _per_day(
        warehouse_client,
        "SELECT toDate(window_start) AS d, sum(event_count) FROM rollup_daily FINAL WHERE type = '*' AND source = '*' GROUP BY d",
    )
    assert daily == raw
    assert warehouse_client.command("SELECT uniqExact(origin) FROM window_aggregates FINAL") == 1
    assert warehouse_client.command("SELECT count() FROM archive_manifests") == 7

    # The Dagster instance the stack's UI reads knows the days as materialized.
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for asset in ("window_aggregates_batch", "rollup_hourly", "rollup_daily", "events_archive"):
            partitions = instance.get_materialized_partitions(dg.AssetKey(asset))
            assert partitions == {d.isoformat() for d in days}, asset
    assert "demo: done in" in first.output
    print(f"eventpulse demo: 7 days x ~{PER_DAY} events in {took:.1f} s\n{first.output}")

    before = _counts(warehouse_client)
    second = _demo(env)
    assert "already filled" in second.output
    assert _counts(warehouse_client) == before


def test_loading_a_day_twice_inserts_nothing_twice(warehouse, warehouse_client):
    day = datetime.now(UTC).date() - timedelta(days=3)
    table, rejected = day_table(day_messages(day, 2000, TrafficProfile(invalid_share=0.0), 0), EventLimits())
    assert rejected == 0 and table.num_rows == expected_events(day, 2000)
    insert_day(warehouse_client, day, table, "t")
    insert_day(warehouse_client, day, table, "t")  # same blocks, same tokens: dropped by the server
    assert warehouse_client.command("SELECT count() FROM events") == table.num_rows
    insert_day(warehouse_client, day, table, "other")  # negative control: other tokens, the rows go in again
    assert warehouse_client.command("SELECT count() FROM events") == 2 * table.num_rows
    assert warehouse_client.command("SELECT count() FROM events FINAL") == table.num_rows  # same ids


def test_a_day_loaded_but_not_recomputed_is_recomputed_without_loading_it_again(warehouse, warehouse_client, tmp_path):
    env = _env(warehouse, tmp_path)
    day = datetime.now(UTC).date() - timedelta(days=1)
    _demo(env, "--days", "1")
    warehouse_client.command("TRUNCATE TABLE rollup_daily")
    raw_rows = warehouse_client.command("SELECT count() FROM events")
    again = _demo(env, "--days", "1")
    assert "events loaded" not in again.output and "rollups" in again.output
    assert warehouse_client.command("SELECT count() FROM events") == raw_rows
    assert warehouse_client.command(
        "SELECT sum(event_count) FROM rollup_daily FINAL WHERE type = '*' AND source = '*' AND toDate(window_start) = {d:Date}",
        parameters={"d": day},
    ) == expected_events(day, PER_DAY)


def test_a_day_with_traffic_of_its_own_is_left_alone(warehouse, warehouse_client, tmp_path):
    from tests.orchestration.rawdata import day_start_ms, insert_raw, raw_rows

    day = datetime.now(UTC).date() - timedelta(days=1)
    insert_raw(warehouse_client, raw_rows(50, day_start_ms(day, 15)))
    result = _demo(_env(warehouse, tmp_path), "--days", "1")
    assert "holds 50 events of its own" in result.output
    assert warehouse_client.command("SELECT count() FROM events") == 50


def _stream_rows(events: pl.DataFrame) -> list[dict]:
    """What the dataflow's window logic emits for ``events`` (one partition, in arrival order)."""
    config = WindowConfig(FAMILIES, (0,), 3000, 20_000, 3600, 1.0)
    logic = WindowLogic("b000", config, PipelineMetrics(None, 60), None)
    emitted = []
    for chunk in events.iter_slices(5000):
        progress = Progress(0, 0, 0, int(chunk["ts"].max()), 0)
        emissions, _ = logic.on_batch([Slice([progress], chunk)])
        assert not any(len(e.late_rows) for e in emissions)
        emitted += logic.on_notify()[0]
    emitted += logic.on_eof()[0]
    latest: dict[tuple, dict] = {}
    for emission in emitted:
        for row in emission.rows.to_pylist():
            key = tuple(row[c] for c in KEY_COLUMNS)
            if key not in latest or latest[key]["version"] < row["version"]:
                latest[key] = row
    return list(latest.values())


def test_the_batch_rows_of_a_history_day_equal_what_the_stream_computes(warehouse, warehouse_client, tmp_path):
    env = _env(warehouse, tmp_path)
    _demo(env, "--days", "2")
    day = datetime.now(UTC).date() - timedelta(days=2)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    events = pl.from_arrow(
        warehouse_client.query_arrow(
            "SELECT toUnixTimestamp64Milli(timestamp) AS ts, tenant, type, source, user_id, latency_ms, is_error, id, "
            "topic_partition AS partition, topic_offset AS offset, toUnixTimestamp64Milli(timestamp) AS broker_ts "
            "FROM events FINAL WHERE timestamp >= {s:DateTime64(3, 'UTC')} AND timestamp < {e:DateTime64(3, 'UTC')} "
            "ORDER BY toDate(timestamp), topic_offset",
            parameters={"s": start, "e": start + timedelta(days=1, minutes=5)},  # hopping windows reach past midnight
        )
    )
    assert isinstance(events, pl.DataFrame)
    frame = events.cast(FRAME_SCHEMA).select(list(FRAME_SCHEMA))
    stream = [r for r in _stream_rows(frame) if r["window_start"].date() == day]
    batch = warehouse_client.query(
        f"SELECT {', '.join((*KEY_COLUMNS, *metric_names()))} FROM window_aggregates FINAL "
        "WHERE toDate(window_start) = {d:Date}",
        parameters={"d": day},
    ).named_results()
    batch = [{**r, "window_start": r["window_start"].replace(tzinfo=UTC)} for r in batch]
    assert len(stream) == len(batch) > 1000
    differences = compare_rows(stream, batch)
    assert not differences, [d.as_dict() for d in differences[:5]]
