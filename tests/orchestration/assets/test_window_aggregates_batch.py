"""`window_aggregates_batch` materialized in-process against the real warehouse server."""

from datetime import date, datetime, timedelta

import dagster as dg

from eventpulse.aggregation.spec import BATCH_VERSION_BASE
from orchestration.assets.aggregates import RECONCILIATION_CHECK, window_aggregates_batch
from tests.orchestration.rawdata import day_start_ms, insert_raw, raw_rows

DAY = date(2026, 10, 5)


def _materialize(resources, key: str = DAY.isoformat()) -> dg.ExecuteInProcessResult:
    return dg.materialize([window_aggregates_batch], partition_key=key, resources=resources, raise_on_error=False)


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == RECONCILIATION_CHECK]
    return evaluation


def test_recompute_is_idempotent_and_fixes_late_events(resources, warehouse_client):
    insert_raw(warehouse_client, raw_rows(600, day_start_ms(DAY, 10), seed=3))
    first = _materialize(resources)
    assert first.success
    rows = warehouse_client.query(
        "SELECT count(), min(version), uniqExact(origin), min(is_final) FROM window_aggregates FINAL"
    ).result_rows[0]
    assert rows[0] > 0 and rows[1] > BATCH_VERSION_BASE and rows[2] == 1 and rows[3] == 1
    snapshot = warehouse_client.query(
        "SELECT * EXCEPT (version, emitted_at) FROM window_aggregates FINAL ORDER BY ALL"
    ).result_rows

    again = _materialize(resources)
    assert (
        again.success and _check(again).passed
    )  # no stream rows: nothing to compare (see test_reconciliation_after_repair)
    assert (
        warehouse_client.query(
            "SELECT * EXCEPT (version, emitted_at) FROM window_aggregates FINAL ORDER BY ALL"
        ).result_rows
        == snapshot
    )
    assert warehouse_client.command("SELECT count() FROM window_aggregates_staging") == 0

    late = raw_rows(5, day_start_ms(DAY, 10, 1), seed=99, offset=10_000)
    insert_raw(warehouse_client, late)
    fixed = _materialize(resources)
    assert fixed.success
    total_60s = warehouse_client.command(
        "SELECT sum(event_count) FROM window_aggregates FINAL WHERE window_seconds = 60 AND type = '*' AND source = '*'"
    )
    assert total_60s == 605


def test_a_day_without_events_clears_the_day(resources, warehouse_client):
    empty = date(2026, 10, 20)
    insert_raw(warehouse_client, raw_rows(50, day_start_ms(empty, 10), seed=3))
    assert _materialize(resources, empty.isoformat()).success
    warehouse_client.command("TRUNCATE TABLE events")  # e.g. the rows were a bad import, now deleted
    result = _materialize(resources, empty.isoformat())
    assert result.success
    assert warehouse_client.command("SELECT count() FROM window_aggregates") == 0


def test_hopping_windows_across_midnight_count_the_next_days_events(resources, warehouse_client):
    next_day = DAY + timedelta(days=1)
    rows = raw_rows(100, day_start_ms(next_day, 0, 1), seed=3, rate_per_s=1.0)
    insert_raw(warehouse_client, rows)
    assert _materialize(resources).success
    got = dict(
        warehouse_client.query(
            "SELECT window_start, sum(event_count) FROM window_aggregates FINAL WHERE window_seconds = 300 "
            "AND slide_seconds = 60 AND type = '*' AND source = '*' GROUP BY window_start ORDER BY window_start"
        ).result_rows
    )
    # A 5-minute window starting at 23:5x ends at 00:0x the next day and holds the events before that.
    midnight = datetime.combine(next_day, datetime.min.time())
    expected = {}
    for minute in range(56, 60):
        start = midnight - timedelta(minutes=60 - minute)
        inside = sum(1 for row in rows if start <= row[2].replace(tzinfo=None) < start + timedelta(minutes=5))
        if inside:
            expected[start] = inside
    assert expected and got == expected
    assert got[midnight - timedelta(minutes=1)] == 100
