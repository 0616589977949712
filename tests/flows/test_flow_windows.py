"""Windows on the real broker and warehouse: idle partitions, closing, late data, -w 2."""

import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Producer

from devstack.traffic.generator import EventFactory
from eventpulse.aggregation.compare import compare_rows
from eventpulse.aggregation.reconcile import reconcile, stream_rows
from eventpulse.aggregation.spec import ALL, window_specs
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.support.pipeline import committed_epoch, init_recovery, produce, run_flow_until_drained, start_flow
from tests.support.services import free_port, stop

pytestmark = pytest.mark.integration

EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _event(tenant: str, ident: str, ts: int) -> bytes:
    doc = {"id": ident, "timestamp": ts, "type": "click", "source": "web", "data": {"user_id": "u1"}}
    return orjson.dumps({**doc, "tenant": tenant, "received_at": ts, "schema_version": 1})


def _send(bootstrap: str, topic: str, partition: int, events: list[tuple[str, str, int]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for tenant, ident, ts in events:
        producer.produce(topic, _event(tenant, ident, ts), f"{tenant}:u1".encode(), partition=partition)
    assert producer.flush(30) == 0


def _wait_for(check: Callable[[], object], timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_idle_partition_closing_and_late_events(
    broker_bootstrap: str, new_topic, warehouse: WarehouseSettings, warehouse_client, tmp_path
) -> None:
    topic = new_topic(2)
    broker = BrokerSettings(bootstrap=broker_bootstrap, events_topic=topic, dead_letter_topic=topic + ".dl")
    t0 = (int(time.time() * 1000) - 3_600_000) // 10_000 * 10_000
    metrics_port = free_port()
    env = {
        "EVENTPULSE_STREAM_WINDOW_SECONDS": "[10]",
        "EVENTPULSE_STREAM_SLIDING_WINDOWS": "[]",
        "EVENTPULSE_STREAM_MAX_OUT_OF_ORDER_S": "1",
        "EVENTPULSE_STREAM_ALLOWED_LATENESS_S": "30",
        "EVENTPULSE_STREAM_IDLE_PARTITION_TIMEOUT_S": "1",
        "EVENTPULSE_STREAM_PROVISIONAL_INTERVAL_S": "0.3",
        "EVENTPULSE_STREAM_METRICS_INTERVAL_S": "0.5",
        "EVENTPULSE_STREAM_METRICS_PORT": str(metrics_port),
    }
    # Tenant A has events only in window [t0, t0+10s); tenant B moves event time to t0+30s.
    # Partition 1 stays empty: it holds the watermark back only until the idle timeout.
    _send(broker_bootstrap, topic, 0, [("acme", f"a{i}", t0 + i * 1000) for i in range(5)])
    _send(broker_bootstrap, topic, 0, [("bravo", f"b{i}", t0 + 30_000 + i) for i in range(3)])
    proc = start_flow(broker, warehouse, tail=True, extra_env=env, log=tmp_path / "flow.log")
    client = warehouse_client
    window_row = (
        "SELECT event_count, is_final, version FROM window_aggregates FINAL WHERE tenant = 'acme' "
        "AND window_start = fromUnixTimestamp64Milli({t:Int64}) AND type = {all:String} AND source = {all:String}"
    )
    params = {"t": t0, "all": ALL}
    try:
        first = _wait_for(
            lambda: [r for r in client.query(window_row, parameters=params).result_rows if r[1] == 1],
            60,
            "tenant A's window to close on the watermark of the other events",
        )[0]
        assert first[:2] == (5, 1)
        # Tenant B's window [t0+30s, t0+40s) is still open (watermark t0+29s): a provisional row.
        open_row = client.query(
            "SELECT event_count, is_final FROM window_aggregates FINAL WHERE tenant = 'bravo' AND type = {all:String} AND source = {all:String} "
            "AND window_start = fromUnixTimestamp64Milli({t:Int64})",
            parameters={"t": t0 + 30_000, "all": ALL},
        ).result_rows
        assert open_row == [(3, 0)]
        # Late within the allowed lateness (window end t0+10s + 30s > watermark t0+29s): a new final version.
        # Beyond it (window end t0-50s + 30s <= watermark): late_events, never dropped, still in raw events.
        _send(broker_bootstrap, topic, 0, [("acme", "late-ok", t0 + 9_000), ("acme", "too-late", t0 - 60_000)])
        updated = _wait_for(
            lambda: [r for r in client.query(window_row, parameters=params).result_rows if r[0] == 6],
            60,
            "the late event to update the final row",
        )[0]
        assert updated[1] == 1 and updated[2] > first[2]
        late = _wait_for(
            lambda: (
                client.query(
                    "SELECT id, window_seconds, toUnixTimestamp64Milli(window_start), lateness_ms FROM late_events"
                ).result_rows
            ),
            60,
            "the late event row",
        )
        assert late == [("too-late", 10, t0 - 60_000, 29_002 + 50_000)]  # watermark t0+30.002s - 1s bound
        _wait_for(
            lambda: client.query("SELECT count() FROM events FINAL WHERE id = 'too-late'").result_rows[0][0],
            30,
            "the late event in raw events",
        )
        counted = _wait_for(
            lambda: client.query(
                "SELECT max(value) FROM pipeline_metrics WHERE metric = 'late_events_total'"
            ).result_rows[0][0],
            30,
            "late events counted in pipeline metrics",
        )
        assert counted == 1
        names = {m for (m,) in client.query("SELECT DISTINCT metric FROM pipeline_metrics").result_rows}
        expected = {"events_in_per_s", "events_out_per_s", "consumer_lag", "watermark_delay_ms", "batch_size_p99"}
        expected |= {"processing_latency_ms_p50", "freshness_event_ms_p99", "freshness_broker_ms_p95"}
        assert expected <= names
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert 'eventpulse_flow_late_events_total{label=""} 1.0' in text
        assert 'eventpulse_flow_consumer_lag{label="0"}' in text
        too_late_window = client.query(
            "SELECT count() FROM window_aggregates FINAL WHERE window_start = fromUnixTimestamp64Milli({t:Int64})",
            parameters={"t": t0 - 60_000},
        ).result_rows
        assert too_late_window == [(0,)]
    finally:
        stop(proc)


def test_two_workers_give_the_same_results(broker_settings: BrokerSettings, warehouse_url: str, tmp_path) -> None:
    messages = EventFactory(seed=3).messages(60_000, int(time.time() * 1000) - 7_200_000, rate_per_s=10_000)
    produce(broker_settings.bootstrap, broker_settings.events_topic, messages)
    results = []
    for workers in (1, 2):
        settings = WarehouseSettings(url=warehouse_url, database=f"w{workers}_{int(time.time() * 1000)}")
        migrate(settings)
        run_flow_until_drained(
            broker_settings,
            settings,
            workers=workers,
            extra_env={"EVENTPULSE_STREAM_KEY_BUCKETS": "4"},  # the window state spreads over both workers
            timeout=180,
            log=tmp_path / f"w{workers}.log",
        )
        client = create_client(settings, role="admin")
        families = window_specs((10, 60), ((300, 60),))
        assert not reconcile(client, families, *EVERYTHING)
        results.append(([r for w in families for r in stream_rows(client, w, *EVERYTHING)], client))
    (one, c1), (two, c2) = results
    assert len(one) > 1000
    assert not compare_rows(one, two)
    count = "SELECT count(), uniqExact(id), round(sum(latency_ms), 3) FROM events FINAL"
    assert c1.query(count).result_rows == c2.query(count).result_rows


def test_an_open_window_closes_after_a_restart_without_new_events_of_its_own(
    broker_bootstrap: str, new_topic, warehouse: WarehouseSettings, warehouse_client, tmp_path
) -> None:
    """Tenant A's window is open when the flow is killed; after the restart only tenant B sends
    events, and A's window still closes with its count, from the window state in the snapshot."""
    topic = new_topic(1)
    broker = BrokerSettings(bootstrap=broker_bootstrap, events_topic=topic, dead_letter_topic=topic + ".dl")
    t0 = (int(time.time() * 1000) - 3_600_000) // 10_000 * 10_000
    env = {
        "EVENTPULSE_STREAM_WINDOW_SECONDS": "[10]",
        "EVENTPULSE_STREAM_SLIDING_WINDOWS": "[]",
        "EVENTPULSE_STREAM_MAX_OUT_OF_ORDER_S": "1",
        "EVENTPULSE_STREAM_IDLE_PARTITION_TIMEOUT_S": "60",
        "EVENTPULSE_STREAM_PROVISIONAL_INTERVAL_S": "0.3",
    }
    recovery = tmp_path / "recovery"
    init_recovery(recovery)
    a_window = (
        "SELECT event_count, is_final FROM window_aggregates FINAL WHERE tenant = 'acme' "
        "AND window_start = fromUnixTimestamp64Milli({t:Int64}) AND type = {all:String} AND source = {all:String}"
    )
    params = {"t": t0, "all": ALL}
    _send(broker_bootstrap, topic, 0, [("acme", f"a{i}", t0 + i * 1000) for i in range(5)])
    proc = start_flow(broker, warehouse, tail=True, recovery_dir=recovery, extra_env=env, log=tmp_path / "1.log")
    try:
        _wait_for(
            lambda: warehouse_client.query(a_window, parameters=params).result_rows == [(5, 0)],
            60,
            "tenant A's provisional row",
        )
        committed = committed_epoch(recovery)
        _wait_for(lambda: committed_epoch(recovery) > committed + 1, 30, "a snapshot after the provisional row")
    finally:
        proc.kill()
        proc.wait()
    assert warehouse_client.query(a_window, parameters=params).result_rows == [(5, 0)]

    _send(broker_bootstrap, topic, 0, [("bravo", "b0", t0 + 30_000)])
    proc = start_flow(broker, warehouse, tail=True, recovery_dir=recovery, extra_env=env, log=tmp_path / "2.log")
    try:
        _wait_for(
            lambda: warehouse_client.query(a_window, parameters=params).result_rows == [(5, 1)],
            60,
            "tenant A's window to close after the restart",
        )
        # raw events are gathered for up to RAW_INSERT_MAX_DELAY_S (0.25 s) before they are inserted
        _wait_for(
            lambda: warehouse_client.query("SELECT count() FROM events FINAL").result_rows == [(6,)],
            10,
            "every raw event",
        )
    finally:
        stop(proc)
    assert warehouse_client.query("SELECT count() FROM events FINAL").result_rows == [(6,)]
