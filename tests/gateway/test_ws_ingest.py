"""``/ws/ingest`` with a real WebSocket client (``websockets``) against the real gateway, broker and warehouse:
answers after the broker's acks, rejections dead-lettered, keys, quota, connection limits, backpressure."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import orjson
import pytest
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.uri import parse_uri

from eventpulse.warehouse.client import create_client
from gateway.routes.table import INGEST_WEBSOCKET
from gateway.ws_ingest import CLOSE_KEY_REFUSED, CLOSE_RATE_LIMITED, WebSocketIngest
from tests.gateway.conftest import RunningGateway, event, now_ms, read_topic, run, wait_for_key
from tests.support.pipeline import run_flow_until_drained


def ws_url(gw: RunningGateway, query: str = "") -> str:
    return gw.url.replace("http://", "ws://") + INGEST_WEBSOCKET.path + query


def endpoint(gw: RunningGateway) -> WebSocketIngest:
    """The gateway's ``/ws/ingest`` endpoint object (its connection and unanswered-event counts)."""
    for route in gw.app.app.routes:
        if isinstance(route, WebSocketRoute) and route.path == INGEST_WEBSOCKET.path:
            return route.app
    raise LookupError(INGEST_WEBSOCKET.path)


def open_ws(gw: RunningGateway, key: str | None, **kwargs: Any):
    headers = {"X-API-Key": key} if key else {}
    return connect(ws_url(gw), additional_headers=headers, open_timeout=10, **kwargs)


async def send_all(ws: ClientConnection, frames: list[Any]) -> list[dict]:
    """Send ``frames`` (pipelined), then read one answer per frame; answers sorted by ``seq``."""
    for frame in frames:
        await ws.send(frame if isinstance(frame, str) else orjson.dumps(frame).decode())
    answers = [orjson.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in frames]
    return sorted(answers, key=lambda a: a["seq"])


def dead_letters(warehouse, expect: int, timeout: float = 15.0) -> list[tuple]:
    client = create_client(warehouse, role="admin")
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = client.query("SELECT id, tenant, reason, field, payload FROM dead_letters FINAL").result_rows
            if len(rows) >= expect or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)
    finally:
        client.close()


def test_frames_are_answered_after_the_broker_and_land_once_in_events(gateway, make_key, warehouse):
    key = make_key("acme")
    wait_for_key(gateway, key)
    first = [event(f"w-{i}", data={"user_id": f"u{i % 5}"}) for i in range(50)]
    single = event("w-single")
    mixed = [
        event("w-ok-1"),
        {"timestamp": now_ms(), "source": "web"},  # no type
        event("w-bad-ts", timestamp="yesterday"),
        "not an object",
        event("w-ok-2", tenant="other"),  # the key decides the tenant
    ]

    async def scenario() -> tuple[list[dict], list[dict]]:
        async with open_ws(gateway, key) as ws:
            answers = await send_all(ws, [first, single, mixed, "{broken json", []])
        async with open_ws(gateway, key) as ws:  # a reconnecting client resends the same events
            resent = await send_all(ws, [first, single])
        return answers, resent

    answers, resent = run(scenario())
    assert [a["seq"] for a in answers] == [0, 1, 2, 3, 4]
    assert answers[0] == {
        "type": "result",
        "seq": 0,
        "accepted": 50,
        "rejected": 0,
        "duplicates": 0,
        "ids": [e["id"] for e in first],
        "errors": [],
    }
    assert answers[1]["type"] == "result" and answers[1]["ids"] == ["w-single"]
    assert answers[2]["accepted"] == 2 and answers[2]["rejected"] == 3
    assert answers[2]["ids"] == ["w-ok-1", None, None, None, "w-ok-2"]
    assert {e["index"]: (e["reason"], e["field"]) for e in answers[2]["errors"]} == {
        1: ("missing_field", "type"),
        2: ("invalid_value", "timestamp"),
        3: ("not_an_object", None),
    }
    assert answers[3]["type"] == "error" and answers[3]["error"] == "malformed_json"
    assert answers[4] == {
        "type": "result",
        "seq": 4,
        "accepted": 0,
        "rejected": 0,
        "duplicates": 0,
        "ids": [],
        "errors": [],
    }
    assert [(a["accepted"], a["duplicates"]) for a in resent] == [(50, 50), (1, 1)]  # idempotent by id

    acked = {i for a in answers + resent if a["type"] == "result" for i in a["ids"] if i}
    broker = gateway.settings.broker
    on_topic = [v for _, v in read_topic(broker.bootstrap, broker.events_topic, expect=len(acked))]
    assert sorted(v["id"] for v in on_topic) == sorted(acked)  # the resends were not produced again
    assert {v["tenant"] for v in on_topic} == {"acme"}

    run_flow_until_drained(broker, warehouse, timeout=240)
    client = create_client(warehouse, role="admin")
    try:
        stored = client.query("SELECT id, count() FROM events FINAL WHERE tenant = 'acme' GROUP BY id").result_rows
    finally:
        client.close()
    assert {i for i, _ in stored} == acked and all(c == 1 for _, c in stored)

    rows = dead_letters(warehouse, expect=4)
    assert sorted(r[2] for r in rows) == ["invalid_value", "malformed_json", "missing_field", "not_an_object"]
    assert len({r[0] for r in rows}) == 4  # one row each: the frame is part of the row id
    assert {r[1] for r in rows} == {"acme"} and any("{broken json" in r[4] for r in rows)


