"""Messages written straight to the topic by producers other than the gateway, through the real broker,
dataflow and warehouse: the seed format in any shape, timestamps as people send them, the tenant rule for
events and dead letters alike (issue 15 item 1, issue 16 item 3)."""

import json
import time

import orjson
import pytest

from eventpulse.config.broker import BrokerSettings
from tests.support.pipeline import produce, run_flow_until_drained

pytestmark = pytest.mark.integration


def test_other_producers_messages_through_the_flow(
    broker_settings: BrokerSettings, warehouse, warehouse_client
) -> None:
    now = int(time.time() * 1000)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 1000 - 60)) + ".250Z"
    iso_ms = (now // 1000 - 60) * 1000 + 250

    def seed(event_id: str, **fields: object) -> dict[str, object]:
        doc = {"id": event_id, "timestamp": now - 5000, "type": "page_view", "source": "web", "data": {"user_id": "u1"}}
        return {**doc, **fields}

    valid = [
        (b"acme:u1", orjson.dumps(seed("plain"))),  # the key alone names the tenant; no received_at
        (b"acme:u1", json.dumps(dict(reversed(seed("spaced", tenant="acme").items()))).encode()),
        (None, orjson.dumps(seed("keyless", tenant="acme"))),  # no key: the body's tenant
        (b"acme:u1", orjson.dumps(seed("extra", app="2.1", ctx={"ip": "10.0.0.1"}))),
        (b"acme:u1", orjson.dumps(seed("utf8", data={"user_id": "ü", "city": "Zürich 日本"}))),
        (b"acme:u1", orjson.dumps(seed("iso", timestamp=iso))),
    ]
    invalid = [
        (b"acme:u1", orjson.dumps(seed("mismatch", tenant="globex")), "tenant_mismatch", "acme"),
        (b"u1", orjson.dumps(seed("nobody")), "missing_tenant", ""),
        (None, orjson.dumps(seed("keyless-bad", tenant="globex", type="")), "invalid_value", "globex"),
        (b"acme:u1", orjson.dumps(seed("seconds", timestamp=now // 1000)), "timestamp_too_old", "acme"),
        (b"acme:u1", orjson.dumps(seed("nanos", timestamp=now * 1_000_000)), "timestamp_in_future", "acme"),
        (b"acme:u1", orjson.dumps(seed("no-ts", timestamp=None)), "missing_field", "acme"),
    ]
    before = int(time.time() * 1000)
    produce(broker_settings.bootstrap, broker_settings.events_topic, [*valid, *((k, v) for k, v, *_ in invalid)])
    after = int(time.time() * 1000)
    run_flow_until_drained(broker_settings, warehouse, timeout=240)

    rows = warehouse_client.query(
        "SELECT id, tenant, toUnixTimestamp64Milli(timestamp), toUnixTimestamp64Milli(received_at), extra, data, "
        "user_id, schema_version FROM events FINAL ORDER BY id"
    ).result_rows
    got = {r[0]: r[1:] for r in rows}
    assert sorted(got) == sorted(orjson.loads(v)["id"] for _, v in valid)
    assert {tenant for tenant, *_ in got.values()} == {"acme"}
    assert all(before - 1000 <= received <= after + 1000 for _, _, received, *_ in got.values())  # broker time
    assert got["iso"][1] == iso_ms and got["plain"][1] == now - 5000
    assert orjson.loads(got["extra"][3]) == {"app": "2.1", "ctx": {"ip": "10.0.0.1"}}
    assert orjson.loads(got["utf8"][4])["city"] == "Zürich 日本" and got["utf8"][5] == "ü"
    assert {version for *_, version in got.values()} == {1}

    dead = warehouse_client.query("SELECT payload, reason, tenant, detail FROM dead_letters FINAL").result_rows
    by_id = {orjson.loads(payload)["id"]: (reason, tenant, detail) for payload, reason, tenant, detail in dead}
    assert {i: (r, t) for i, (r, t, _) in by_id.items()} == {
        orjson.loads(v)["id"]: (reason, tenant) for _, v, reason, tenant in invalid
    }
    assert "looks like epoch seconds" in by_id["seconds"][2]
    assert "looks like epoch nanoseconds" in by_id["nanos"][2]
