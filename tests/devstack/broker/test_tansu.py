"""The local Tansu broker and the admin helpers, against real Tansu processes on free ports."""

import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from cli.broker import broker as broker_cli
from devstack.broker import tansu
from devstack.broker.errors import BrokerBinaryNotFound, BrokerPortInUseError, BrokerStartError
from devstack.broker.tansu import LocalBroker
from devstack.ports import free_port, port_is_free
from eventpulse.broker.admin import (
    admin_client,
    consumer_config,
    consumer_lag,
    ensure_topics,
    log_end_offsets,
    partition_lag,
    partition_offsets,
    platform_topics,
    producer_config,
    topic_partitions,
)
from eventpulse.config.broker import BrokerSettings

QUIET = {"log_level": 0}  # librdkafka logs reconnect attempts when a test stops its broker


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


pytestmark = pytest.mark.integration  # every test here starts a real Tansu broker


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    with LocalBroker(port=free_port()) as local:
        yield local


@pytest.fixture
def settings(broker: LocalBroker) -> BrokerSettings:
    suffix = uuid.uuid4().hex[:8]
    return BrokerSettings(
        bootstrap=broker.bootstrap,
        events_topic=f"events-{suffix}",
        dead_letter_topic=f"dead-{suffix}",
        partitions=3,
    )


def test_ensure_topics_creates_missing_topics_and_is_idempotent(settings: BrokerSettings) -> None:
    admin = admin_client(settings, **QUIET)
    wanted = platform_topics(settings)

    assert sorted(ensure_topics(admin, wanted)) == sorted(wanted)
    assert ensure_topics(admin, wanted) == []
    extra = f"extra-{uuid.uuid4().hex[:8]}"
    assert ensure_topics(admin, [extra, settings.events_topic], partitions=2) == [extra]

    found = topic_partitions(admin)
    assert found[settings.events_topic] == found[settings.dead_letter_topic] == 3
    assert found[extra] == 2


def test_idempotent_producer_round_trip_with_assign(settings: BrokerSettings) -> None:
    admin = admin_client(settings, **QUIET)
    ensure_topics(admin, platform_topics(settings))
    config = producer_config(settings, **QUIET)
    assert config["enable.idempotence"] is True and config["acks"] == "all"

    errors: list[object] = []
    producer = Producer(config)
    sent = {f"event-{i}".encode(): f"tenant-{i % 7}:user-{i % 11}".encode() for i in range(600)}
    for value, key in sent.items():
        producer.produce(settings.events_topic, value, key, on_delivery=lambda err, _m: err and errors.append(err))
    assert producer.flush(15) == 0
    assert errors == []

    consumer = Consumer(consumer_config(settings, **QUIET))
    consumer.assign([TopicPartition(settings.events_topic, p, OFFSET_BEGINNING) for p in range(3)])
    got: dict[bytes, tuple[bytes, int, int]] = {}
    deadline = time.monotonic() + 15
    while len(got) < len(sent) and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.5):
            assert msg.error() is None, msg.error()
            got[msg.value()] = (msg.key(), msg.partition(), msg.offset())
    consumer.close()

    assert {v: k for v, (k, _, _) in got.items()} == sent  # every event once, with its key
    partition_of_key: dict[bytes, set[int]] = {}
    for key, partition, _ in got.values():
        partition_of_key.setdefault(key, set()).add(partition)
    assert all(len(parts) == 1 for parts in partition_of_key.values())  # a key stays on one partition

    next_offsets = {p: max(o for _, q, o in got.values() if q == p) + 1 for _, p, _ in got.values()}
    offsets = log_end_offsets(settings, settings.events_topic)  # exact, unlike Tansu's ListOffsets
    assert offsets == {p: (0, next_offsets[p]) for p in range(3)}
    assert consumer_lag(offsets, next_offsets) == {0: 0, 1: 0, 2: 0}
    assert sum(consumer_lag(offsets, {}).values()) > 0


def test_log_end_offsets_are_exact_where_list_offsets_trails(settings: BrokerSettings) -> None:
    admin = admin_client(settings, **QUIET)
    ensure_topics(admin, {settings.events_topic: 1})
    producer = Producer(producer_config(settings, **{"linger.ms": 50, **QUIET}))
    for size in (10, 10, 1, 7):  # four record batches
        for i in range(size):
            producer.produce(settings.events_topic, b"v%d" % i)
        producer.flush(10)
    assert partition_offsets(admin, settings.events_topic)[0][1] < 28  # the last batch's base offset + 1
    assert log_end_offsets(settings, settings.events_topic) == {0: (0, 28)}
    assert consumer_lag(log_end_offsets(settings, settings.events_topic), {0: 28}) == {0: 0}


def test_partition_offsets_and_lag_are_exact_for_single_record_batches(settings: BrokerSettings) -> None:
    admin = admin_client(settings, **QUIET)
    ensure_topics(admin, {settings.events_topic: 1})
    producer = Producer(producer_config(settings, **{"linger.ms": 0, **QUIET}))
    for i in range(5):
        producer.produce(settings.events_topic, b"v%d" % i)
        producer.flush(10)
    consumer = Consumer(consumer_config(settings, **QUIET))

    assert partition_offsets(admin, settings.events_topic) == {0: (0, 5)}
    assert partition_offsets(consumer, settings.events_topic) == {0: (0, 5)}
    assert consumer_lag({0: (0, 5)}, {0: 2}) == {0: 3}
    consumer.close()


