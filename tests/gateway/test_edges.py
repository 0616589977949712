"""Gateway edges (issue 12, item 7) against a real gateway, broker and warehouse: an oversized single
event is recorded like a batch member, control characters are refused on every route, and a too
deep event refuses only its own index."""

import time

import orjson
import pytest

from eventpulse.warehouse.client import create_client
from tests.gateway.conftest import event, read_topic, wait_for_key

pytestmark = pytest.mark.integration

NDJSON = {"Content-Type": "application/x-ndjson"}


def dead_letters(warehouse, expect: int, timeout: float = 15.0) -> list[tuple]:
    """(reason, field, detail, payload) of the gateway's dead letters, once ``expect`` are written."""
    client = create_client(warehouse, role="admin")
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = client.query(
                "SELECT reason, field, detail, payload FROM dead_letters FINAL WHERE stage = 'gateway' ORDER BY id"
            ).result_rows
            if len(rows) >= expect or time.monotonic() > deadline:
                return [tuple(r) for r in rows]
            time.sleep(0.2)
    finally:
        client.close()


def test_an_oversized_single_event_is_counted_and_dead_lettered_like_a_batch_member(gateway, make_key, warehouse):
    key = make_key("acme")
    wait_for_key(gateway, key)
    big = event("big-1", data={"user_id": "u1", "pad": "x" * 70_000})
    body = orjson.dumps(big)

    def chunked():  # no Content-Length: the limit is found while reading
        for at in range(0, len(body), 16_384):
            yield body[at : at + 16_384]

    with gateway.client(key) as http:
        declared = http.post("/api/events", content=body, headers={"Content-Type": "application/json"})
        streamed = http.post("/api/events", content=chunked(), headers={"Content-Type": "application/json"})
        in_batch = http.post("/api/events/batch", json=[event("ok-1"), big])
        metrics = http.get("/api/metrics").json()
    assert declared.status_code == 413 and declared.json()["error"] == "payload_too_large"
    assert streamed.status_code == 413
    assert in_batch.status_code == 207 and in_batch.json()["errors"][0]["reason"] == "payload_too_large"
    assert metrics["events_rejected"] == {"payload_too_large": 3}
    rows = dead_letters(warehouse, 3)
    assert sorted(r[0] for r in rows) == ["payload_too_large"] * 3
    details = sorted(r[2] for r in rows)
    assert f"event is {len(body)} bytes, the limit is 65536" in details  # the declared single one
    assert "event is more than 65536 bytes, the limit is 65536" in details  # the chunked one
    for _reason, _field, _detail, payload in rows:  # what was sent, up to the dead-letter limit
        assert payload.startswith('{"timestamp":') and len(payload) >= 65_536 - 100
    ids = [v["id"] for _, v in read_topic(gateway.settings.broker.bootstrap, gateway.settings.broker.events_topic, 1)]
    assert ids == ["ok-1"]


CONTROL_CASES = [
    ("type", "user\x00action"),
    ("source", "web\napp"),
    ("id", "e-\x1b[31m"),
    ("data.user_id", "u\x7f1"),
    ("type", "a\x9bb"),
]


def with_field(name: str, value: str, event_id: str) -> dict:
    doc = event(event_id)
    if name == "data.user_id":
        doc["data"] = {"user_id": value}
    else:
        doc[name] = value
    return doc


