"""The consumer-lag sensor against a real broker and the real warehouse."""

import dagster as dg

from eventpulse.broker.admin import partition_offsets
from orchestration.resources import BrokerResource
from orchestration.sensors.consumer_lag import consumer_lag_sensor
from tests.orchestration.rawdata import insert_raw, raw_rows
from tests.support.pipeline import produce


def test_lag_alerts_when_the_flow_falls_behind(broker_settings, resources, warehouse_client, monkeypatch):
    monkeypatch.setenv("EVENTPULSE_ORCHESTRATION_MAX_CONSUMER_LAG", "5")
    # Three separate flushes: Tansu reports a partition's end as the last *batch*'s base offset + 1.
    for chunk in range(3):
        messages = ((b"k%d" % i, b"{}") for i in range(chunk * 20, chunk * 20 + 20))
        produce(broker_settings.bootstrap, broker_settings.events_topic, messages)
    broker = BrokerResource(bootstrap=broker_settings.bootstrap, events_topic=broker_settings.events_topic)
    context_resources = {**resources, "broker": broker}

    behind = consumer_lag_sensor(dg.build_sensor_context(resources=context_resources))
    assert "> 5" in behind.skip_message
    (rule, value, delivered) = warehouse_client.query("SELECT rule, value, delivered FROM alerts FINAL").result_rows[0]
    assert rule == "consumer_lag" and value > 5 and delivered == 0  # no webhook configured

    # The flow catches up: the warehouse holds every offset the broker has.
    offsets = partition_offsets(broker.admin(), broker_settings.events_topic)
    rows = []
    for partition, (_, high) in offsets.items():
        if high:
            row = list(raw_rows(1, 1_790_000_000_000, seed=partition, offset=high - 1)[0])
            row[12] = partition
            rows.append(tuple(row))
    insert_raw(warehouse_client, rows)
    caught_up = consumer_lag_sensor(dg.build_sensor_context(resources=context_resources))
    assert caught_up.skip_message.startswith("consumer lag 0 ")
