"""`stream_matches_batch` after a repair: the recompute the late-data sensor launches, and a re-run.

The stream's rows are written as the dataflow writes them (origin 'stream', streaming versions)
for the events it saw; events that come too late are in ``events`` and in ``late_events`` (one
row per window they missed), as the dataflow records them. The real dataflow does the same in
`tests/orchestration/test_pipeline_end_to_end.py`; here the data is small and exact.
"""

from datetime import UTC, date, datetime

import dagster as dg

from eventpulse.aggregation.batch_sql import output_columns, recompute_query
from eventpulse.aggregation.spec import WindowSpec, window_specs
from orchestration.archive.checksum import day_bounds
from orchestration.assets.aggregates import RECONCILIATION_CHECK, window_aggregates_batch
from orchestration.day_swap import stage_day
from orchestration.reconciliation import reconcile_day
from orchestration.sensors.late_events import late_events_sensor
from tests.orchestration.rawdata import day_start_ms, insert_raw, raw_rows

DAY = date(2026, 10, 6)
FAMILIES = window_specs((10, 60), ((300, 60),))  # the stream's defaults (PlatformResource.window_specs)
_LATE_COLUMNS = (
    "tenant, id, timestamp, type, source, user_id, latency_ms, is_error, window_seconds, slide_seconds, "
    "window_start, window_end, watermark, lateness_ms, topic_partition, topic_offset"
)


def write_stream_rows(client, day: date, version: int = 1) -> None:
    """The rows the stream writes for the raw events present now (final, origin 'stream')."""
    start, end = day_bounds(day)
    columns = ", ".join((*output_columns(), "is_final", "origin", "version", "emitted_at"))
    for window in FAMILIES:
        sql, params = recompute_query(window, start, end)
        client.command(
            f"INSERT INTO window_aggregates ({columns}) "
            f"SELECT *, 1, 'stream', {{version:UInt64}}, now64(3) FROM ({sql})",
            parameters={**params, "version": version},
        )


def arrive_late(client, rows: list[tuple]) -> None:
    """Raw events the stream refused as late for every window they belong to, recorded as it records them."""
    insert_raw(client, rows)
    late = []
    for row in rows:
        tenant, event_id, ts, type_, source, user, latency, is_error = row[:8]
        ms = int(ts.timestamp() * 1000)
        for w in FAMILIES:
            for start in w.starts_containing(ms):
                window_start, window_end = _dt(start), _dt(start + w.seconds * 1000)
                watermark, lateness = _dt(ms + 45 * 60_000), 45 * 60_000
                event = (tenant, event_id, ts, type_, source, user, latency, is_error)
                late.append((*event, w.seconds, w.slide_seconds, window_start, window_end, watermark, lateness))
                late[-1] += (row[12], row[13])
    client.insert("late_events", late, column_names=[c.strip() for c in _LATE_COLUMNS.split(",")])


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == RECONCILIATION_CHECK]
    return evaluation


def _sensor_run(resources) -> dg.AssetCheckEvaluation:
    """What the late-data sensor launches, run in-process: the recompute of the day it asks for."""
    sensor = late_events_sensor(dg.build_sensor_context(resources=resources))
    assert [r.partition_key for r in sensor.run_requests] == [DAY.isoformat()]
    result = dg.materialize([window_aggregates_batch], partition_key=DAY.isoformat(), resources=resources)
    return _check(result)


def _total(client, window: WindowSpec) -> int:
    return client.command(
        "SELECT sum(event_count) FROM window_aggregates FINAL WHERE window_seconds = {s:UInt32} "
        "AND slide_seconds = {h:UInt32} AND type = '*' AND source = '*'",
        parameters={"s": window.seconds, "h": window.slide_seconds},
    )


def _setup(client) -> list[tuple]:
    insert_raw(client, raw_rows(600, day_start_ms(DAY, 10), seed=3))
    write_stream_rows(client, DAY)
    return raw_rows(8, day_start_ms(DAY, 10) + 5_000, seed=99, offset=10_000)  # inside the stream's windows


def test_the_repaired_day_is_green_and_a_rerun_still_compares_the_streams_rows(resources, warehouse_client):
    late = _setup(warehouse_client)
    arrive_late(warehouse_client, late)

    # The cause, reproduced: published (stream) rows against the staged recompute count every late
    # event as a difference, although the stream left them out by design and recorded them.
    staged = stage_day(warehouse_client, "window_aggregates", DAY, FAMILIES, 1 << 62)
    old_way = reconcile_day(warehouse_client, staged, FAMILIES)
    assert {d.metric for d in old_way.differences} >= {"event_count"} and len(old_way.differences) > 20

    check = _sensor_run(resources)
    assert check.passed, check.metadata["differences"].value[:10]
    (summary,) = check.metadata["days"].value
    assert summary["compared"] and 0 < summary["stream_rows"] <= summary["recomputed_rows"]
    assert summary["late_events"] == sum(len(w.starts_containing(0)) for w in FAMILIES) * len(late)
    assert _total(warehouse_client, WindowSpec(60, 60)) == 608  # the repair counts the late events

    # Another run (manual): the published rows are now the repair's, yet the stream's are compared.
    again = _check(dg.materialize([window_aggregates_batch], partition_key=DAY.isoformat(), resources=resources))
    assert again.passed
    (summary,) = again.metadata["days"].value
    assert summary["published_origins"] == {"batch": summary["published_rows"]}
    assert summary["compared"] and summary["stream_rows"] > 0


