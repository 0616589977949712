"""Local broker storage: memory vs s3 (Tansu on s3rver), in the same run, then memory over a long run.

    .venv/bin/python benchmarks/broker_storage.py [--events 200000] [--long 10000000] [--step 1000000]
        [--long-memory 2000000]

Part 1 starts a broker with each storage (4 partitions) and produces ``--events`` events of ~300 B
as the local stack does (acks=all, idempotent, linger 5 ms, keys tenant:user) as fast as one
producer can, then consumes them all with a bare consumer (assigned partitions, batch consume);
prints events/s, the broker's and the object store's RSS and the s3/memory ratios.

Part 2 produces ``--long`` events to an s3 broker with the default retention and compaction (a
pass every 5 s here instead of 30 s) and prints, every ``--step`` events, the RSS of the broker
(wrapper + Tansu) and of the object store, the bytes and objects of the log on disk; then the same
for memory storage up to ``--long-memory`` events. RSS slopes are per million events.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402

from eventpulse.stack.process import group_members  # noqa: E402
from tests.support.services import BrokerProcesses  # noqa: E402

PARTITIONS = 4
VALUE = (
    b'{"id":"0190c4b8-7d1e-7cc3-b1a2-%08d","timestamp":1796000000000,"type":"user_action","source":"web_app",'
    b'"data":{"user_id":"12345","action":"click","metadata":{"page":"/pricing","ref":"campaign-42","ab":"b"}},'
    b'"tenant":"acme","schema_version":1,"received_at":1796000000001,"pad":"................................"}'
)


def rss_mb(pgid: int | None) -> float:
    """Resident memory of every process in group ``pgid``, in MB."""
    if pgid is None:
        return 0.0
    total = 0
    for pid in group_members(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def produce(bootstrap: str, count: int, start: int = 0) -> float:
    """Produce ``count`` events as fast as possible; events per second (acked)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 500_000,
        }
    )
    began = time.perf_counter()
    for i in range(start, start + count):
        while True:
            try:
                producer.produce("events", VALUE % (i % 100_000_000), key=b"acme:%d" % (i % 997))
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(300) == 0, "events not acknowledged"
    return count / (time.perf_counter() - began)


def consume(bootstrap: str, expected: int) -> float:
    """Read every partition from its start to its end; events per second."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench", "enable.partition.eof": True, "fetch.wait.max.ms": 100}
    )
    consumer.assign([TopicPartition("events", p, 0) for p in range(PARTITIONS)])
    seen, done = 0, set()
    began = time.perf_counter()
    while len(done) < PARTITIONS:
        for msg in consumer.consume(10_000, 1.0):
            if msg.error() is None:
                seen += 1
            elif msg.error().code() == KafkaError._PARTITION_EOF:
                done.add(msg.partition())
    elapsed = time.perf_counter() - began
    consumer.close()
    assert seen == expected, f"consumed {seen} of {expected}"
    return seen / elapsed


def log_on_disk(processes: BrokerProcesses) -> tuple[float, int]:
    """MB and number of record batch objects the object store holds."""
    sizes = []
    for path in processes.store_dir.rglob("*.batch._S3rver_object") if processes.storage == "s3" else []:
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:  # deleted by retention or compaction meanwhile
            continue
    return sum(sizes) / 1e6, len(sizes)


def compare(events: int, workdir: Path) -> None:
    results = {}
    for storage in ("memory", "s3"):
        processes = BrokerProcesses(workdir / storage, PARTITIONS, storage).start()
        try:
            produced = produce(processes.bootstrap, events)
            consumed = consume(processes.bootstrap, events)
            broker, store = rss_mb(processes.broker.pid), rss_mb(processes.store and processes.store.pid)
        finally:
            processes.stop()
        results[storage] = (produced, consumed, broker, store)
        print(
            f"{storage:>6}: produce {produced:>9,.0f} ev/s  consume {consumed:>9,.0f} ev/s  "
            f"broker RSS {broker:>6.0f} MB  store RSS {store:>5.0f} MB  (after {events:,} events)",
            flush=True,
        )
    (mp, mc, mb, _), (sp, sc, sb, ss) = results["memory"], results["s3"]
    print(
        f" ratio s3/memory: produce {sp / mp:.2f}x  consume {sc / mc:.2f}x  RSS (broker + store) {(sb + ss) / mb:.2f}x",
        flush=True,
    )


def long_run(storage: str, total: int, step: int, workdir: Path) -> None:
    env = {"EVENTPULSE_BROKER_RETENTION_CHECK_S": "5"}
    processes = BrokerProcesses(workdir / f"long-{storage}", PARTITIONS, storage, env).start()
    rows = [(0, rss_mb(processes.broker.pid), rss_mb(processes.store and processes.store.pid), 0.0, 0)]
    try:
        sent = 0
        while sent < total:
            rate = produce(processes.bootstrap, min(step, total - sent), sent)
            sent += min(step, total - sent)
            broker, store = rss_mb(processes.broker.pid), rss_mb(processes.store and processes.store.pid)
            disk, objects = log_on_disk(processes)
            rows.append((sent, broker, store, disk, objects))
            print(
                f"{storage:>6} after {sent:>11,} events: broker RSS {broker:>6.0f} MB  store RSS {store:>5.0f} MB  "
                f"log on disk {disk:>7.0f} MB in {objects:>5} objects  (produce {rate:,.0f} ev/s)",
                flush=True,
            )
    finally:
        processes.stop()
    first, last = rows[1], rows[-1]
    if last[0] > first[0]:
        per_million = 1e6 / (last[0] - first[0])
        print(
            f"{storage:>6}: RSS slope broker {(last[1] - first[1]) * per_million:+.1f} MB and store "
            f"{(last[2] - first[2]) * per_million:+.1f} MB per million events; peak broker + store "
            f"{max(r[1] + r[2] for r in rows):.0f} MB over {last[0]:,} events",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--long", type=int, default=10_000_000)
    parser.add_argument("--step", type=int, default=1_000_000)
    parser.add_argument("--long-memory", type=int, default=2_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="broker-bench-") as tmp:
        workdir = Path(tmp)
        for name in ("memory", "s3", "long-s3", "long-memory"):
            (workdir / name).mkdir()
        print(f"part 1: memory vs s3 storage, {args.events:,} events, {PARTITIONS} partitions, cores {os.cpu_count()}")
        compare(args.events, workdir)
        if args.long:
            print(f"part 2: broker memory over {args.long:,} events (s3, default retention and compaction)")
            long_run("s3", args.long, args.step, workdir)
        if args.long_memory:
            long_run("memory", args.long_memory, args.step, workdir)


if __name__ == "__main__":
    main()
