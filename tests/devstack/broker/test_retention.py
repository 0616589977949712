"""Retention and compaction of the durable broker's log: bounded, and what is kept stays readable."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from devstack.broker.compaction import RecordBatch
from devstack.broker.objectstore import s3_client
from devstack.broker.retention import Batch, PartitionPass, Retention, RetentionPolicy, expired_prefix
from tests.support.services import BrokerProcesses, broker_processes

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _batches(sizes: list[int], minutes_apart: int = 1) -> list[Batch]:
    return [Batch(f"b{i}", i * 10, size, T0 + timedelta(minutes=i * minutes_apart)) for i, size in enumerate(sizes)]


def test_expired_prefix_applies_time_and_bytes_and_keeps_the_newest_batch() -> None:
    batches = _batches([100] * 10)  # written at T0, T0+1 min, ..., T0+9 min
    now = T0 + timedelta(minutes=10)
    assert expired_prefix(batches, RetentionPolicy(), now) == 0
    assert expired_prefix(batches, RetentionPolicy(retention_ms=5 * 60_000), now) == 5  # older than 5 min
    assert expired_prefix(batches, RetentionPolicy(retention_bytes=350), now) == 7  # 300 bytes left
    assert expired_prefix(batches, RetentionPolicy(retention_ms=5 * 60_000, retention_bytes=350), now) == 7
    assert expired_prefix(batches, RetentionPolicy(retention_ms=1), now + timedelta(days=1)) == 9  # never the last
    assert expired_prefix(batches[:1], RetentionPolicy(retention_bytes=1), now) == 0


def test_a_topics_own_retention_configs_replace_the_defaults() -> None:
    policy = RetentionPolicy(retention_ms=60_000, retention_bytes=1_000, compact_bytes=10)
    assert policy.with_topic_configs({}) == policy
    assert policy.with_topic_configs({"retention.bytes": "50", "retention.ms": "-1"}) == RetentionPolicy(0, 50, 10)
    assert policy.with_topic_configs({"retention.ms": "soon", "cleanup.policy": "delete"}) == policy


def _produce_batches(bootstrap: str, batches: int, per_batch: int, start: int = 0) -> list[bytes]:
    """``batches`` separate produce requests (each acked before the next) to partition 0."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 0})
    values = []
    for b in range(batches):
        for r in range(per_batch):
            value = f"event-{start + b * per_batch + r:07d}".encode() + b"." * 200
            producer.produce("events", value, key=b"k", partition=0, timestamp=1_796_000_000_000 + b * 10 + r)
            values.append(value)
        assert producer.flush(30) == 0
    return values