def test_the_handshake_is_refused_without_a_valid_ingest_key(gateway, make_key):
    stream_only = make_key("acme", scopes=("stream",))
    good = make_key("acme")
    wait_for_key(gateway, good)

    async def status(key: str | None, query: str = "") -> tuple[int, dict]:
        headers = {"X-API-Key": key} if key else {}
        try:
            async with connect(ws_url(gateway, query), additional_headers=headers, open_timeout=10):
                return 101, {}
        except InvalidStatus as exc:
            return exc.response.status_code, orjson.loads(exc.response.body)

    missing, unknown, no_scope = run(status(None)), run(status("ep_nope_nope")), run(status(stream_only))
    assert (missing[0], missing[1]["error"]) == (401, "unauthorized")
    assert (unknown[0], unknown[1]["error"]) == (401, "unauthorized")
    assert no_scope == (
        403,
        {"error": "forbidden", "detail": "this API key does not have the 'ingest' scope", "errors": []},
    )
    assert run(status(None, f"?api_key={good}"))[0] == 101  # browsers cannot set headers on a WebSocket
    assert run(status(good))[0] == 101


def test_a_revoked_key_closes_the_connection_with_1008(gateway, make_key, warehouse):
    from eventpulse.api_keys import key_id_of, revoke_key

    key = make_key("acme")
    wait_for_key(gateway, key)

    async def scenario() -> int | None:
        async with open_ws(gateway, key) as ws:
            assert (await send_all(ws, [event("before-revoke")]))[0]["type"] == "result"
            admin = create_client(warehouse, role="admin")
            revoke_key(admin, "acme", key_id_of(key) or "")
            admin.close()
            deadline = time.monotonic() + 10
            while getattr(gateway.services.keys.authenticate(key, "ingest"), "status", 0) != 401:
                assert time.monotonic() < deadline, "the revocation did not reach the gateway"
                await asyncio.sleep(0.1)
            await ws.send(orjson.dumps(event("after-revoke")).decode())
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert run(scenario()) == CLOSE_KEY_REFUSED


def test_over_quota_answers_the_frame_and_closes_with_4429(start_gateway, make_key):
    with start_gateway(rate_per_s=1, burst=100) as gw:
        key = make_key("acme")
        wait_for_key(gw, key)

        async def scenario() -> tuple[list[dict], int, str]:
            async with open_ws(gw, key) as ws:
                await ws.send(orjson.dumps([event(f"q-{i}") for i in range(60)]).decode())
                await ws.send(orjson.dumps([event(f"r-{i}") for i in range(60)]).decode())  # 40 tokens left
                answers = []
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        answers.append(orjson.loads(await asyncio.wait_for(ws.recv(), 15)))
                return answers, closed.value.rcvd.code, closed.value.rcvd.reason

        answers, code, reason = run(scenario())
        assert code == CLOSE_RATE_LIMITED and reason.startswith("rate_limited: retry in ")
        assert sorted((a["type"], a["seq"]) for a in answers) == [("rate_limited", 1), ("result", 0)]
        assert next(a for a in answers if a["type"] == "rate_limited")["retry_after_s"] >= 1
        broker = gw.settings.broker
        on_topic = {v["id"] for _, v in read_topic(broker.bootstrap, broker.events_topic, idle_s=1.5)}
        assert on_topic == {f"q-{i}" for i in range(60)}  # nothing of the refused frame
        assert gw.client().get("/api/metrics").json()["events_rate_limited"] == 60


