"""Issue 2 acceptance: 100,000 events (1 % invalid) through the real broker, dataflow and warehouse."""

import time
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from devstack.traffic.generator import EventFactory
from eventpulse.aggregation.reconcile import reconcile
from eventpulse.aggregation.spec import ALL, window_specs
from eventpulse.config.broker import BrokerSettings
from tests.support.pipeline import produce, run_flow_until_drained

pytestmark = pytest.mark.integration

N = 100_000


def _bad_messages(now_ms: int) -> list[tuple[bytes, bytes, str]]:
    """Hand-made bad input, each with the reason it must get."""
    good = {
        "id": "hand-1",
        "timestamp": now_ms,
        "type": "page_view",
        "source": "web_app",
        "data": {"user_id": "u1"},
        "tenant": "tenant-hand",
        "received_at": now_ms,
    }
    cases = [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00garbage", "malformed_json"),
        (b"[1, 2, 3]", "not_an_object"),
        (orjson.dumps({k: v for k, v in good.items() if k != "source"}), "missing_field"),
        (orjson.dumps({**good, "timestamp": "yesterday"}), "invalid_value"),
        (orjson.dumps({**good, "timestamp": {"ms": now_ms}}), "wrong_type"),
        (orjson.dumps({**good, "data": {"user_id": "u1", "blob": "z" * 80_000}}), "payload_too_large"),
        (orjson.dumps({**good, "timestamp": now_ms + 10 * 86_400_000}), "timestamp_in_future"),
        (orjson.dumps({**good, "tenant": "tenant-other"}), "tenant_mismatch"),  # the key's tenant decides
        (orjson.dumps({**good, "data": {"user_id": "u1", "latency_ms": -3}}), "invalid_value"),
    ]
    unnamed = orjson.dumps({k: v for k, v in good.items() if k != "tenant"})  # a key without `tenant:`, no body tenant
    return [(b"tenant-hand:u1", value, reason) for value, reason in cases] + [(b"u1", unnamed, "missing_tenant")]


def _read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-dead", "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(values) < expected and time.monotonic() < deadline:
        values += [m.value() for m in consumer.consume(1000, 0.5) if m.error() is None]
    consumer.close()
    return values


def test_events_flow_end_to_end(broker_settings: BrokerSettings, warehouse, warehouse_client, tmp_path) -> None:
    start_ms = int(time.time() * 1000) - 3_600_000
    messages = list(EventFactory(seed=7).messages(N, start_ms, rate_per_s=20_000))
    bad = _bad_messages(int(time.time() * 1000))
    produce(broker_settings.bootstrap, broker_settings.events_topic, messages)
    produce(broker_settings.bootstrap, broker_settings.events_topic, [(k, v) for k, v, _ in bad])

    run_flow_until_drained(
        broker_settings,
        warehouse,
        extra_env={"EVENTPULSE_STREAM_DEAD_LETTERS_TO_TOPIC": "true"},
        timeout=240,
        log=tmp_path / "flow.log",
    )

    valid = [m.event for m in messages if m.valid]
    invalid = [m for m in messages if not m.valid]
    assert 0.005 * N < len(invalid) < 0.02 * N
    client = warehouse_client

    raw = client.query("SELECT count(), uniqExact(id) FROM events FINAL").result_rows[0]
    assert raw == (len(valid), len(valid))

    # Dead letters: every invalid message once, with the expected reason, stage and id.
    expected = Counter(m.reason.value for m in invalid) + Counter(reason for _, _, reason in bad)
    got = dict(client.query("SELECT reason, count() FROM dead_letters FINAL GROUP BY reason").result_rows)
    assert got == dict(expected)
    ids = client.query("SELECT id, stage, topic, topic_partition, topic_offset FROM dead_letters FINAL").result_rows
    assert {stage for _, stage, *_ in ids} == {"flow"}
    # ids name the message in its topic incarnation: topic@incarnation:partition:offset
    assert all(t == broker_settings.events_topic for _, _, t, _, _ in ids)
    assert all(i.startswith(f"{t}@") and i.endswith(f":{p}:{o}") for i, _, t, p, o in ids)
    assert len({i.split(":", 1)[0] for i, *_ in ids}) == 1  # one topic, one incarnation
    # Window counts per (tenant, type, minute), computed here from what was sent: the (tenant, type) rows.
    by_type = Counter((e["tenant"], e["type"], e["timestamp"] // 60_000 * 60_000) for e in valid)
    by_tenant = Counter((e["tenant"], e["timestamp"] // 60_000 * 60_000) for e in valid)
    rows = client.query(
        "SELECT tenant, type, toUnixTimestamp64Milli(window_start), sum(event_count), min(is_final) "
        "FROM window_aggregates FINAL WHERE window_seconds = 60 AND slide_seconds = 60 AND type != {all:String} "
        "AND source = {all:String} GROUP BY tenant, type, window_start",
        parameters={"all": ALL},
    ).result_rows
    assert {(t, ty, w): n for t, ty, w, n, _ in rows} == dict(by_type)
    assert all(final == 1 for *_, final in rows)
    tenant_rows = client.query(
        "SELECT tenant, toUnixTimestamp64Milli(window_start), event_count FROM window_aggregates FINAL "
        "WHERE window_seconds = 60 AND slide_seconds = 60 AND type = {all:String} AND source = {all:String}",
        parameters={"all": ALL},
    ).result_rows
    assert {(t, w): n for t, w, n in tenant_rows} == dict(by_tenant)

    # Every metric of every window family agrees with the batch recomputation from raw events.
    families = window_specs((10, 60), ((300, 60),))
    differences = reconcile(client, families, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    assert not differences, [d.as_dict() for d in differences[:10]]

    # The dead-letter topic got the same dead letters.
    on_topic = _read_topic(broker_settings.bootstrap, broker_settings.dead_letter_topic, len(ids))
    assert sorted(orjson.loads(v)["id"] for v in on_topic) == sorted(i for i, *_ in ids)

    late = client.query("SELECT count() FROM late_events").result_rows[0][0]
    assert late == 0  # disorder (2 s) is within the 5 s bound
