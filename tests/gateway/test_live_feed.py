"""Live window aggregates over SSE and WebSocket: the key's tenant only, filters, slow consumers dropped."""

import asyncio
import json
import time
from datetime import UTC, datetime

import httpx
import pytest
import websockets

from eventpulse.warehouse.client import create_client
from gateway.live_feed import DROPPED, StreamHub
from gateway.schemas import WindowRow
from tests.gateway.conftest import wait_for_key

COLUMNS = [
    "tenant",
    "window_seconds",
    "slide_seconds",
    "window_start",
    "window_end",
    "type",
    "source",
    "event_count",
    "error_count",
    "error_rate",
    "distinct_users",
    "latency_count",
    "latency_sum",
    "is_final",
    "origin",
    "version",
    "emitted_at",
]


def _insert(warehouse, rows):
    now = datetime.now(UTC)
    start = datetime.fromtimestamp(int(time.time()) // 10 * 10, UTC)
    end = datetime.fromtimestamp(start.timestamp() + 10, UTC)
    client = create_client(warehouse, role="admin")
    data = [[t, 10, 10, start, end, ty, src, n, 0, 0.0, 1, 0, 0.0, 0, "stream", v, now] for t, ty, src, n, v in rows]
    client.insert("window_aggregates", data, column_names=COLUMNS)
    client.close()


@pytest.fixture
def stream_gateway(start_gateway):
    with start_gateway(stream_poll_s=0.2) as gw:
        yield gw


def test_sse_streams_only_the_keys_tenant_with_filters(stream_gateway, make_key, warehouse):
    key = make_key("acme", scopes=("stream",))
    wait_for_key(stream_gateway, key)
    _insert(warehouse, [("acme", "*", "*", 5, 1), ("acme", "click", "web", 3, 1), ("other", "click", "web", 9, 1)])

    async def first_message(params: str) -> dict:
        async with (
            httpx.AsyncClient(base_url=stream_gateway.url, timeout=10) as client,
            client.stream("GET", f"/api/stream?api_key={key}{params}") as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    return json.loads(line[6:])
        raise AssertionError("stream ended")

    everything = asyncio.run(asyncio.wait_for(first_message(""), 10))
    assert everything["tenant"] == "acme"
    assert sorted((r["type"], r["event_count"]) for r in everything["rows"]) == [("*", 5), ("click", 3)]
    only_clicks = asyncio.run(asyncio.wait_for(first_message("&type=click"), 10))
    assert [(r["type"], r["source"]) for r in only_clicks["rows"]] == [("click", "web")]


def test_websocket_pushes_updates_and_refuses_bad_keys(stream_gateway, make_key, warehouse):
    key = make_key("acme", scopes=("stream",))
    wait_for_key(stream_gateway, key)
    ws_url = stream_gateway.url.replace("http://", "ws://") + "/ws/events"
    _insert(warehouse, [("acme", "*", "*", 5, 1)])

    async def scenario():
        async with websockets.connect(f"{ws_url}?api_key={key}") as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert [r["event_count"] for r in first["rows"]] == [5]
            _insert(warehouse, [("acme", "*", "*", 8, 2)])  # the window is re-emitted with a newer version
            second = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert [(r["event_count"], r["version"]) for r in second["rows"]] == [(8, 2)]
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(f"{ws_url}?api_key=wrong"):
                pass

    asyncio.run(scenario())


def test_a_slow_subscriber_is_dropped_without_blocking_others():
    async def scenario():
        hub = StreamHub(lambda: None, poll_s=60, rows=10, queue_size=2)
        slow, fast = hub.subscribe("t"), hub.subscribe("t")
        for task in [f.task for f in hub._feeds.values()]:
            task.cancel()  # no warehouse here: feed by hand
        row = WindowRow(10, 10, 0, 10_000, "*", "*", 1, 0, 0.0, 1, None, None, None, False, 1)
        for _ in range(3):
            hub._offer(slow, [row])
            hub._offer(fast, [row])
            fast.queue.get_nowait()  # the fast one keeps up
        assert slow.dropped and slow.queue.get_nowait() is DROPPED
        assert not fast.dropped and hub.subscribers == 1 and hub.dropped == 1

    asyncio.run(scenario())