def test_connection_limits_per_process_and_per_tenant(start_gateway, make_key):
    with start_gateway(ws_max_connections=3, ws_max_connections_per_tenant=2, retry_after_s=4) as gw:
        acme, globex = make_key("acme"), make_key("globex")
        wait_for_key(gw, acme)
        wait_for_key(gw, globex)

        async def scenario() -> list[Any]:
            outcomes: list[Any] = []
            async with open_ws(gw, acme), open_ws(gw, acme):
                try:
                    async with open_ws(gw, acme):
                        outcomes.append(101)
                except InvalidStatus as exc:
                    outcomes.append((exc.response.status_code, orjson.loads(exc.response.body)["error"]))
                async with open_ws(gw, globex):
                    try:
                        async with open_ws(gw, globex):
                            outcomes.append(101)
                    except InvalidStatus as exc:
                        response = exc.response
                        outcomes.append((response.status_code, response.headers["Retry-After"]))
                    assert endpoint(gw).connections == 3
            await asyncio.sleep(0.2)
            async with open_ws(gw, acme) as ws:  # slots are given back on close
                outcomes.append((await send_all(ws, [event("after")]))[0]["accepted"])
            return outcomes

        assert run(scenario()) == [(429, "too_many_connections"), (503, "4"), 1]


def _raw_client(port: int, key: str) -> tuple[socket.socket, ClientProtocol]:
    """A WebSocket client on a plain socket (websockets' sans-I/O protocol) that never reads after the handshake."""
    protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{INGEST_WEBSOCKET.path}"))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # before connecting: a small window
    sock.connect(("127.0.0.1", port))
    request = protocol.connect()
    request.headers["X-API-Key"] = key
    protocol.send_request(request)
    sock.sendall(b"".join(protocol.data_to_send()))
    while protocol.handshake_exc is None and not protocol.events_received() and protocol.state.name == "CONNECTING":
        protocol.receive_data(sock.recv(4096))
    assert protocol.state.name == "OPEN", protocol.handshake_exc
    return sock, protocol


@pytest.mark.parametrize("window", [200, 10**9], ids=["bounded", "control-unbounded"])
def test_a_client_that_does_not_read_its_answers_is_paused(start_gateway, make_key, window):
    """Backpressure: the gateway stops reading a connection once ``ws_max_unacked`` events wait for their
    answer, so a client that sends without reading is paused and the gateway holds a bounded number of events.
    Control: with an unbounded window the same client is read far past the bound (the bound is the feature)."""
    frame_events, frames = 50, 800  # answers name each event by its 128-character id: ~5 MB of them
    with start_gateway(ws_max_unacked=window) as gw:
        key = make_key("acme")
        wait_for_key(gw, key)
        ws_endpoint = endpoint(gw)
        sock, protocol = _raw_client(gw.settings.gateway.port, key)
        sock.settimeout(3.0)
        sent = 0
        try:
            for f in range(frames):
                batch = [event(f"bp-{f}-{i}-".ljust(128, "x")) for i in range(frame_events)]
                protocol.send_text(orjson.dumps(batch))
                sock.sendall(b"".join(protocol.data_to_send()))
                sent += 1
        except TimeoutError:
            pass  # the client's send stalled: the gateway stopped reading
        held = run(_settled(lambda: ws_endpoint.unacked))
        read = ws_endpoint.frames_read
        sock.close()
        if window < 10**9:
            assert read < sent  # the gateway stopped reading: the rest waits in TCP (kernel buffers, then the client)
            assert window <= held <= window + frame_events  # the window filled, and no more was read
            # What was read beyond the window was answered: those answers sit in the kernel's socket buffers
            # (tcp_wmem, up to 4 MiB here), not in the gateway's memory.
            assert (read * frame_events - held) * 128 < 8 * 2**20
        else:
            assert held > 20 * 200  # the control: unbounded, the gateway read far beyond the bound


async def _settled(measure, quiet_s: float = 1.5, timeout: float = 30.0) -> int:
    """``measure()`` once it stopped changing for ``quiet_s``."""
    value, since, deadline = measure(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = measure()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return value
    return value
