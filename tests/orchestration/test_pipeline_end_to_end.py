"""Real data from the real pipeline (broker → dataflow → warehouse), then the batch side on top.

The batch recompute must agree with the stream on clean data (counts exact, percentiles within
the sketch's error) and must fix the day that received events too late for the stream, whose
check stays green (the stream left out exactly the events it recorded as late); the late-events
sensor must ask for exactly that day.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from devstack.traffic.generator import EventFactory, TrafficProfile
from orchestration.assets.aggregates import RECONCILIATION_CHECK, window_aggregates_batch
from orchestration.sensors.late_events import late_events_sensor
from tests.orchestration.rawdata import day_start_ms
from tests.support.pipeline import init_recovery, produce, run_flow_until_drained

PROFILE = TrafficProfile(tenants=3, types=3, sources=2, users_per_tenant=50)


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == RECONCILIATION_CHECK]
    return evaluation


def test_batch_matches_stream_and_fixes_late_events(broker_settings, warehouse, warehouse_client, resources, tmp_path):
    clean = datetime.now(UTC).date() - timedelta(days=3)
    late = clean + timedelta(days=1)
    messages = [
        *EventFactory(PROFILE, seed=1).messages(3000, day_start_ms(clean, 10), rate_per_s=1.0),
        *EventFactory(PROFILE, seed=2).messages(3000, day_start_ms(late, 10), rate_per_s=1.0),
    ]
    produce(broker_settings.bootstrap, broker_settings.events_topic, messages)
    recovery = tmp_path / "recovery"
    init_recovery(recovery)
    run_flow_until_drained(broker_settings, warehouse, recovery_dir=recovery, timeout=240)
    # After the flow closed those windows: events ~45 minutes behind its watermark, past the lateness.
    produce(
        broker_settings.bootstrap,
        broker_settings.events_topic,
        EventFactory(PROFILE, seed=3).messages(40, day_start_ms(late, 10, 5), rate_per_s=1.0),
    )
    run_flow_until_drained(broker_settings, warehouse, recovery_dir=recovery, timeout=240)
    late_count = warehouse_client.command("SELECT uniqExact(tenant, id) FROM late_events")
    assert late_count > 0

    on_clean = dg.materialize([window_aggregates_batch], partition_key=clean.isoformat(), resources=resources)
    check = _check(on_clean)
    assert check.passed, check.metadata["differences"].value[:20]
    (day_summary,) = check.metadata["days"].value
    assert (
        day_summary["published_origins"] == {"stream": day_summary["published_rows"]}
        and day_summary["published_rows"] > 0
    )

    on_late = dg.materialize([window_aggregates_batch], partition_key=late.isoformat(), resources=resources)
    check = _check(on_late)
    assert check.passed, check.metadata["differences"].value[:20]  # the repaired day is green
    (day_summary,) = check.metadata["days"].value
    assert day_summary["compared"] and day_summary["late_events"] >= late_count
    rerun = _check(dg.materialize([window_aggregates_batch], partition_key=late.isoformat(), resources=resources))
    (rerun_summary,) = rerun.metadata["days"].value  # a manual re-run still compares the stream's rows
    assert rerun.passed and rerun_summary["stream_rows"] == day_summary["stream_rows"] > 0
    assert rerun_summary["published_origins"] == {"batch": rerun_summary["published_rows"]}
    raw = warehouse_client.command(
        "SELECT count() FROM events FINAL WHERE toDate(timestamp) = {d:Date}", parameters={"d": late}
    )
    for seconds, slide in ((10, 10), (60, 60)):
        total = warehouse_client.command(
            "SELECT sum(event_count) FROM window_aggregates FINAL WHERE toDate(window_start) = {d:Date} "
            "AND window_seconds = {s:UInt32} AND slide_seconds = {h:UInt32} AND type = '*' AND source = '*'",
            parameters={"d": late, "s": seconds, "h": slide},
        )
        assert total == raw  # the batch rows count every event, late ones included

    result = late_events_sensor(dg.build_sensor_context(resources=resources))
    assert [r.partition_key for r in result.run_requests] == [late.isoformat()]
    assert {k.path[0] for k in result.run_requests[0].asset_selection} == {
        "window_aggregates_batch",
        "rollup_hourly",
        "rollup_daily",
    }
    again = late_events_sensor(dg.build_sensor_context(resources=resources, cursor=result.cursor))
    assert isinstance(again, dg.SkipReason)  # the cursor moved past them
