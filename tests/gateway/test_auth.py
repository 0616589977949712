"""API keys: 401 without a valid key, 403 without the scope, revocation within seconds, tenants apart."""

import json
import time

import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from eventpulse.api_keys import create_key, hash_key, list_keys, new_key, revoke_key
from eventpulse.warehouse.client import create_client
from tests.gateway.conftest import event, read_topic, wait_for_key
from tests.support.services import session_auth


def test_missing_wrong_and_forbidden_keys(gateway, make_key):
    ingest_only = make_key("acme", scopes=("ingest",))
    stream_only = make_key("acme", scopes=("stream",))
    wait_for_key(gateway, ingest_only)
    with gateway.client() as http:
        missing = http.post("/api/events", json=event("a"))
        wrong = http.post("/api/events", json=event("a"), headers={"X-API-Key": ingest_only[:-2] + "xx"})
        garbage = http.post("/api/events", json=event("a"), headers={"Authorization": "Bearer nope"})
        forbidden = http.post("/api/events/batch", json=[event("a")], headers={"X-API-Key": stream_only})
        stream_forbidden = http.get("/api/stream", headers={"X-API-Key": ingest_only})
        ok = http.post("/api/events", json=event("a"), headers={"Authorization": f"Bearer {ingest_only}"})
    assert (missing.status_code, wrong.status_code, garbage.status_code) == (401, 401, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert forbidden.status_code == 403 and "ingest" in forbidden.json()["detail"]
    assert stream_forbidden.status_code == 403
    assert ok.status_code == 202


def test_revoked_key_stops_working_within_five_seconds(gateway, make_key, warehouse):
    key = make_key("acme")
    wait_for_key(gateway, key)
    client = create_client(warehouse, role="admin")
    (row,) = list_keys(client, "acme")
    with gateway.client(key) as http:
        assert http.post("/api/events", json=event("before")).status_code == 202
        assert revoke_key(client, "acme", row.key_id)
        revoked_at = time.monotonic()
        while http.post("/api/events", json=event()).status_code == 202:
            assert time.monotonic() - revoked_at < 5.0, "revoked key still accepted after 5 s"
            time.sleep(0.1)
        assert http.post("/api/events", json=event()).status_code == 401
    assert list_keys(client, "acme")[0].revoked
    client.close()


def test_a_key_only_ever_writes_its_own_tenant(gateway, make_key):
    key_a, key_b = make_key("tenant-a"), make_key("tenant-b")
    wait_for_key(gateway, key_a)
    wait_for_key(gateway, key_b)
    with gateway.client() as http:
        for i in range(5):
            spoof = event(f"a-{i}", tenant="tenant-b", data={"user_id": "u1", "tenant": "tenant-b"})
            assert http.post("/api/events", json=spoof, headers={"X-API-Key": key_a}).status_code == 202
        assert http.post("/api/events/batch", json=[event("b-0")], headers={"X-API-Key": key_b}).status_code == 202
    messages = read_topic(gateway.settings.broker.bootstrap, gateway.settings.broker.events_topic, expect=6)
    tenants = {v["id"]: v["tenant"] for _, v in messages}
    assert tenants == {**{f"a-{i}": "tenant-a" for i in range(5)}, "b-0": "tenant-b"}
    assert all(k.startswith(b"tenant-a:") for k, v in messages if v["id"].startswith("a-"))


def test_a_key_forged_over_the_warehouse_port_never_works(gateway, make_key, warehouse):
    """The measured attack: an ``api_keys`` row inserted over the warehouse port became a working
    key for another tenant. Only the admin user may write that table now; the gateway's own user
    (writer), the reader and anonymous requests are refused, and the forged key stays unknown."""
    key_id, key = new_key()
    row = {"key_id": key_id, "tenant": "victim", "key_hash": hash_key(key), "scopes": ["ingest"], "version": 1}
    insert = f"INSERT INTO api_keys FORMAT JSONEachRow {json.dumps(row)}"
    db = {"database": warehouse.database}
    anonymous = httpx.post(f"{warehouse.url}/", params=db, content=insert, timeout=30)
    assert anonymous.headers["X-ClickHouse-Exception-Code"] == "516"
    for role in ("writer", "reader"):
        forged = httpx.post(f"{warehouse.url}/", params=db, content=insert, auth=session_auth(role), timeout=30)
        assert forged.status_code != 200 and forged.headers["X-ClickHouse-Exception-Code"] in ("164", "497"), role
        client = create_client(warehouse, role=role)
        with pytest.raises(DatabaseError):
            create_key(client, "victim", ("ingest",))
        client.close()
    time.sleep(2 * gateway.settings.gateway.key_refresh_s + 0.5)  # past the gateway's next key reload
    with gateway.client(key) as http:
        assert http.post("/api/events", json=event("forged")).status_code == 401
    admin = create_client(warehouse, role="admin")
    assert [k.tenant for k in list_keys(admin)] == []
    admin.close()
    # control: the same path as admin does make a working key, so the refusal above is what protects
    real = make_key("victim", scopes=("ingest",))
    wait_for_key(gateway, real)
    with gateway.client(real) as http:
        assert http.post("/api/events", json=event("real")).status_code == 202
