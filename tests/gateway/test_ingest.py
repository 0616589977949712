"""Events in through the HTTP API, out on the topic exactly once; invalid ones refused and dead-lettered."""

import time

import orjson

from eventpulse.warehouse.client import create_client
from tests.gateway.conftest import event, now_ms, read_topic, wait_for_key


def test_single_event_is_on_the_topic_once_with_tenant_from_the_key(gateway, make_key):
    key = make_key("acme")
    wait_for_key(gateway, key)
    with gateway.client(key) as http:
        # The body claims another tenant: the key decides.
        response = http.post("/api/events", json=event("e-1", tenant="other", data={"user_id": "u7", "x": 1}))
    assert response.status_code == 202, response.text
    assert response.json() == {"id": "e-1", "duplicate": False}
    assert response.headers["x-request-id"]
    messages = read_topic(gateway.settings.broker.bootstrap, gateway.settings.broker.events_topic, expect=1)
    assert len(messages) == 1
    key_bytes, value = messages[0]
    assert key_bytes == b"acme:u7"
    assert value["id"] == "e-1" and value["tenant"] == "acme" and value["data"]["x"] == 1
    assert value["received_at"] >= value["timestamp"] - 1000


def test_batches_json_and_ndjson_with_retries_are_exactly_once(gateway, make_key):
    key = make_key("acme")
    wait_for_key(gateway, key)
    first = [event(f"b-{i}", data={"user_id": f"u{i % 7}"}) for i in range(500)]
    second = [event(f"n-{i}") for i in range(300)]
    ndjson = b"\n".join(orjson.dumps(e) for e in second)
    with gateway.client(key) as http:
        r1 = http.post("/api/events/batch", json=first)
        r2 = http.post("/api/events/batch", content=ndjson, headers={"Content-Type": "application/x-ndjson"})
        # Client retries (e.g. after a timeout it could not interpret) resend the same events.
        r3 = http.post("/api/events/batch", json=first)
        r4 = http.post("/api/events/batch", content=ndjson, headers={"Content-Type": "application/x-ndjson"})
    assert [r.status_code for r in (r1, r2, r3, r4)] == [202, 202, 202, 202]
    assert r1.json()["ids"] == [e["id"] for e in first]
    assert r1.json()["accepted"] == 500 and r1.json()["duplicates"] == 0
    assert r3.json()["accepted"] == 500 and r3.json()["duplicates"] == 500
    messages = read_topic(gateway.settings.broker.bootstrap, gateway.settings.broker.events_topic, expect=800)
    ids = sorted(v["id"] for _, v in messages)
    assert ids == sorted(e["id"] for e in first + second)  # all there, none twice
    metrics = gateway.client().get("/api/metrics").json()
    assert metrics["events_accepted"] == 800 and metrics["events_duplicate"] == 800


def test_retries_are_deduplicated_downstream_without_the_cache(start_gateway, make_key, warehouse):
    """With the recent-id cache off a retry produces again; the warehouse keeps one row per id."""
    with start_gateway(recent_ids_ttl_s=0) as gw:
        key = make_key("acme")
        wait_for_key(gw, key)
        events = [event(f"r-{i}", data={"user_id": f"u{i}"}) for i in range(50)]
        with gw.client(key) as http:
            for _ in range(3):
                assert http.post("/api/events/batch", json=events).status_code == 202
        broker = gw.settings.broker
    from confluent_kafka import Consumer, TopicPartition

    from eventpulse.broker.admin import consumer_config
    from eventpulse.events import EventValidator, ValidEvent
    from eventpulse.settings import Settings

    # Load the topic into the raw table the way the dataflow does (event.raw_row), then count.
    consumer = Consumer(consumer_config(broker, group_id="dedup-test"))
    parts = consumer.list_topics(timeout=10).topics[broker.events_topic].partitions
    consumer.assign([TopicPartition(broker.events_topic, p, 0) for p in parts])
    validator = EventValidator(Settings().events)
    rows, deadline = [], time.monotonic() + 20
    while len(rows) < 150 and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.5):
            parsed = validator.parse_wire(msg.value())
            assert isinstance(parsed, ValidEvent)
            rows.append(parsed.raw_row(msg.partition(), msg.offset()))
    consumer.close()
    assert len(rows) == 150  # produced three times...
    client = create_client(warehouse, role="admin")
    from eventpulse.events import RAW_EVENT_COLUMNS

    data = [list(r) for r in rows]
    for r in data:  # DateTime64 columns take datetimes
        from datetime import UTC, datetime

        r[2] = datetime.fromtimestamp(r[2] / 1000, UTC)
        r[11] = datetime.fromtimestamp(r[11] / 1000, UTC)
    client.insert("events", data, column_names=list(RAW_EVENT_COLUMNS))
    per_id = client.query("SELECT id, count() FROM events FINAL WHERE tenant = 'acme' GROUP BY id").result_rows
    client.close()
    assert len(per_id) == 50 and all(count == 1 for _, count in per_id)  # ...stored once


