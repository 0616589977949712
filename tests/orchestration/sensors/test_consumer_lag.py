"""The consumer-lag sensor against a real broker and the real warehouse."""

import dagster as dg

from eventpulse.broker.admin import admin_client, log_end_offsets, topic_id
from eventpulse.incidents import Incarnation, Incident, insert_incarnations, insert_incidents
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

    # The flow catches up: the warehouse holds every offset the broker has (exact ends: Tansu's ListOffsets trails).
    offsets = log_end_offsets(broker_settings, broker_settings.events_topic)
    rows = []
    for partition, (_, high) in offsets.items():
        if high:
            row = list(raw_rows(1, 1_790_000_000_000, seed=partition, offset=high - 1)[0])
            row[12] = partition
            rows.append(tuple(row))
    insert_raw(warehouse_client, rows)
    caught_up = consumer_lag_sensor(dg.build_sensor_context(resources=context_resources))
    assert caught_up.skip_message.startswith("consumer lag 0 ")


def test_positions_past_the_log_end_are_incidents_not_zero_lag(
    broker_settings, resources, warehouse_client, monkeypatch
):
    """The warehouse holds offsets beyond the log end (a broker restarted with memory storage)."""
    topic = broker_settings.events_topic
    produce(broker_settings.bootstrap, topic, ((b"k%d" % i, b"{}") for i in range(40)))
    offsets = log_end_offsets(broker_settings, topic)
    rows = []
    for partition, (_, high) in offsets.items():
        row = list(raw_rows(1, 1_790_000_000_000, seed=partition, offset=high + 1000)[0])
        row[12] = partition
        rows.append(tuple(row))
    insert_raw(warehouse_client, rows)
    broker = BrokerResource(bootstrap=broker_settings.bootstrap, events_topic=topic)
    context_resources = {**resources, "broker": broker}

    result = consumer_lag_sensor(dg.build_sensor_context(resources=context_resources))
    assert result.skip_message.startswith("consumer lag 0 ") and "invalid positions" in result.skip_message
    kinds = warehouse_client.query(
        "SELECT partition, kind, expected_offset, log_end FROM pipeline_incidents FINAL ORDER BY partition"
    ).result_rows
    assert kinds == [(p, "position_past_end", high + 1001, high) for p, (_, high) in sorted(offsets.items())]
    alerts = warehouse_client.query(
        "SELECT count() FROM alerts FINAL WHERE rule = 'pipeline_incident' AND type = 'position_past_end'"
    ).result_rows[0][0]
    assert alerts == len(offsets)
    # The same invalid positions a minute later: still reported, not recorded or alerted twice.
    again = consumer_lag_sensor(dg.build_sensor_context(resources=context_resources))
    assert "invalid positions" in again.skip_message
    assert warehouse_client.query("SELECT count() FROM pipeline_incidents").result_rows[0][0] == len(offsets)
    assert warehouse_client.query("SELECT count() FROM alerts FINAL").result_rows[0][0] == len(offsets)


def test_a_topic_recreated_under_the_flow_and_flow_incidents_alert(broker_settings, resources, warehouse_client):
    topic = broker_settings.events_topic
    current = topic_id(admin_client(broker_settings), topic)
    assert current
    insert_incarnations(warehouse_client, [Incarnation(topic, 0, "old-id", "old-id", 0, "start")])
    flow_incident = Incident("flow", "topic_recreated", topic, 1, 500, 0, 3, "reset to earliest (offset 0)", "test")
    insert_incidents(warehouse_client, [flow_incident])
    broker = BrokerResource(bootstrap=broker_settings.bootstrap, events_topic=topic)

    result = consumer_lag_sensor(dg.build_sensor_context(resources={**resources, "broker": broker}))
    assert "0: stale_incarnation" in result.skip_message
    alerts = warehouse_client.query(
        "SELECT type, message FROM alerts FINAL WHERE rule = 'pipeline_incident' ORDER BY type"
    ).result_rows
    assert [a[0] for a in alerts] == ["stale_incarnation", "topic_recreated"]
    assert "reset to earliest" in alerts[1][1]
