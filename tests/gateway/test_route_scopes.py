"""Every route of the gateway's route table with every key scope, for two tenants whose event ids
and user ids overlap, plus URL, parameter, header and body tampering.

Each route answers a caller only with the caller's own tenant's data, or refuses with the right
status: 401 without a (valid) key, 403 with a key lacking the route's scope (the WebSocket refuses
its handshake with 403 either way). Tampering (``tenant`` query parameters, tenant headers, another
tenant's key as ``api_key`` beside the caller's header, a ``tenant`` in the event body, path
variants) never widens what a key sees. The cases are generated from `gateway.routes.table.ROUTES`:
a new route fails `test_every_route_is_classified` until this file says which scope it needs. The
webhook route takes no key: a delivery signed with the other tenant's source secret is 401, one
signed with the tenant's own lands under that tenant whatever key, parameters or body say.
One gateway, one warehouse database and one topic for the module.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from eventpulse.api_keys import ALL_SCOPES, create_key
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.schemas.store import register_schema
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from eventpulse.webhooks import signature
from gateway.routes import table
from tests.gateway.conftest import (
    RunningGateway,
    event,
    gateway_settings,
    read_topic,
    register_webhook,
    serve,
    wait_for_key,
    wait_for_source,
    with_webhooks,
)

TENANTS = ("acme", "globex")
SCOPES = ("ingest", "stream", "read", "schemas", "admin")
SCOPE_OF = {
    table.EVENTS: "ingest",
    table.EVENTS_BATCH: "ingest",
    table.IMPORT: "ingest",
    table.STREAM_SSE: "stream",
    table.STREAM_WEBSOCKET: "stream",
    table.INGEST_WEBSOCKET: "ingest",
    table.SQL: "read",
    table.METRICS_QUERY: "read",
    table.SCHEMAS_LIST: "schemas",
    table.SCHEMAS_REGISTER: "schemas",
    table.SCHEMAS_CHECK: "schemas",
    table.SCHEMAS_MODE: "schemas",
}
SCHEMA_ROUTES = (table.SCHEMAS_LIST, table.SCHEMAS_REGISTER, table.SCHEMAS_CHECK, table.SCHEMAS_MODE)
PUBLIC = {table.HEALTH, table.READY, table.METRICS_JSON, table.METRICS_PROMETHEUS, table.OPENAPI}
"""Routes without a key: they answer about the service, never with a tenant's data."""
SIGNED = {table.WEBHOOKS}
"""Routes a third party calls: authenticated by the signature of a source's secret, never by a key
(any key, or none, changes nothing); the tenant is the source's."""
HOOK_MAPPING = {"type": "$.type", "id": "$.id", "user_id": "$.user"}
START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
COUNT = {"acme": 3, "globex": 300}  # events per minute window: which tenant an answer came from
TAMPERED_PARAMS = ({}, {"tenant": "{other}"}, {"tenant_id": "{other}"}, {"tenants": "{other},{own}"})
TAMPERED_HEADERS = ({}, {"X-Tenant": "{other}"}, {"X-EventPulse-Tenant": "{other}"}, {"X-Forwarded-User": "{other}"})


@dataclass
class Stack:
    gateway: RunningGateway
    keys: dict[tuple[str, str | None], str]  # (tenant, scope or None for every scope) -> key
    topic: str
    bootstrap: str
    hook_secrets: dict[str, str]  # tenant -> secret of its source "<tenant>-hooks"


def _other(tenant: str) -> str:
    return TENANTS[1 - TENANTS.index(tenant)]


def _seed(warehouse: WarehouseSettings) -> None:
    """Both tenants own events e1..e3 of users u1..u2, and 5 minutes of window aggregates."""
    admin = create_client(warehouse, role="admin")
    for tenant in TENANTS:
        rows = [
            [tenant, f"e{i}", START + timedelta(seconds=i), "click", "web", f"u{i % 2 + 1}", "{}", "{}"]
            for i in range(1, 4)
        ]
        admin.insert(
            "events", rows, column_names=["tenant", "id", "timestamp", "type", "source", "user_id", "data", "extra"]
        )
        windows = []
        for m in range(5):
            begin, n = START + timedelta(minutes=m), COUNT[tenant]
            windows.append([tenant, 60, 60, begin, begin + timedelta(minutes=1), "*", "*", n, 0, 0.0, 1, n, 10.0 * n])
            windows[-1] += [1, "stream", 1, begin + timedelta(minutes=1)]
        columns = ["tenant", "window_seconds", "slide_seconds", "window_start", "window_end", "type", "source"]
        columns += ["event_count", "error_count", "error_rate", "distinct_users", "latency_count", "latency_sum"]
        admin.insert(
            "window_aggregates", windows, column_names=[*columns, "is_final", "origin", "version", "emitted_at"]
        )
        register_schema(admin, tenant, "click", _schema(tenant), default_mode="backward")  # named after its tenant
    admin.close()