def test_control_characters_are_refused_on_every_route(start_gateway, make_key, warehouse):
    with start_gateway() as gw:
        key = make_key("acme")
        wait_for_key(gw, key)
        bad = [with_field(name, value, f"bad-{i}") for i, (name, value) in enumerate(CONTROL_CASES)]
        fields = [name for name, _ in CONTROL_CASES]
        with gw.client(key) as http:
            singles = [http.post("/api/events", json=doc) for doc in bad]
            array = http.post("/api/events/batch", json=[event("ok-a"), *bad])
            lines = b"\n".join(orjson.dumps(doc) for doc in [*bad, event("ok-n")])
            ndjson = http.post("/api/events/batch", content=lines, headers=NDJSON)
            metrics = http.get("/api/metrics").json()
        for response, field in zip(singles, fields, strict=True):
            assert response.status_code == 422, response.text
            [error] = response.json()["errors"]
            assert (error["reason"], error["field"]) == ("invalid_value", field)
            assert "control characters" in error["detail"]
        assert array.status_code == 207
        assert [(e["index"], e["field"]) for e in array.json()["errors"]] == list(enumerate(fields, 1))
        assert ndjson.status_code == 207
        assert [(e["index"], e["field"]) for e in ndjson.json()["errors"]] == list(enumerate(fields))
        assert metrics["events_rejected"] == {"invalid_value": 3 * len(bad)}
        messages = read_topic(gw.settings.broker.bootstrap, gw.settings.broker.events_topic, expect=2)
        assert sorted(v["id"] for _, v in messages) == ["ok-a", "ok-n"]
    rows = dead_letters(warehouse, 3 * len(bad))
    assert len(rows) == 3 * len(bad)
    assert {r[0] for r in rows} == {"invalid_value"} and sorted({r[1] for r in rows}) == sorted(set(fields))
    assert any("\\u0000" in r[3] for r in rows)  # the payload as sent (JSON-escaped)


def test_a_control_character_in_the_tenant_of_a_key_is_refused(start_gateway, make_key):
    """The tenant comes from the key: one named with a control character cannot write events."""
    with start_gateway() as gw:
        key = make_key("ac\x00me")
        wait_for_key(gw, key)
        with gw.client(key) as http:
            response = http.post("/api/events", json=event("t-1"))
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "tenant"


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def test_a_too_deep_event_refuses_only_its_index(gateway, make_key, warehouse):
    key = make_key("acme")
    wait_for_key(gateway, key)
    good = [orjson.dumps(event(f"ok-{i}")) for i in range(3)]
    beyond_reading = good[0][:-1] + b',"d":' + deep(1100) + b"}"  # orjson reads 1,024 levels at most
    beyond_limit = orjson.dumps(event("deep-data", data={"user_id": "u1", "d": orjson.loads(deep(40))}))
    members = [good[0], beyond_reading, good[1], beyond_limit, good[2]]
    with gateway.client(key) as http:
        array = http.post(
            "/api/events/batch", content=b"[" + b",".join(members) + b"]", headers={"Content-Type": "application/json"}
        )
        ndjson = http.post("/api/events/batch", content=b"\n".join(members), headers=NDJSON)
        single = http.post("/api/events", content=beyond_reading, headers={"Content-Type": "application/json"})
        broken = http.post(
            "/api/events/batch", content=b"[" + beyond_reading + b",{", headers={"Content-Type": "application/json"}
        )
    for response in array, ndjson:
        assert response.status_code == 207, response.text
        body = response.json()
        assert (body["accepted"], body["rejected"]) == (3, 2)
        assert [(e["index"], e["reason"]) for e in body["errors"]] == [(1, "field_too_large"), (3, "field_too_large")]
        assert body["ids"] == ["ok-0", None, "ok-1", None, "ok-2"]
    assert single.status_code == 422 and single.json()["errors"][0]["reason"] == "field_too_large"
    assert broken.status_code == 400  # not an array at all: the body is refused as before
    rows = dead_letters(warehouse, 6)
    assert sorted(r[0] for r in rows) == ["field_too_large"] * 5 + ["malformed_json"]
    assert any(r[3].startswith('{"timestamp"') and "[[[[" in r[3] for r in rows)  # the element itself
    assert ndjson.json()["duplicates"] == 3  # the same good events again: answered, not produced twice
    messages = read_topic(gateway.settings.broker.bootstrap, gateway.settings.broker.events_topic, expect=3)
    assert sorted(v["id"] for _, v in messages) == ["ok-0", "ok-1", "ok-2"]
