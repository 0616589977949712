"""Archive → retention → replay, materialized in-process against the real warehouse server."""

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.dataset as ds

from orchestration.assets.aggregates import window_aggregates_batch
from orchestration.assets.archive import events_archive
from orchestration.assets.replay import REPLAY_CHECK, events_replay
from orchestration.assets.retention import raw_events_retention
from orchestration.assets.rollups import rollup_daily, rollup_hourly
from tests.orchestration.rawdata import day_start_ms, insert_raw, raw_rows

DAY = date(2026, 10, 5)
UNARCHIVED = DAY + timedelta(days=1)
STALE = DAY + timedelta(days=2)
AGGREGATES = "SELECT * EXCEPT (version, emitted_at) FROM window_aggregates FINAL ORDER BY ALL"


def _run(assets, resources, key=None, config=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, partition_key=key, resources=resources, run_config=config, raise_on_error=False)


def _failure_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (failure,) = result.get_step_failure_events()
    return {k: v.value for k, v in failure.step_failure_data.user_failure_data.metadata.items()}


def test_archive_reads_back_equal_to_the_warehouse(resources, warehouse_client, tmp_path: Path):
    insert_raw(warehouse_client, raw_rows(900, day_start_ms(DAY, 23, 50), seed=5, rate_per_s=1.0))
    result = _run([events_archive], resources, DAY.isoformat())
    assert result.success
    files = sorted((tmp_path / "archive").glob(f"tenant=*/date={DAY}/part-*.parquet"))
    assert len({f.parent.parent.name for f in files}) == 3  # one folder per tenant
    archived = ds.dataset([str(f) for f in files], format="parquet").to_table()
    warehouse = warehouse_client.query_arrow(
        "SELECT * FROM events FINAL WHERE toDate(timestamp) = {d:Date}", parameters={"d": DAY}
    )
    assert archived.num_rows == warehouse.num_rows > 0
    key = [("tenant", "ascending"), ("timestamp", "ascending"), ("id", "ascending")]
    left = archived.sort_by(key).to_pylist()
    right = warehouse.cast(archived.schema).sort_by(key).to_pylist()
    assert left == right
    assert (tmp_path / "archive" / "_manifests" / f"date={DAY}.json").exists()
    status, rows = warehouse_client.query(
        "SELECT status, row_count FROM archive_manifests FINAL WHERE day = {d:Date}", parameters={"d": DAY}
    ).result_rows[0]
    assert (status, rows) == ("verified", archived.num_rows)

    # Re-archiving replaces the files (no duplicates) and still verifies.
    again = _run([events_archive], resources, DAY.isoformat())
    assert again.success
    files_again = sorted((tmp_path / "archive").glob(f"tenant=*/date={DAY}/part-*.parquet"))
    assert ds.dataset([str(f) for f in files_again], format="parquet").count_rows() == archived.num_rows


def test_retention_drops_only_verified_days_and_replay_rebuilds(resources, warehouse_client):
    for n, day in enumerate((DAY, UNARCHIVED, STALE)):
        insert_raw(warehouse_client, raw_rows(400, day_start_ms(day, 12), seed=10 + n, offset=n * 1000))
    assert _run([window_aggregates_batch], resources, DAY.isoformat()).success
    published = warehouse_client.query(AGGREGATES).result_rows
    assert _run([events_archive], resources, DAY.isoformat()).success
    assert _run([events_archive], resources, STALE.isoformat()).success
    insert_raw(warehouse_client, raw_rows(3, day_start_ms(STALE, 13), seed=77, offset=9000))  # after archival

    retention = _run([raw_events_retention], resources, config={"ops": {"raw_events_retention": {"config": {}}}})
    assert not retention.success  # refusals fail the run...
    metadata = _failure_metadata(retention)
    assert list(metadata["dropped"]) == [DAY.isoformat()]  # ...after dropping what qualified
    assert "never archived" in metadata["refused"][UNARCHIVED.isoformat()]
    assert "re-archive" in metadata["refused"][STALE.isoformat()]
    counts = dict(warehouse_client.query("SELECT toDate(timestamp) AS d, count() FROM events GROUP BY d").result_rows)
    assert DAY not in counts and counts[UNARCHIVED] == 400 and counts[STALE] == 403
    assert (
        warehouse_client.command(
            "SELECT raw_dropped_at IS NOT NULL FROM archive_manifests FINAL WHERE day = {d:Date}", parameters={"d": DAY}
        )
        == 1
    )

    # Recomputing the dropped day from raw events would wipe it: refused.
    refused = _run([window_aggregates_batch], resources, DAY.isoformat())
    assert not refused.success
    assert warehouse_client.query(AGGREGATES).result_rows == published

    # Replay from the archive rebuilds exactly what was published.
    warehouse_client.command(
        "ALTER TABLE window_aggregates DELETE WHERE toDate(window_start) = {d:Date}", parameters={"d": DAY}
    )
    replayed = _run([events_replay], resources, DAY.isoformat())
    assert replayed.success
    assert warehouse_client.query(AGGREGATES).result_rows == published
    (check,) = [e for e in replayed.get_asset_check_evaluations() if e.check_name == REPLAY_CHECK]
    assert not check.passed  # the published day had been deleted: every row is reported missing
    assert check.metadata["differences_total"].value == len(published)
    assert warehouse_client.command("SELECT count() FROM events_replay_staging") == 0


def test_rollups_match_raw_events(resources, warehouse_client):
    """The rollups merge the minute rows' states: counts exact, distinct users exact, p99 within 1 %."""
    insert_raw(warehouse_client, raw_rows(500, day_start_ms(DAY, 9, 30), seed=21, rate_per_s=0.1))
    assert _run([window_aggregates_batch, rollup_hourly, rollup_daily], resources, DAY.isoformat()).success
    raw = {
        t: (n, users, p99)
        for t, n, users, p99 in warehouse_client.query(
            "SELECT tenant, count(), uniqExactIf(user_id, user_id != ''), quantileExact(0.99)(latency_ms) "
            "FROM events FINAL GROUP BY tenant"
        ).result_rows
    }
    for table, hours in (("rollup_hourly", 2), ("rollup_daily", 1)):
        rows = warehouse_client.query(
            f"SELECT tenant, sum(event_count), count(), length(groupUniqArrayArray(user_hashes)), "
            f"sketch_quantile(sumMap(latency_sketch_buckets, latency_sketch_counts), 0.99) "
            f"FROM {table} FINAL WHERE type = '*' AND source = '*' GROUP BY tenant"
        ).result_rows
        assert {t: n for t, n, *_ in rows} == {t: n for t, (n, _, _) in raw.items()}
        assert max(c for _, _, c, _, _ in rows) == hours
        for tenant, _, _, users, p99 in rows:
            assert users == raw[tenant][1]
            assert abs(p99 - raw[tenant][2]) <= 0.01 * raw[tenant][2] + 1e-9
    daily = warehouse_client.query(
        "SELECT tenant, distinct_users FROM rollup_daily FINAL WHERE type = '*' AND source = '*'"
    ).result_rows
    assert {t: u for t, u in daily} == {t: users for t, (_, users, _) in raw.items()}