@pytest.fixture(scope="module")
def stack(broker_bootstrap: str, warehouse_url: str) -> Iterator[Stack]:
    topics = [f"events-{uuid.uuid4().hex[:10]}", f"dead-{uuid.uuid4().hex[:10]}"]
    admin = AdminClient({"bootstrap.servers": broker_bootstrap})
    for future in admin.create_topics([NewTopic(name, 2, 1) for name in topics]).values():
        future.result(timeout=30)
    broker = BrokerSettings(bootstrap=broker_bootstrap, events_topic=topics[0], dead_letter_topic=topics[1])
    warehouse = WarehouseSettings(url=warehouse_url, database=f"rs_{uuid.uuid4().hex[:12]}")
    migrate(warehouse)
    _seed(warehouse)
    client = create_client(warehouse, role="admin")
    keys = {(t, s): create_key(client, t, (s,))[1] for t in TENANTS for s in ALL_SCOPES}
    keys |= {(t, None): create_key(client, t, ALL_SCOPES)[1] for t in TENANTS}
    client.close()
    settings = with_webhooks(gateway_settings(broker, warehouse, query_cache_ttl_s=0, stream_poll_s=0.2))
    hook_secrets = {t: register_webhook(settings, t, f"{t}-hooks", HOOK_MAPPING) for t in TENANTS}
    with serve(settings) as gw:
        for key in keys.values():
            wait_for_key(gw, key)
        for tenant in TENANTS:
            wait_for_source(gw, f"{tenant}-hooks")
        yield Stack(gw, keys, topics[0], broker_bootstrap, hook_secrets)


def test_every_route_is_classified() -> None:
    assert set(table.ROUTES) == set(SCOPE_OF) | PUBLIC | SIGNED
    assert set(SCOPE_OF.values()) <= set(ALL_SCOPES)


def test_there_is_no_admin_key_scope(stack: Stack) -> None:
    """Keys and users are administered with the warehouse's admin credentials (``eventpulse keys``),
    not with an API key: a key cannot be given an ``admin`` scope."""
    client = create_client(stack.gateway.settings.warehouse, role="admin")
    with pytest.raises(ValueError, match="unknown scopes: admin"):
        create_key(client, "acme", ("admin",))
    client.close()


def _schema(tenant: str) -> dict:
    return {"type": "object", "title": tenant, "properties": {"sku": {"type": "string", "description": tenant}}}


def _fill(template: dict[str, str], tenant: str) -> dict[str, str]:
    return {k: v.format(own=tenant, other=_other(tenant)) for k, v in template.items()}


def _request(http: httpx.Client, route: table.RouteSpec, path: str, tenant: str, params, headers) -> httpx.Response:
    """One request of ``route`` shaped for a caller of ``tenant`` (its tampering included)."""
    if route in (table.EVENTS, table.EVENTS_BATCH):
        doc = event(f"{tenant}-{uuid.uuid4().hex[:12]}", tenant=_other(tenant))  # the body names the other tenant
        doc["data"]["tenant"] = _other(tenant)
        body = doc if route is table.EVENTS else [doc]
        return http.post(path, params=params, headers=headers, json=body)
    if route is table.IMPORT:  # a file whose event names the other tenant: it is imported under the key's
        doc = event(f"{tenant}-{uuid.uuid4().hex[:12]}", tenant=_other(tenant))
        doc["data"]["tenant"] = _other(tenant)
        upload = {**headers, "Content-Type": "application/x-ndjson"}
        return http.post(path, params=params, headers=upload, content=orjson.dumps(doc) + b"\n")
    if route is table.SQL:
        sql = "SELECT tenant, id, user_id FROM events WHERE tenant = {tenant:String} OR 1 ORDER BY id"
        return http.post(path, params=params, headers=headers, json={"sql": sql, "params": {"tenant": _other(tenant)}})
    if route is table.METRICS_QUERY:
        span = {"start": START.isoformat(), "end": (START + timedelta(minutes=5)).isoformat(), "granularity": "60"}
        return http.get(path, params={**span, **params}, headers=headers)
    if route in (table.SCHEMAS_REGISTER, table.SCHEMAS_CHECK):  # the schema names the caller's own tenant
        return http.post(path, params=params, headers=headers, json={"type": f"t-{tenant}", "schema": _schema(tenant)})
    if route is table.SCHEMAS_MODE:
        return http.put(path, params=params, headers=headers, json={"type": f"t-{tenant}", "mode": "backward"})
    if route is table.STREAM_SSE:
        with http.stream("GET", path, params=params, headers=headers) as response:
            if response.status_code == 200:
                response._content = _first_sse_message(response)
            else:
                response.read()
            return response
    return http.get(path, params=params, headers=headers)


