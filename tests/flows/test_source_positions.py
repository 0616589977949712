"""Invalid source positions on a real broker: never a silent stall, never a lag of 0.

* The flow resumes from a recovery store whose offsets lie beyond the end of a recreated topic
  (what a broker restarted with memory storage looks like): before it runs, the lag is reported as
  an invalid position (not 0); it then processes every new event and records an incident.
* One source partition resumed past the end of its log under the same topic id (a broker that
  lost data) resets by the policy, as a new incarnation, with an incident row.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from devstack.traffic.generator import EventFactory, TrafficProfile
from eventpulse.broker.admin import admin_client, log_end_offsets, partition_lag, topic_id
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.incidents import IncidentLog
from eventpulse.warehouse.client import create_client
from flows.source import KafkaBatchSource, PartitionState, SourceBatch, listed_watermarks
from orchestration.sensors.consumer_lag import processed_offsets
from tests.flows.test_topic_incarnations import recreate_topic
from tests.support.pipeline import init_recovery, produce, run_flow_until_drained, start_flow
from tests.support.services import free_port, stop

pytestmark = pytest.mark.integration

VALID_ONLY = TrafficProfile(invalid_share=0.0)


def _messages(seed: int, n: int) -> list:
    return list(EventFactory(VALID_ONLY, seed=seed).messages(n, int(time.time() * 1000) - 120_000, rate_per_s=1000))


def _ids(client, sql: str = "SELECT id FROM events FINAL") -> set[str]:
    return {row[0] for row in client.query(sql).result_rows}


def test_resume_beyond_the_end_of_a_recreated_topic_processes_the_new_log(
    broker_settings: BrokerSettings, warehouse: WarehouseSettings, tmp_path: Path
) -> None:
    topic, recovery = broker_settings.events_topic, tmp_path / "recovery"
    init_recovery(recovery)
    first = _messages(1, 2000)
    produce(broker_settings.bootstrap, topic, first)
    run_flow_until_drained(broker_settings, warehouse, recovery_dir=recovery, timeout=120, log=tmp_path / "1.log")

    recreate_topic(admin_client(broker_settings), topic, 4)  # the saved offsets (~500 a partition) now lie past the end
    second = _messages(2, 200)
    produce(broker_settings.bootstrap, topic, second)
    client = create_client(warehouse, role="admin")
    try:
        before = partition_lag(log_end_offsets(broker_settings, topic), processed_offsets(client, topic))
        assert all(not lag.valid and lag.lag is None for lag in before.values()), before  # not 0: invalid

        run_flow_until_drained(broker_settings, warehouse, recovery_dir=recovery, timeout=120, log=tmp_path / "2.log")
        sent = {m.event["id"] for m in first + second}
        assert _ids(client) == sent
        incidents = client.query(
            "SELECT kind, partition, expected_offset, log_end, action FROM pipeline_incidents FINAL "
            "WHERE topic = {t:String} ORDER BY partition",
            parameters={"t": topic},
        ).result_rows
        assert [(kind, p) for kind, p, *_ in incidents] == [("topic_recreated", p) for p in range(4)]
        assert all(
            expected > log_end and "reset to earliest" in action for _, _, expected, log_end, action in incidents
        )
        current = topic_id(admin_client(broker_settings), topic)
        latest = client.query(
            "SELECT partition, argMax(incarnation, started_at) FROM topic_incarnations WHERE topic = {t:String} "
            "GROUP BY partition",
            parameters={"t": topic},
        ).result_rows
        assert sorted(latest) == [(p, current) for p in range(4)]
        resets = client.query(
            "SELECT sum(value) FROM (SELECT label, max(value) AS value FROM pipeline_metrics "
            "WHERE metric = 'offset_resets_total' GROUP BY label)"
        ).result_rows[0][0]
        assert resets == 4
    finally:
        client.close()


def _read_some(part, want: int, timeout: float = 20.0) -> list[SourceBatch]:
    batches: list[SourceBatch] = []
    deadline = time.monotonic() + timeout
    while sum(len(b.offsets) for b in batches) < want:
        assert time.monotonic() < deadline, f"read {sum(len(b.offsets) for b in batches)} of {want}"
        batches += part.next_batch()
        time.sleep(0.01)
    return batches


@pytest.mark.parametrize("policy", ["earliest", "latest"])
def test_a_position_past_the_end_under_the_same_topic_id_resets_by_policy(
    broker_settings: BrokerSettings, warehouse: WarehouseSettings, policy: str
) -> None:
    topic = broker_settings.events_topic
    produce(broker_settings.bootstrap, topic, [(b"k", b"{}")] * 30)
    offsets = log_end_offsets(broker_settings, topic)
    (partition,) = [p for p, (_, high) in offsets.items() if high == 30]
    tid = topic_id(admin_client(broker_settings), topic)
    assert tid is not None  # Tansu reports topic ids
    lags: list[int] = []
    source = KafkaBatchSource(
        broker_settings,
        topic,
        batch_size=1000,
        tail=True,
        idle_ms=10,
        offset_reset=policy,
        incidents=IncidentLog(warehouse),
        on_lag=lambda p, lag: lags.append(lag),
    )
    part = source.build_part("kafka", str(partition), PartitionState(tid, 5000, tid))
    try:
        if policy == "earliest":
            batches = _read_some(part, 30)
            assert batches[0].first_offset == 0 and batches[-1].last_offset == 29
        else:
            deadline = time.monotonic() + 20
            while part.snapshot().incarnation == tid:
                assert time.monotonic() < deadline, "no reset"
                assert part.next_batch() == []
            produce(broker_settings.bootstrap, topic, [(b"k", b"{}")] * 5)
            batches = _read_some(part, 5)
            assert batches[0].first_offset == 30 and batches[-1].last_offset == 34
        incarnations = {b.incarnation for b in batches}
        assert len(incarnations) == 1 and incarnations != {tid} and next(iter(incarnations)).startswith(tid)
        assert min(lags) < 0  # the invalid position was reported as is: 5000 past the end
        state = part.snapshot()
        assert state.incarnation in incarnations and state.next_offset == batches[-1].last_offset + 1
    finally:
        part.close()
    client = create_client(warehouse, role="admin")
    try:
        rows = client.query(
            "SELECT kind, expected_offset, log_start, log_end, action FROM pipeline_incidents FINAL"
        ).result_rows
    finally:
        client.close()
    assert rows == [("position_past_end", 5000, 0, 30, rows[0][4])] and f"reset to {policy}" in rows[0][4]


def test_a_replay_of_one_incarnation_carries_the_same_tokens(broker_settings: BrokerSettings) -> None:
    """The resume state holds the incarnation: a restart from it reproduces the batches' incarnation."""
    topic = broker_settings.events_topic
    produce(broker_settings.bootstrap, topic, [(b"k", b"{}")] * 10)
    (partition,) = [p for p, (_, high) in log_end_offsets(broker_settings, topic).items() if high == 10]
    source = KafkaBatchSource(broker_settings, topic, batch_size=1000, tail=True, idle_ms=10)
    state = PartitionState(f"gen~{uuid.uuid4().hex[:16]}", 3, None)
    seen = []
    for _ in range(2):
        part = source.build_part("kafka", str(partition), state)
        try:
            batches = _read_some(part, 7)
        finally:
            part.close()
        seen.append((batches[0].incarnation, batches[0].first_offset, batches[0].last_offset))
    assert seen[0][0] == seen[1][0] == state.incarnation and seen[0][1] == seen[1][1] == 3