def _read(bootstrap: str, start: int = -2, **config: str | int) -> list[tuple[int, bytes]]:
    """(offset, value) of partition 0 from ``start`` (default: the log start) to its end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "r", "enable.partition.eof": True, **config})
    consumer.assign([TopicPartition("events", 0, start)])
    out: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        messages = consumer.consume(1000, 1.0)
        if any(m.error() and m.error().code() == KafkaError._PARTITION_EOF for m in messages):
            out += [(m.offset(), m.value()) for m in messages if m.error() is None]
            break
        out += [(m.offset(), m.value()) for m in messages if m.error() is None]
    consumer.close()
    return out


def _records(processes: BrokerProcesses) -> list[Path]:
    return sorted((processes.store_dir / "tansu").rglob("partitions/0000000000/records/*.batch._S3rver_object"))


def _stored_bytes(processes: BrokerProcesses) -> int:
    """Bytes of events/0 on disk; a batch the retention worker deletes mid-walk counts as gone."""
    total = 0
    for path in _records(processes):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def _enforce(processes: BrokerProcesses, **policy: int) -> PartitionPass:
    """One retention pass with ``policy``; what it did to events/0."""
    settings = processes.settings
    retention = Retention(s3_client(settings), settings.store_bucket, "eventpulse", RetentionPolicy(**policy))
    [events] = [p for p in retention.enforce() if p.partition.endswith("/topics/events/partitions/0000000000/")]
    return events


@pytest.mark.integration
def test_compaction_merges_batches_and_retention_drops_a_prefix_while_the_rest_stays_readable(
    tmp_path: Path,
) -> None:
    quiet = {"EVENTPULSE_BROKER_RETENTION_CHECK_S": "3600"}  # the broker's own worker stays out of the way
    with broker_processes(tmp_path, partitions=1, storage="s3", env=quiet) as processes:
        bootstrap = processes.bootstrap
        values = _produce_batches(bootstrap, 60, 5)
        before = _read(bootstrap)
        assert [v for _, v in before] == values and [o for o, _ in before] == list(range(300))
        objects = len(_records(processes))
        assert objects >= 60  # one object per produced batch (linger 0: some requests split)

        stored = _records(processes)[0].read_bytes()  # the codec reproduces what the broker stored
        assert RecordBatch.decode(stored, 0).encode()[8:] == stored[8:]

        compacted = _enforce(processes, compact_bytes=6_000)
        assert compacted.deleted == 0 and compacted.merged > 40
        assert len(_records(processes)) == objects - compacted.merged
        assert _read(bootstrap) == before  # same offsets, same records, in order
        assert _read(bootstrap, 123) == before[123:]  # from inside a merged batch

        more = _produce_batches(bootstrap, 3, 5, start=300)  # the broker goes on appending after it
        assert [v for _, v in _read(bootstrap)] == values + more

        sizes = [p.stat().st_size for p in _records(processes)]
        bound = sum(sizes) // 2
        trimmed = _enforce(processes, retention_bytes=bound)
        assert trimmed.deleted > 0 and sum(p.stat().st_size for p in _records(processes)) <= bound
        kept = _read(bootstrap)
        assert kept[0][0] == trimmed.log_start > 0
        assert kept == [(o, v) for o, v in enumerate(values + more)][trimmed.log_start :]  # no hole
        low, _ = Consumer({"bootstrap.servers": bootstrap, "group.id": "w"}).get_watermark_offsets(
            TopicPartition("events", 0), timeout=10
        )
        assert low == trimmed.log_start

        processes.kill_broker()  # and all of it holds across a broker restart
        processes.start_broker()
        assert _read(bootstrap) == kept

        admin = AdminClient({"bootstrap.servers": bootstrap})  # a topic's own retention.bytes wins, as in Kafka
        entry = ConfigEntry("retention.bytes", "1", incremental_operation=AlterConfigOpType.SET)
        for future in admin.incremental_alter_configs(
            [ConfigResource("topic", "events", incremental_configs=[entry])]
        ).values():
            future.result(10)
        last = _enforce(processes)  # no limits of its own
        assert last.deleted > 0 and len(_records(processes)) == 1  # all but the newest batch
        assert _read(bootstrap) == [(o, v) for o, v in kept if o >= last.log_start]


@pytest.mark.integration
def test_the_broker_bounds_its_log_under_load(tmp_path: Path) -> None:
    """The broker's own retention worker: 1 s passes, 64 KB per partition, while events keep coming."""
    env = {
        "EVENTPULSE_BROKER_RETENTION_CHECK_S": "1",
        "EVENTPULSE_BROKER_RETENTION_BYTES": "65536",
        "EVENTPULSE_BROKER_COMPACT_BYTES": "16384",
    }
    with broker_processes(tmp_path, partitions=1, storage="s3", env=env) as processes:
        producer = Producer({"bootstrap.servers": processes.bootstrap, "acks": "all", "enable.idempotence": True})
        peak, sent = 0, 0
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            for _ in range(20):
                producer.produce("events", b"x" * 250, partition=0)
            sent += 20
            producer.flush(30)
            time.sleep(0.02)
            peak = max(peak, _stored_bytes(processes))
        time.sleep(2.5)  # one more pass after the last produce
        on_disk = _stored_bytes(processes)
        kept = _read(processes.bootstrap)
    assert sent * 250 > 10 * 65536  # ten times the bound went through
    assert on_disk <= 65536 + 16384  # the bound, plus at most one batch the pass keeps
    assert peak < sent * 250 / 2
    offsets = [o for o, _ in kept]
    assert offsets == list(range(offsets[0], sent)), "the kept log has a hole or lost its end"
    assert "retention: deleted" in (tmp_path / f"broker-{processes.port}.log").read_text()


