"""The schema registry through a real gateway, broker, dataflow and warehouse (issue 17, item 6).

One event type evolves while an old and a new producer keep sending: v1, then a field added with a
default (v2), a field removed (v3), a type widened (v4); an incompatible registration (a type
narrowed, a required field added) is refused with its reason and changes nothing. Every accepted event
lands in ``events`` exactly once with the version its ``data`` was checked against; every refused one
(at the gateway, and one produced straight to the topic past the gateway, refused by the dataflow) is
in ``dead_letters`` as ``schema_violation`` with the JSON pointer of the offending value.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from eventpulse.config.schemas import SchemaRegistrySettings
from eventpulse.warehouse.client import create_client
from tests.gateway.conftest import RunningGateway, event, gateway_settings, serve, wait_for_key
from tests.support.pipeline import produce, start_flow
from tests.support.services import stop

pytestmark = pytest.mark.integration

REFRESH_S = 0.2
V1 = {
    "type": "object",
    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}, "price": {"type": "number"}},
    "required": ["sku", "qty"],
}
V2 = {**V1, "properties": {**V1["properties"], "currency": {"type": "string", "default": "EUR"}}}  # added, default
V3 = {**V2, "properties": {k: v for k, v in V2["properties"].items() if k != "price"}}  # removed (open model)
V4 = {**V3, "properties": {**V3["properties"], "qty": {"type": "number", "minimum": 1}}}  # integer widened to number


def old_producer(n: int) -> dict[str, Any]:
    """Written for v1: price, integer qty, no currency."""
    return event(
        f"old-{n}-{uuid.uuid4().hex[:8]}", type="purchase", data={"user_id": "u1", "sku": "A", "qty": 2, "price": 9.5}
    )


def new_producer(n: int) -> dict[str, Any]:
    """Written for v4: a fractional qty (kilograms), a currency, no price."""
    return event(
        f"new-{n}-{uuid.uuid4().hex[:8]}",
        type="purchase",
        data={"user_id": "u2", "sku": "B", "qty": 1.25, "currency": "USD"},
    )


@pytest.fixture
def registry_gateway(broker_settings, warehouse) -> Iterator[RunningGateway]:
    settings = gateway_settings(broker_settings, warehouse, dead_letter_flush_s=0.2)
    settings = settings.model_copy(update={"schemas": SchemaRegistrySettings(refresh_s=REFRESH_S)})
    with serve(settings) as gw:
        yield gw


def _register(http, schema: dict[str, Any]):
    return http.post("/api/schemas/register", json={"type": "purchase", "schema": schema})


def _wait_version(gw: RunningGateway, version: int) -> None:
    deadline = time.monotonic() + 10
    while gw.services.schemas.registry.snapshot.version_of("acme", "purchase") != version:
        assert time.monotonic() < deadline, f"the gateway never read version {version}"
        time.sleep(0.05)
    time.sleep(3 * REFRESH_S)  # the dataflow's registry too


def _send(http, events: list[dict[str, Any]]) -> dict[str, Any]:
    answer = http.post("/api/events/batch", json=events)
    assert answer.status_code in (202, 207, 422), answer.text
    return answer.json()


def _rows(client, sql: str, expect: int, timeout: float = 60.0) -> list[tuple]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [tuple(r) for r in client.query(sql).result_rows]
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.25)


def test_producers_coexist_across_an_evolution(registry_gateway, make_key, broker_settings, warehouse, tmp_path):
    gw = registry_gateway
    admin, ingest_only = make_key("acme", scopes=("ingest", "schemas")), make_key("acme", scopes=("ingest",))
    wait_for_key(gw, admin)
    wait_for_key(gw, ingest_only)
    http, plain = gw.client(admin), gw.client(ingest_only)
    assert _register(plain, V1).status_code == 403  # the schemas scope only
    flow = start_flow(
        broker_settings,
        warehouse,
        tail=True,
        extra_env={"EVENTPULSE_SCHEMAS_REFRESH_S": str(REFRESH_S)},
        log=tmp_path / "flow.log",
    )
    client = create_client(warehouse, role="admin")
    try:
        assert _register(http, V1).json() == {"type": "purchase", "version": 1, "new": True, "mode": "backward"}
        _wait_version(gw, 1)
        # v1: the old producer's events pass; the new producer's fractional qty does not, nor a missing sku.
        first = _send(http, [old_producer(i) for i in range(20)] + [new_producer(0)])
        assert first["accepted"] == 20 and [e["field"] for e in first["errors"]] == ["/data/qty"]
        assert first["errors"][0]["reason"] == "schema_violation" and "v1" in first["errors"][0]["detail"]
        missing = _send(http, [event("no-sku", type="purchase", data={"qty": 1})])
        assert missing["errors"][0]["field"] == "/data/sku"
        landed = _rows(client, "SELECT data_schema_version FROM events FINAL WHERE type = 'purchase'", 20)
        assert sorted(landed) == [(1,)] * 20  # checked by the dataflow against v1

        # The evolution, each step compatible under backward; then two refused.
        for version, schema in ((2, V2), (3, V3), (4, V4)):
            answer = _register(http, schema)
            assert (answer.status_code, answer.json()["version"]) == (201, version), answer.text
        assert _register(http, V4).status_code == 200  # the latest again: no new version
        narrowed = {**V4, "properties": {**V4["properties"], "qty": {"type": "string"}}}
        refused = _register(http, narrowed)
        assert refused.status_code == 409 and any("/properties/qty/type" in r for r in refused.json()["reasons"])
        required = {**V4, "required": ["sku", "qty", "currency"]}
        refused = _register(http, required)
        assert refused.status_code == 409 and "required property 'currency' added" in refused.text
        listed = http.get("/api/schemas", params={"type": "purchase"}).json()["schemas"]
        assert [s["version"] for s in listed] == [1, 2, 3, 4]  # the refused ones were not stored
        _wait_version(gw, 4)

        # v4: both producers pass; a violation of v4 does not.
        second = _send(http, [old_producer(i) for i in range(20)] + [new_producer(i) for i in range(20)])
        assert (second["accepted"], second["rejected"]) == (40, 0), second
        bad = _send(http, [event("bad-qty", type="purchase", data={"sku": "C", "qty": "three"})])
        assert bad["errors"][0]["field"] == "/data/qty" and "v4" in bad["errors"][0]["detail"]
        # Past the gateway, straight onto the topic: the dataflow checks it too.
        now = int(time.time() * 1000)
        sneaked = {
            **event("sneaked", type="purchase", data={"sku": "D", "qty": 0}),
            "tenant": "acme",
            "received_at": now,
        }
        produce(broker_settings.bootstrap, broker_settings.events_topic, [(b"acme:u3", orjson.dumps(sneaked))])

        accepted = {e for e in first["ids"] if e} | {e for e in second["ids"] if e}
        rows = _rows(client, "SELECT id, data_schema_version FROM events FINAL WHERE type = 'purchase'", 60)
        assert len(rows) == 60 and {i for i, _ in rows} == accepted  # each accepted event once
        versions = dict(rows)
        assert {versions[i] for i in second["ids"]} == {4}
        assert {versions[i] for i in first["ids"] if i} == {1}
        letters = _rows(
            client, "SELECT stage, reason, field, detail FROM dead_letters FINAL WHERE reason = 'schema_violation'", 4
        )
        by_stage = sorted((stage, field) for stage, _, field, _ in letters)
        assert by_stage == [
            ("flow", "/data/qty"),
            ("gateway", "/data/qty"),
            ("gateway", "/data/qty"),
            ("gateway", "/data/sku"),
        ]
        (flow_detail,) = [d for s, _, _, d in letters if s == "flow"]
        assert "v4" in flow_detail and "minimum" in flow_detail
        audited = client.query(
            "SELECT result, count() FROM audit_log WHERE action = 'schema.register' AND actor LIKE 'key:%'"
            " GROUP BY result ORDER BY result"
        ).result_rows
        assert [tuple(r) for r in audited] == [("failure", 2), ("success", 5)]
    finally:
        client.close()
        stop(flow, grace=10)