def test_partition_offsets_of_a_missing_topic_raises_without_creating_it(settings: BrokerSettings) -> None:
    admin = admin_client(settings, **QUIET)
    with pytest.raises(KeyError, match="not found"):
        partition_offsets(admin, "no-such-topic")
    assert "no-such-topic" not in topic_partitions(admin)  # Tansu auto-creates topics named in metadata


def test_consumer_lag_counts_unprocessed_partitions_and_never_reads_an_invalid_position_as_zero() -> None:
    offsets = {0: (0, 10), 1: (5, 8), 2: (0, 4), 3: (20, 30), 4: (0, 4)}
    assert consumer_lag(offsets, {0: 7, 2: 9, 3: 12, 4: 4}) == {0: 3, 1: 3, 2: None, 3: None, 4: 0}
    lags = partition_lag(offsets, {0: 7, 2: 9, 3: 12, 4: 4})
    assert {p: lag.state for p, lag in lags.items()} == {
        0: "ok",
        1: "ok",
        2: "past_end",  # e.g. a broker restarted with memory storage: the old offsets lie beyond the new end
        3: "before_start",  # retention or truncation removed what was never read
        4: "ok",
    }
    assert not lags[2].valid and lags[2].processed == 9 and lags[2].high == 4


def test_port_taken_is_a_clear_error_before_starting() -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        local = LocalBroker(port=port)
        with pytest.raises(BrokerPortInUseError, match=f"127.0.0.1:{port} is already in use"):
            local.start()
        assert local.pid is None


def test_broker_dying_of_a_taken_port_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process may take the port between the check and Tansu's bind: Tansu exits (status 0)."""
    monkeypatch.setattr(tansu, "port_is_free", lambda host, port: True)
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(BrokerPortInUseError, match=str(port)):
            LocalBroker(port=port, startup_timeout=10).start()
        assert time.monotonic() - started < 5


def test_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tansu.TANSU_BIN_ENV, "/nonexistent/tansu")
    with pytest.raises(BrokerBinaryNotFound, match="CALF_TANSU_BIN"):
        LocalBroker(port=free_port()).start()


def test_a_broker_that_exits_at_start_reports_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'storage: FeatureNotEnabled'\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BrokerStartError, match=r"(?s)exit status 3.*FeatureNotEnabled"):
        LocalBroker(port=free_port(), binary=str(fake)).start()


def test_stop_frees_the_port_and_leaves_no_process() -> None:
    port = free_port()
    local = LocalBroker(port=port).start()
    pid = local.pid
    assert pid is not None and _alive(pid)
    producer = Producer({"bootstrap.servers": local.bootstrap, **QUIET})
    producer.produce("stop-test", b"x")
    assert producer.flush(10) == 0  # a live connection while we stop
    local.stop()

    assert not local.running and not _alive(pid)
    assert port_is_free("127.0.0.1", port)
    with LocalBroker(port=port):  # and the same port serves again at once
        pass
    del producer


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float) -> str:
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([proc.stdout], [], [], remaining)[0]:
            raise AssertionError(f"no {needle!r} in time; output so far: {seen!r}")
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"process exited; output: {seen!r}")
        seen += line
    return seen


def test_python_m_broker_serves_topics_until_sigterm() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPULSE_BROKER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.broker", "--port", str(port), "--partitions", "2", "--storage", "memory"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        out = _read_until(proc, "broker ready", timeout=20)
        assert f"broker ready on 127.0.0.1:{port} (storage: memory; topics: events×2, events.dead_letters×2)" in out
        children = _children(proc.pid)
        assert children and all(_alive(pid) for pid in children)
        admin = admin_client(BrokerSettings(bootstrap=f"127.0.0.1:{port}"), **QUIET)
        assert topic_partitions(admin) == {"events": 2, "events.dead_letters": 2}
        del admin

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert "broker stopped" in proc.stdout.read()
        assert not any(_alive(pid) for pid in children)
        assert port_is_free("127.0.0.1", port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_topics_cli_creates_and_lists_on_any_broker(broker: LocalBroker) -> None:
    names = [f"cli-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    runner = CliRunner()
    args = ["topics", "create", *names, "--bootstrap", broker.bootstrap, "--partitions", "2"]

    first = runner.invoke(broker_cli, args)
    assert first.exit_code == 0, first.output
    assert all(f"{n}: created (2 partitions)" in first.output for n in names)
    again = runner.invoke(broker_cli, args)
    assert all(f"{n}: exists (2 partitions)" in again.output for n in names)

    listed = runner.invoke(broker_cli, ["topics", "list", "--bootstrap", broker.bootstrap])
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line.split()[1:] for line in listed.output.splitlines()[1:]}
    assert all(rows[n] == ["2", "0"] for n in names)


def test_topics_cli_reports_an_unreachable_broker() -> None:
    result = CliRunner().invoke(
        broker_cli, ["topics", "list", "--bootstrap", f"127.0.0.1:{free_port()}", "--timeout", "1"]
    )
    assert result.exit_code == 1
    assert "Error" in result.output