def _start_broker(port: int, log: Path) -> subprocess.Popen:
    argv = [
        sys.executable,
        "-m",
        "devstack.broker",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--partitions",
        "2",
        "--storage",
        "memory",
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while b"broker ready on" not in log.read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.05)
    return proc


def _wait_for(client, count: int, flow: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while (seen := client.query("SELECT uniqExact(id) FROM events").result_rows[0][0]) < count:
        assert flow.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{seen} of {count} events stored:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def test_a_running_flow_goes_on_after_a_memory_broker_restart(warehouse: WarehouseSettings, tmp_path: Path) -> None:
    """kill -9 the broker under a tailing flow; the restarted broker's log starts from 0 again."""
    port = free_port()
    broker = BrokerSettings(
        bootstrap=f"127.0.0.1:{port}", events_topic="events", dead_letter_topic="events.dead_letters", partitions=2
    )
    broker_log, flow_log = tmp_path / "broker.log", tmp_path / "flow.log"
    proc = _start_broker(port, broker_log)
    recovery = tmp_path / "recovery"
    init_recovery(recovery)
    env = {"EVENTPULSE_STREAM_POSITION_CHECK_S": "1", "EVENTPULSE_STREAM_RAW_INSERT_MIN_ROWS": "0"}
    flow = start_flow(broker, warehouse, tail=True, recovery_dir=recovery, extra_env=env, log=flow_log)
    client = create_client(warehouse, role="admin")
    try:
        first, second = _messages(1, 600), _messages(2, 300)
        produce(broker.bootstrap, broker.events_topic, first)
        _wait_for(client, 600, flow, flow_log)
        os.killpg(proc.pid, signal.SIGKILL)  # the wrapper and its Tansu child: memory storage is gone
        proc.wait()
        proc = _start_broker(port, tmp_path / "broker-2.log")
        assert log_end_offsets(broker, broker.events_topic) == {0: (0, 0), 1: (0, 0)}  # a new, empty log
        produce(broker.bootstrap, broker.events_topic, second)  # offsets 0.. again, below the flow's position
        _wait_for(client, 900, flow, flow_log)
        assert _ids(client) == {m.event["id"] for m in first + second}
        kinds = client.query("SELECT DISTINCT kind FROM pipeline_incidents FINAL").result_rows
        assert kinds and {k for (k,) in kinds} <= {"topic_recreated", "position_past_end"}, kinds
    finally:
        client.close()
        stop(flow)
        stop(proc)
        with contextlib.suppress(ProcessLookupError):  # never leave a Tansu child behind
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_position_deleted_by_broker_retention_is_an_incident_and_the_flow_goes_on(
    warehouse: WarehouseSettings, tmp_path: Path
) -> None:
    """Durable broker: retention deletes batches the flow has not read yet; Tansu then serves from its
    first kept batch (no OFFSET_OUT_OF_RANGE): the source reads everything kept and records the gap."""
    from devstack.broker.objectstore import s3_client
    from devstack.broker.retention import Retention, RetentionPolicy
    from tests.support.services import broker_processes

    with broker_processes(
        tmp_path, partitions=1, storage="s3", env={"EVENTPULSE_BROKER_RETENTION_CHECK_S": "3600"}
    ) as bp:
        settings = BrokerSettings(bootstrap=bp.bootstrap, events_topic="events", partitions=1)
        for _ in range(6):  # six batches of five
            produce(bp.bootstrap, "events", [(b"k", b"{}")] * 5)
        tid = topic_id(admin_client(settings), "events")
        retention = Retention(s3_client(bp.settings), "tansu", "eventpulse", RetentionPolicy(retention_bytes=1))
        [deleted] = [p for p in retention.enforce() if "/topics/events/" in p.partition]
        assert deleted.log_start > 0
        source = KafkaBatchSource(
            settings, "events", batch_size=1000, tail=True, idle_ms=10, incidents=IncidentLog(warehouse)
        )
        part = source.build_part("kafka", "0", PartitionState(tid, 0, tid))  # saved before retention ran
        try:
            batches = _read_some(part, 30 - deleted.log_start)
            assert batches[0].first_offset == deleted.log_start and batches[-1].last_offset == 29
            assert {b.incarnation for b in batches} == {tid}  # same log: same incarnation
        finally:
            part.close()
    client = create_client(warehouse, role="admin")
    try:
        rows = client.query("SELECT kind, expected_offset, log_start FROM pipeline_incidents FINAL").result_rows
    finally:
        client.close()
    assert rows == [("position_before_start", 0, deleted.log_start)]


def test_listing_waits_while_the_client_does_not_know_the_partition_yet(broker_bootstrap: str) -> None:
    """What a restarted broker looks like to a running consumer: ``_UNKNOWN_PARTITION`` until its
    metadata refreshes. The listing retries (the flow goes on); with no retry budget it raises
    (the negative control: the crash seen on a loaded CI machine)."""
    name = f"later-{uuid.uuid4().hex[:10]}"
    consumer = Consumer({"bootstrap.servers": broker_bootstrap, "group.id": name})
    try:
        with pytest.raises(KafkaException):
            listed_watermarks(consumer, TopicPartition(name, 0), retry_s=0)
        admin = admin_client(BrokerSettings(bootstrap=broker_bootstrap))

        def create_later() -> None:
            time.sleep(1.0)
            for future in admin.create_topics([NewTopic(name, 1, 1)]).values():
                future.result(timeout=30)

        creator = threading.Thread(target=create_later)
        creator.start()
        assert listed_watermarks(consumer, TopicPartition(name, 0), retry_s=30) == (0, 0)
        creator.join()
    finally:
        consumer.close()