def test_repair_after_the_nightly_recompute_is_green(resources, warehouse_client):
    late = _setup(warehouse_client)
    nightly = _check(dg.materialize([window_aggregates_batch], partition_key=DAY.isoformat(), resources=resources))
    assert nightly.passed
    assert warehouse_client.command("SELECT count() FROM window_aggregates FINAL WHERE origin = 'stream'") == 0

    arrive_late(warehouse_client, late)
    check = _sensor_run(resources)
    assert check.passed, check.metadata["differences"].value[:10]
    assert check.metadata["days"].value[0]["late_events"] > 0


def test_a_real_disagreement_on_the_repaired_day_is_still_reported(resources, warehouse_client):
    late = _setup(warehouse_client)
    # The stream miscounted one window, and lost two events it never recorded as late.
    warehouse_client.command(
        "INSERT INTO window_aggregates SELECT * REPLACE (event_count + 1 AS event_count, version + 1 AS version) "
        "FROM window_aggregates FINAL WHERE window_seconds = 60 AND type = '*' AND source = '*' ORDER BY window_start LIMIT 1"
    )
    lost = raw_rows(2, day_start_ms(DAY, 12), seed=7, offset=20_000)
    insert_raw(warehouse_client, lost)
    arrive_late(warehouse_client, late)

    check = _sensor_run(resources)
    assert not check.passed
    listed = check.metadata["differences"].value
    wrong = [d for d in listed if d["metric"] == "event_count" and d["left"] == d["right"] + 1]
    assert len(wrong) == 1 and wrong[0]["key"]["window_seconds"] == "60"
    # Every other difference is a window of the lost events.
    lost_windows = {
        _dt(s).replace(tzinfo=None)
        for r in lost
        for w in FAMILIES
        for s in w.starts_containing(int(r[2].timestamp() * 1000))
    }
    starts = {datetime.fromisoformat(d["key"]["window_start"]).replace(tzinfo=None) for d in listed if d not in wrong}
    assert starts and starts <= lost_windows, starts - lost_windows
    assert any(d["metric"] == "<missing>" and d["key"]["window_seconds"] == "10" for d in listed)

    # Still reported after the repair swapped the rows in (the stream's rows were kept).
    again = _check(dg.materialize([window_aggregates_batch], partition_key=DAY.isoformat(), resources=resources))
    assert again.metadata["differences_total"].value == check.metadata["differences_total"].value


def test_a_day_the_stream_never_wrote_is_not_compared(resources, warehouse_client):
    insert_raw(warehouse_client, raw_rows(100, day_start_ms(DAY, 10), seed=3))
    check = _check(dg.materialize([window_aggregates_batch], partition_key=DAY.isoformat(), resources=resources))
    assert check.passed and "Not compared" in (check.description or "")
    assert check.metadata["days"].value[0]["compared"] is False


def test_an_event_late_for_some_of_its_hopping_windows_counts_in_the_others(warehouse_client):
    """The stream refuses an event per window: late for the oldest of its 5-minute windows, in time for the rest."""
    (row,) = raw_rows(1, day_start_ms(DAY, 10, 7) + 30_000, seed=5)
    insert_raw(warehouse_client, [row])
    hopping = WindowSpec(300, 60)
    starts = hopping.starts_containing(int(row[2].timestamp() * 1000))  # newest first
    late, kept = sorted(starts)[:2], sorted(starts)[2:]
    columns = [c.strip() for c in _LATE_COLUMNS.split(",")]
    warehouse_client.insert(
        "late_events",
        [(*row[:8], 300, 60, _dt(s), _dt(s + 300_000), _dt(s + 400_000), 100_000, row[12], row[13]) for s in late],
        column_names=columns,
    )
    start, end = day_bounds(DAY)
    for as_streamed, expected in ((True, kept), (False, starts)):
        sql, params = recompute_query(hopping, start, end, as_streamed=as_streamed)
        rows = [
            r
            for r in warehouse_client.query(sql, parameters=params).named_results()
            if r["type"] == "*" and r["source"] == "*"
        ]
        assert sorted(int(r["window_start"].timestamp() * 1000) for r in rows) == sorted(expected)
        assert all(r["event_count"] == 1 for r in rows)