@pytest.mark.integration
@pytest.mark.parametrize("in_one_write", [True, False])
def test_a_fetch_during_a_merge_reads_each_record_once(tmp_path: Path, in_one_write: bool) -> None:
    """A consumer fetching between the merged batch's write and the removal of its parts.

    Negative control (``in_one_write=False``: the merged batch written, its parts deleted after, as
    before the fix): Tansu lists the merged batch and its parts and returns both, so the consumer
    reads every record of the parts twice, although the store ends up holding each record once.
    """
    quiet = {"EVENTPULSE_BROKER_RETENTION_CHECK_S": "3600"}  # only this test's pass compacts
    with broker_processes(tmp_path, partitions=1, storage="s3", env=quiet) as processes:
        bootstrap, settings = processes.bootstrap, processes.settings
        values = _produce_batches(bootstrap, 30, 1)  # 30 batches of one record
        during: list[list[tuple[int, bytes]]] = []

        class PausedMerge(Retention):
            def _replacing(self, last: Batch) -> dict[str, str]:
                return super()._replacing(last) if in_one_write else {}

            def _delete(self, batches: list[Batch]) -> None:
                # a fetch from offset 0 right after the merged write (time enough to list the whole partition)
                during.append(_read(bootstrap, 0, **{"fetch.wait.max.ms": 10_000}))
                super()._delete(batches)

        retention = PausedMerge(
            s3_client(settings), settings.store_bucket, "eventpulse", RetentionPolicy(0, 0, 1 << 20)
        )
        [merged] = [p.merged for p in retention.enforce() if p.merged]
        assert merged == 28  # 30 batches, the newest never touched: 29 became one
        [read] = during
        assert _read(bootstrap) == list(enumerate(values))  # after the pass: each record once
        twice = len(read) - len({offset for offset, _ in read})
        if in_one_write:
            assert read == list(enumerate(values))
        else:
            assert twice == 28  # the records of the 28 parts after the merged batch's first


@pytest.mark.integration
def test_the_next_pass_deletes_the_leftovers_of_an_unfinished_merge(tmp_path: Path) -> None:
    """A merge cut short after its write (the object store killed before it removed the parts, or a
    store without the replacing write): readers get the parts' records twice until the next pass."""
    quiet = {"EVENTPULSE_BROKER_RETENTION_CHECK_S": "3600"}
    with broker_processes(tmp_path, partitions=1, storage="s3", env=quiet) as processes:
        bootstrap, settings = processes.bootstrap, processes.settings
        values = _produce_batches(bootstrap, 10, 1)
        policy = RetentionPolicy(0, 0, 1 << 20)

        class CutShort(Retention):
            def _replacing(self, last: Batch) -> dict[str, str]:
                return {}

            def _delete(self, batches: list[Batch]) -> None:
                pass  # the kill comes before the parts go

        CutShort(s3_client(settings), settings.store_bucket, "eventpulse", policy).enforce()
        assert len(_records(processes)) == 10  # the merged batch, its 8 parts, the newest
        assert len(_read(bootstrap, 0, **{"fetch.wait.max.ms": 10_000})) == 10 + 8  # the parts read twice
        passes = Retention(s3_client(settings), settings.store_bucket, "eventpulse", policy).enforce()
        assert sum(p.merged for p in passes) == 8 and len(_records(processes)) == 2
        assert _read(bootstrap, 0) == list(enumerate(values))