def _webhook(http: httpx.Client, tenant: str, secret: str, params, headers) -> httpx.Response:
    """A delivery to ``tenant``'s source whose body names the other tenant, signed with ``secret``."""
    other = _other(tenant)
    doc = {"type": "signed", "id": f"{tenant}-{uuid.uuid4().hex[:12]}", "user": "u1", "tenant": other}
    body = orjson.dumps({**doc, "data": {"tenant": other}})
    signed = {**headers, signature.HEADER: signature.sign(secret, int(time.time()), body)}
    return http.post(f"/api/webhooks/{tenant}-hooks", params=params, headers=signed, content=body)


def _first_sse_message(response: httpx.Response) -> bytes:
    for line in response.iter_lines():
        if line.startswith("data: "):
            return line.removeprefix("data: ").encode()
    return b""


def _assert_own_data(route: table.RouteSpec, tenant: str, response: httpx.Response, case: str) -> None:
    other = _other(tenant)
    if route in (table.EVENTS, table.EVENTS_BATCH):
        assert response.status_code == 202, case
        return  # where the event went is checked on the topic (test_ingest_lands_in_the_keys_tenant)
    if route is table.IMPORT:
        assert response.status_code == 200 and response.json()["rows"] == 1, f"{case}: {response.text[:300]}"
        return  # where the event went is checked on the topic (test_ingest_lands_in_the_keys_tenant)
    ok = (200, 201) if route is table.SCHEMAS_REGISTER else (200,)  # 201 the first time, then the same again
    assert response.status_code in ok, f"{case}: {response.status_code} {response.text[:300]}"
    body = response.json()
    if route is table.SQL:
        assert body["rows"] and {row[0] for row in body["rows"]} == {tenant}, case
        assert [row[1] for row in body["rows"]] == ["e1", "e2", "e3"], case  # the overlapping ids: own rows only
    elif route is table.METRICS_QUERY:
        assert [row[1] for row in body["rows"]] == [COUNT[tenant]] * 5, case
    elif route is table.STREAM_SSE:
        assert body["tenant"] == tenant and body["rows"], case
        assert {row["event_count"] for row in body["rows"]} == {COUNT[tenant]}, case
    elif route is table.SCHEMAS_LIST:
        assert {s["schema"]["title"] for s in body["schemas"]} == {tenant} and body["schemas"], case
    elif route in SCHEMA_ROUTES:
        assert body["type"] == f"t-{tenant}", case
    assert other not in response.text, case


def _cases() -> Iterator[tuple[table.RouteSpec, str, str | None, str]]:
    """(route, tenant, scope or "none"/"wrong", path variant) for every HTTP route."""
    for route in table.ROUTES:
        if route.method == "WEBSOCKET":
            continue
        for tenant in TENANTS:
            for scope in (*SCOPES, "none", "wrong"):
                yield route, tenant, scope, route.path