def test_partly_invalid_batch_answers_207_and_dead_letters_the_rest(gateway, make_key, warehouse):
    key = make_key("acme")
    wait_for_key(gateway, key)
    batch = [
        event("ok-1"),
        {"timestamp": now_ms(), "source": "web"},  # no type
        event("ok-2"),
        event("bad-ts", timestamp="yesterday"),
        event("future", timestamp=now_ms() + 3_600_000),
        "not an object",
    ]
    with gateway.client(key) as http:
        response = http.post("/api/events/batch", json=batch)
        ndjson = http.post(
            "/api/events/batch",
            content=orjson.dumps(event("ok-3")) + b"\n{broken json\n",
            headers={"Content-Type": "application/x-ndjson"},
        )
        none_valid = http.post("/api/events/batch", json=[{"type": "x"}])
    assert response.status_code == 207, response.text
    body = response.json()
    assert body["accepted"] == 2 and body["rejected"] == 4
    assert body["ids"] == ["ok-1", None, "ok-2", None, None, None]
    errors = {e["index"]: (e["reason"], e["field"]) for e in body["errors"]}
    assert errors == {
        1: ("missing_field", "type"),
        3: ("invalid_value", "timestamp"),
        4: ("timestamp_in_future", "timestamp"),
        5: ("not_an_object", None),
    }
    assert ndjson.status_code == 207 and ndjson.json()["errors"][0]["reason"] == "malformed_json"
    assert none_valid.status_code == 422 and none_valid.json()["accepted"] == 0
    messages = read_topic(gateway.settings.broker.bootstrap, gateway.settings.broker.events_topic, expect=3)
    assert sorted(v["id"] for _, v in messages) == ["ok-1", "ok-2", "ok-3"]
    # Rejected events reach the dead-letter table in the background.
    client = create_client(warehouse, role="admin")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = client.query("SELECT tenant, stage, reason, field, payload FROM dead_letters FINAL").result_rows
        if len(rows) >= 6:
            break
        time.sleep(0.2)
    client.close()
    assert len(rows) == 6
    assert {r[0] for r in rows} == {"acme"} and {r[1] for r in rows} == {"gateway"}
    assert sorted(r[2] for r in rows) == [
        "invalid_value",
        "malformed_json",
        "missing_field",
        "missing_field",
        "not_an_object",
        "timestamp_in_future",
    ]
    assert any("{broken json" in r[4] for r in rows)


def test_bad_requests_get_clear_answers_and_never_reach_the_topic(start_gateway, make_key):
    with start_gateway(max_batch_events=5, max_batch_bytes=4096) as gw:
        key = make_key("acme")
        wait_for_key(gw, key)
        with gw.client(key) as http:
            cases = {
                "malformed": http.post(
                    "/api/events", content=b'{"type": ', headers={"Content-Type": "application/json"}
                ),
                "invalid": http.post("/api/events", json=event("x", type="")),
                "wrong_type": http.post("/api/events", content=b"a=b", headers={"Content-Type": "text/plain"}),
                "too_many": http.post("/api/events/batch", json=[event(f"m{i}") for i in range(6)]),
                "too_big": http.post("/api/events/batch", json=[event("big", data={"pad": "x" * 5000})]),
                "event_too_big": http.post("/api/events", json=event("big2", data={"pad": "x" * 70_000})),
                "not_array": http.post("/api/events/batch", json={"type": "x"}),
                # orjson reads 1,024 levels of nesting but writes only 255: refused, not a 500.
                "too_deep": http.post(
                    "/api/events", content=orjson.dumps(event("deep"))[:-1] + b',"d":' + b"[" * 300 + b"]" * 300 + b"}"
                ),
                "get": http.get("/api/events"),
            }
        statuses = {name: r.status_code for name, r in cases.items()}
        assert statuses == {
            "malformed": 400,
            "invalid": 422,
            "wrong_type": 415,
            "too_many": 413,
            "too_big": 413,
            "event_too_big": 413,
            "not_array": 400,
            "too_deep": 422,
            "get": 405,
        }
        assert cases["too_deep"].json()["errors"][0]["reason"] == "invalid_value"
        assert cases["invalid"].json()["errors"] == [
            {"reason": "invalid_value", "field": "type", "detail": "type must not be empty", "index": None}
        ]
        assert cases["malformed"].json()["error"] == "malformed_json"
        # The server is fine afterwards, and nothing reached the topic.
        assert gw.client().get("/api/health").status_code == 200
        assert read_topic(gw.settings.broker.bootstrap, gw.settings.broker.events_topic, idle_s=1.0) == []
