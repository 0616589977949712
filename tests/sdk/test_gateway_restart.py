"""The SDK against the real gateway, broker, dataflow and warehouse, with the gateway killed (-9)
and started again in the middle of sending: every captured event is in ``events FINAL`` exactly once.

The kill comes while the broker is frozen (SIGSTOP) for a moment, as in the fault suite's gateway
scenario: requests are in flight, their events produced to the broker but not acknowledged; the
broker, resumed, writes them, the killed gateway never answers, and the SDK sends them again with
the same ids and timestamps to the restarted gateway (whose memory of recent ids died with it). The
topic then holds those events twice; the warehouse keeps each id once.

Negative controls on the same pipeline: a client whose retries get fresh ids (the SDK with its
body encoder patched to re-id every attempt) leaves duplicates in the warehouse, and a client that
never retries (``max_retries=0``) loses the events of the requests the restart broke. The asyncio
client then sends through the same gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import eventpulse_sdk._delivery as delivery
import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from eventpulse_sdk import AsyncClient, Client, ClientConfig, Stats, uuid7
from eventpulse_sdk.events import QueuedEvent

from eventpulse.broker.admin import consumer_config
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from tests.support.faults import Pipeline
from tests.support.services import BrokerProcesses, broker_processes

pytestmark = pytest.mark.integration

EVENTS = 1200  # captured per scenario, at about 1,000 events/s
KILL_AFTER = 400  # captured before the gateway is killed


def _wait_for_key(url: str, key: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.post(f"{url}/api/events/batch", content=b"[]", headers={"X-API-Key": key}).status_code != 401:
                return
        time.sleep(0.1)
    raise TimeoutError("the gateway did not load the key")


def _send_through_restart(pipeline: Pipeline, processes: BrokerProcesses, config: ClientConfig, run: str) -> Client:
    """Capture `EVENTS` events (``data.run``, ``data.seq``) while the gateway is killed and restarted."""
    client = Client(config=config)
    captured = threading.Event()

    def produce() -> None:
        for seq in range(EVENTS):
            client.capture("user_action", "sdk_test", {"run": run, "seq": seq}, user_id=f"u{seq % 20}")
            if seq == KILL_AFTER:
                captured.set()
            time.sleep(0.001)

    thread = threading.Thread(target=produce)
    thread.start()
    assert captured.wait(30)
    assert processes.broker is not None
    os.killpg(processes.broker.pid, signal.SIGSTOP)
    time.sleep(0.3)  # requests pile up: produced to the broker's socket, not acknowledged
    pipeline.kill(pipeline.gateway)
    os.killpg(processes.broker.pid, signal.SIGCONT)  # ... and written now: nobody answers
    pipeline.start_gateway()
    thread.join(60)
    client.close(timeout=30)
    return client


def _stored(pipeline: Pipeline, run: str, expect: int, timeout: float = 40.0) -> Counter[int]:
    """Rows of ``events FINAL`` per ``data.seq`` of ``run``, once ``expect`` distinct seqs are there (or at timeout)."""
    warehouse = pipeline.client()
    query = (
        "SELECT JSONExtractInt(data, 'seq') AS seq, count() FROM events FINAL "
        "WHERE JSONExtractString(data, 'run') = {run:String} GROUP BY seq"
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = Counter(dict(warehouse.query(query, parameters={"run": run}).result_rows))
            if len(rows) >= expect or time.monotonic() > deadline:
                time.sleep(1.0)  # let late duplicates land too
                return Counter(dict(warehouse.query(query, parameters={"run": run}).result_rows))
            time.sleep(0.3)
    finally:
        warehouse.close()


def _on_topic(broker: BrokerSettings, run: str) -> Counter[str]:
    """How many times each event id of ``run`` is on the events topic."""
    consumer = Consumer(consumer_config(broker, group_id=f"sdk-{run}"))
    try:
        partitions = consumer.list_topics(timeout=10).topics[broker.events_topic].partitions
        consumer.assign([TopicPartition(broker.events_topic, p, 0) for p in partitions])
        seen: Counter[str] = Counter()
        quiet = time.monotonic()
        while time.monotonic() - quiet < 1.5:
            for message in consumer.consume(1000, 0.2):
                if message.error() is None:
                    quiet = time.monotonic()
                    doc = json.loads(message.value())
                    if doc.get("data", {}).get("run") == run:
                        seen[doc["id"]] += 1
        return seen
    finally:
        consumer.close()


ASYNC_EVENTS = 300


async def _send_async(config: ClientConfig, run: str) -> Stats:
    async with AsyncClient(config=config) as client:
        for seq in range(ASYNC_EVENTS):
            await client.capture("user_action", "sdk_test", {"run": run, "seq": seq}, user_id=f"u{seq % 20}")
            if seq % 50 == 0:
                await asyncio.sleep(0.01)
        assert await client.flush(30)
        return client.stats


def _reid_body(events: list[QueuedEvent]) -> bytes:
    """The control's encoder: every attempt sends the events under fresh ids (what an SDK without
    client-side ids, or one that re-creates them per attempt, does)."""
    docs = [{**json.loads(e.payload), "id": uuid7()} for e in events]
    return json.dumps(docs).encode()


def test_every_event_exactly_once_through_a_gateway_kill_9(
    warehouse: WarehouseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with broker_processes(tmp_path) as processes:
        broker = BrokerSettings(bootstrap=processes.bootstrap, partitions=4)
        pipeline = Pipeline(tmp_path, broker, warehouse)
        try:
            pipeline.start_flow()
            pipeline.start_gateway()
            key = pipeline.key("acme")
            _wait_for_key(pipeline.url, key)
            # retries without a count limit (close's 30 s bound them): a loaded machine may take long to restart
            config = ClientConfig(
                endpoint=pipeline.url,
                api_key=key,
                flush_interval_s=0.05,
                batch_size=50,
                backoff_initial_s=0.05,
                backoff_max_s=1.0,
                max_retries=None,
            )

            run = f"ok-{uuid.uuid4().hex[:6]}"
            client = _send_through_restart(pipeline, processes, config, run)
            stats = client.stats
            stored = _stored(pipeline, run, EVENTS)
            on_topic = _on_topic(broker, run)

            lossy_run = f"lossy-{uuid.uuid4().hex[:6]}"
            lossy = _send_through_restart(pipeline, processes, dataclasses.replace(config, max_retries=0), lossy_run)
            lossy_stored = _stored(pipeline, lossy_run, EVENTS - lossy.stats.failed)

            reid_run = f"reid-{uuid.uuid4().hex[:6]}"
            monkeypatch.setattr(delivery, "batch_body", _reid_body)
            _send_through_restart(pipeline, processes, config, reid_run)
            monkeypatch.undo()
            reid_stored = _stored(pipeline, reid_run, EVENTS)

            async_run = f"async-{uuid.uuid4().hex[:6]}"
            async_stats = asyncio.run(_send_async(config, async_run))
            async_stored = _stored(pipeline, async_run, ASYNC_EVENTS)
        finally:
            pipeline.close()

    print(
        f"\nSDK through a gateway kill -9: {stats}; {sum(on_topic.values()) - len(on_topic)} events on the topic twice;"
        f" warehouse {sum(stored.values())} rows for {len(stored)} events. Controls: no retries lost "
        f"{EVENTS - len(lossy_stored)} ({lossy.stats.failed} failed); fresh ids per attempt stored "
        f"{sum(reid_stored.values()) - len(reid_stored)} duplicates"
    )
    # The SDK: nothing dropped or given up, some resends (the kill), each event once in the warehouse.
    assert stats.captured == EVENTS and stats.dropped == stats.failed == stats.rejected == 0
    assert stats.delivered == EVENTS and stats.retries > 0
    assert set(stored) == set(range(EVENTS)), f"missing: {sorted(set(range(EVENTS)) - set(stored))[:20]}"
    assert set(stored.values()) == {1}, f"duplicated: {[s for s, n in stored.items() if n > 1][:20]}"
    assert len(on_topic) == EVENTS
    assert sum(on_topic.values()) > EVENTS, "the kill should leave resent events on the topic twice"
    # Negative control 1: without retries the restart loses events, and the test sees it.
    assert lossy.stats.failed > 0
    # (a failed event may still have landed: its request reached the broker, its answer never came)
    assert lossy.stats.delivered <= len(lossy_stored) < EVENTS and set(lossy_stored.values()) == {1}
    # Negative control 2: resends under new ids are new events to the warehouse: duplicates.
    assert set(reid_stored) == set(range(EVENTS))
    assert max(reid_stored.values()) > 1, "fresh ids on retry should leave duplicates"
    # The asyncio client, same path.
    assert async_stats.delivered == ASYNC_EVENTS and async_stats.failed == 0
    assert set(async_stored) == set(range(ASYNC_EVENTS)) and set(async_stored.values()) == {1}
