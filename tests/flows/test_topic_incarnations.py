"""A topic recreated under the same name (offsets from 0 again) loses nothing in the warehouse.

Every insert's deduplication token names the topic's incarnation (the broker's topic id), so the
new log's first batch is not taken for a retry of the old log's first batch. The negative control
(``EVENTPULSE_STREAM_TOKEN_INCARNATION=false``: tokens ``topic:partition:first-last``) must lose
the second run's events: the server drops them as duplicates.
"""

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from devstack.traffic.generator import EventFactory, TrafficProfile
from eventpulse.broker.admin import admin_client, partition_offsets, topic_id
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.support.pipeline import produce, run_flow_until_drained

pytestmark = pytest.mark.integration

N = 10
VALID_ONLY = TrafficProfile(invalid_share=0.0)


def recreate_topic(admin: AdminClient, name: str, partitions: int) -> None:
    """Delete ``name`` (if it exists) and create it again, empty."""
    if name in admin.list_topics(timeout=10).topics:
        for future in admin.delete_topics([name], operation_timeout=10).values():
            future.result(10)
        deadline = time.monotonic() + 10
        while name in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
            time.sleep(0.05)
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(10)


def _messages(seed: int, n: int = N) -> list:
    start = int(time.time() * 1000) - 60_000
    return list(EventFactory(VALID_ONLY, seed=seed).messages(n, start, rate_per_s=1000))


def _two_incarnations(broker: BrokerSettings, warehouse: WarehouseSettings, tmp: Path, env: dict[str, str]) -> set:
    """Run the flow over a topic, recreate the topic with new events, run again; return the ids sent."""
    admin = admin_client(broker)
    ids: set[str] = set()
    ids_of = {}
    for run, seed in enumerate((1, 2)):
        recreate_topic(admin, broker.events_topic, 1)
        messages = _messages(seed)
        produce(broker.bootstrap, broker.events_topic, messages)
        ids_of[run] = {m.event["id"] for m in messages}
        ids |= ids_of[run]
        assert partition_offsets(admin, broker.events_topic)[0][0] == 0  # offsets from 0 again
        run_flow_until_drained(broker, warehouse, extra_env=env, timeout=120, log=tmp / f"flow-{run}.log")
    assert not ids_of[0] & ids_of[1]
    return ids


def _database(url: str) -> WarehouseSettings:
    settings = WarehouseSettings(url=url, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(settings)
    return settings


def test_recreated_topic_loses_nothing_and_control_loses_the_second_log(
    broker_bootstrap: str, warehouse_url: str, tmp_path: Path
) -> None:
    name = f"events-{uuid.uuid4().hex[:10]}"
    broker = BrokerSettings(
        bootstrap=broker_bootstrap, events_topic=name, dead_letter_topic=f"dead-{uuid.uuid4().hex[:10]}", partitions=1
    )
    env = {"EVENTPULSE_STREAM_RAW_INSERT_MIN_ROWS": "0"}

    warehouse = _database(warehouse_url)
    ids = _two_incarnations(broker, warehouse, tmp_path, env)
    client = create_client(warehouse, role="admin")
    try:
        stored = {row[0] for row in client.query("SELECT id FROM events FINAL").result_rows}
        assert stored == ids, f"{len(ids - stored)} of {len(ids)} events lost"
        incarnations = client.query(
            "SELECT DISTINCT incarnation FROM topic_incarnations WHERE topic = {t:String}", parameters={"t": name}
        ).result_rows
        assert len(incarnations) == 2 and (topic_id(admin_client(broker), name),) in incarnations
    finally:
        client.close()

    # Negative control: tokens without the incarnation -> the second log's batch is dropped.
    control = _database(warehouse_url)
    ids = _two_incarnations(broker, control, tmp_path, {**env, "EVENTPULSE_STREAM_TOKEN_INCARNATION": "false"})
    client = create_client(control, role="admin")
    try:
        stored = {row[0] for row in client.query("SELECT id FROM events FINAL").result_rows}
    finally:
        client.close()
    assert len(stored) == N and stored < ids, f"the control should have lost the second run: {len(stored)} stored"
