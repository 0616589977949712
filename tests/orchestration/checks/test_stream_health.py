"""Stream-health checks executed as Dagster runs them (a job of checks) against the real warehouse."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from orchestration.assets.sources import STREAM_AGGREGATES
from orchestration.checks.stream_health import STREAM_HEALTH_CHECKS
from orchestration.jobs import stream_health_job
from tests.orchestration.rawdata import insert_raw, raw_rows


def _run(resources) -> dict[str, dg.AssetCheckEvaluation]:
    defs = dg.Definitions(
        assets=[STREAM_AGGREGATES], asset_checks=STREAM_HEALTH_CHECKS, jobs=[stream_health_job], resources=resources
    )
    result = defs.resolve_job_def("stream_health_job").execute_in_process()
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_checks_see_gaps_staleness_and_rates(resources, warehouse_client):
    start_ms = int((datetime.now(UTC) - timedelta(minutes=30)).timestamp() * 1000)
    insert_raw(warehouse_client, raw_rows(300, start_ms, seed=4, rate_per_s=0.5))  # 10 minutes of traffic
    warehouse_client.command(
        "INSERT INTO dead_letters (id, tenant, stage, reason, received_at) "
        "SELECT toString(number), 'tenant-00', 'flow', 'malformed_json', now64(3) FROM numbers(40)"
    )
    results = _run(resources)
    assert set(results) == {spec.name for check in STREAM_HEALTH_CHECKS for spec in check.check_specs}
    assert not results["aggregates_are_fresh"].passed  # raw events but no stream emission
    assert not results["no_gaps_in_traffic_windows"].passed
    assert results["no_gaps_in_traffic_windows"].metadata["missing_total"].value > 0
    assert not results["dead_letter_rate_is_low"].passed  # 40 / 340
    assert results["late_event_rate_is_low"].passed

    # The stream's rows arrive: recompute the last hour as the stream would have published it.
    warehouse_client.command(
        "INSERT INTO window_aggregates (tenant, window_seconds, slide_seconds, window_start, window_end, type, "
        "source, event_count, is_final, origin, version, emitted_at) "
        "SELECT tenant, s, s, fromUnixTimestamp64Milli(intDiv(toUnixTimestamp64Milli(timestamp), s * 1000) * s * 1000, "
        "'UTC') AS w, w + toIntervalSecond(s), '*', '*', count(), 1, 'stream', 1, now64(3) "
        "FROM events ARRAY JOIN [10, 60] AS s GROUP BY tenant, s, w"
    )
    results = _run(resources)
    assert results["aggregates_are_fresh"].passed
    assert results["no_gaps_in_traffic_windows"].passed, results["no_gaps_in_traffic_windows"].metadata