def test_every_route_with_every_scope_and_tampering(stack: Stack) -> None:
    answered = refused = 0
    with httpx.Client(base_url=stack.gateway.url, timeout=30) as http:
        for route, tenant, scope, path in _cases():
            for params_t, headers_t in zip(TAMPERED_PARAMS, TAMPERED_HEADERS, strict=True):
                params, headers = _fill(params_t, tenant), _fill(headers_t, tenant)
                if scope == "wrong":
                    headers["X-API-Key"] = stack.keys[(tenant, "read")][:-4] + "AAAA"
                elif scope == "admin":
                    headers["X-API-Key"] = stack.keys[(tenant, None)]  # the nearest to an admin key: every scope
                elif scope != "none":
                    headers["X-API-Key"] = stack.keys[(tenant, scope)]
                if route is table.STREAM_SSE and "X-API-Key" in headers:  # the key parameter: the header wins
                    params["api_key"] = stack.keys[(_other(tenant), "stream")]
                case = f"{route.method} {path} {tenant}/{scope} {params} {headers}"
                if route in SIGNED:  # "wrong": signed with the other tenant's secret; any other: its own
                    secret = stack.hook_secrets[_other(tenant) if scope == "wrong" else tenant]
                    response = _webhook(http, tenant, secret, params, headers)
                    if scope == "wrong":
                        assert response.status_code == 401, case
                        refused += 1
                    else:
                        assert response.status_code == 202 and _other(tenant) not in response.text, case
                        answered += 1
                    continue
                response = _request(http, route, path, tenant, params, headers)
                if route in PUBLIC:
                    assert response.status_code in (200, 503), case  # ready: 503 while a dependency is down
                    assert not any(t in response.text for t in TENANTS), case
                    answered += 1
                    continue
                needed = SCOPE_OF[route]
                if scope in ("none", "wrong"):
                    assert response.status_code == 401, case
                elif scope not in (needed, "admin"):
                    assert response.status_code == 403, case
                else:
                    _assert_own_data(route, tenant, response, case)
                    answered += 1
                    continue
                assert not any(t in response.text for t in TENANTS), case
                refused += 1
    print(f"route battery: {answered} answered with the caller's data only, {refused} refused")
    assert answered + refused == len(list(_cases())) * len(TAMPERED_PARAMS) and refused >= 150
    # Every event sent (its body naming the other tenant) is on the topic under the key's tenant.
    messages = read_topic(stack.bootstrap, stack.topic, idle_s=1.0)
    assert len(messages) >= 32
    for key, value in messages:
        sender = value["id"].split("-", 1)[0]
        assert key.decode().startswith(f"{sender}:") and value["tenant"] == sender, (key, value)


@pytest.mark.parametrize(
    "variant", ["{path}/", "/{upper}", "/{path}", "{path}/..", "{path}%2F", "{path};tenant=globex"]
)
def test_path_variants_reach_no_other_route(stack: Stack, variant: str) -> None:
    """Tampered paths answer 404/405/401/403 or what the route itself answers: never another
    tenant's data, never the data without the key's scope."""
    with httpx.Client(base_url=stack.gateway.url, timeout=30) as http:
        for route in SCOPE_OF:
            if route.method == "WEBSOCKET":
                continue
            path = variant.format(path=route.path, upper=route.path.lstrip("/").upper())
            for scope in ALL_SCOPES:
                key = stack.keys[("acme", scope)]
                response = _request(http, route, path, "acme", {}, {"X-API-Key": key})
                case = f"{path} with {scope}: {response.status_code}"
                assert "globex" not in response.text, case
                if response.status_code < 300:  # the path reached a route (the client may resolve ``..``)
                    reached = next((r for r in SCOPE_OF if r.path == response.request.url.path), None)
                    assert reached is None or SCOPE_OF[reached] == scope, case
                else:
                    assert response.status_code in (307, 400, 401, 403, 404, 405, 422), case


@pytest.mark.parametrize("tenant", TENANTS)
def test_websocket_with_every_scope(stack: Stack, tenant: str) -> None:
    url = stack.gateway.url.replace("http://", "ws://") + table.STREAM_WEBSOCKET.path
    for scope in (*ALL_SCOPES, "none"):
        headers = {} if scope == "none" else {"X-API-Key": stack.keys[(tenant, scope)]}
        tampered = f"{url}?tenant={_other(tenant)}&api_key={stack.keys[(_other(tenant), 'stream')]}"
        if scope != "stream":
            with (
                pytest.raises(InvalidStatus) as refused,
                ws_connect(f"{url}?tenant={_other(tenant)}", additional_headers=headers),
            ):
                pass
            assert refused.value.response.status_code == 403, scope
            continue
        with ws_connect(tampered, additional_headers=headers, open_timeout=10) as ws:
            message = orjson.loads(ws.recv(timeout=10))
        assert message["tenant"] == tenant and {r["event_count"] for r in message["rows"]} == {COUNT[tenant]}


def test_the_checks_catch_an_answer_with_the_other_tenants_data(stack: Stack) -> None:
    """Negative control: a gateway that answered with the other tenant's data (simulated by asking
    with the other tenant's key) fails every data route's check above."""
    data_routes = [
        r for r in SCOPE_OF if r.method != "WEBSOCKET" and r not in (table.EVENTS, table.EVENTS_BATCH, table.IMPORT)
    ]
    assert data_routes
    with httpx.Client(base_url=stack.gateway.url, timeout=30) as http:
        for route in data_routes:
            for tenant in TENANTS:
                leaked = _request(
                    http, route, route.path, _other(tenant), {}, {"X-API-Key": stack.keys[(_other(tenant), None)]}
                )
                assert leaked.status_code == 200, (route.path, leaked.text[:200])
                with pytest.raises(AssertionError):
                    _assert_own_data(
                        route, tenant, leaked, f"{route.path} answered {_other(tenant)}'s data to {tenant}"
                    )
