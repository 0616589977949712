"""Dataflow throughput and latency against two baselines, measured in the same run.

    .venv/bin/python benchmarks/dataflow.py            # 1,000,000 events, 4 partitions
    .venv/bin/python benchmarks/dataflow.py --events 200000 --steady-seconds 10

Starts its own Tansu broker and warehouse server on free ports, produces N generated events
(20 tenants, 10 types, 5 sources, ~1 % invalid), then drains the same topic three ways:

* A: a bare confluent-kafka consumer that decodes every message with orjson (the ceiling);
* B: a straightforward per-event Bytewax flow (KafkaSource → decode → key → fold_window with an
  EventClock, 60 s tumbling counts), as a typical user would write it;
* ours: ``flows.events:flow`` end to end into the warehouse (validation, raw events, dead letters,
  10 s / 60 s / 5 min-every-1 min windows, all metrics).

Then it offers a steady 50,000 events/s (event time = send time) to the dataflow in tail mode
and reads processing latency and freshness percentiles from ``pipeline_metrics``.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eventpulse.broker.admin import producer_config  # noqa: E402
from eventpulse.config.broker import BrokerSettings  # noqa: E402
from eventpulse.config.warehouse import WarehouseSettings  # noqa: E402
from eventpulse.stack.ports import free_port, wait_for_http, wait_for_port  # noqa: E402
from eventpulse.traffic.broker_sender import send_to_topic  # noqa: E402
from eventpulse.traffic.generator import EventFactory, TrafficProfile  # noqa: E402
from eventpulse.warehouse.client import create_client  # noqa: E402
from eventpulse.warehouse.setup import migrate  # noqa: E402

PROFILE = TrafficProfile(tenants=20, types=10, sources=5, payload_padding=0)


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _produce(bootstrap: str, topic: str, messages, total: int, label: str) -> None:
    settings = BrokerSettings(bootstrap=bootstrap)
    producer = Producer(producer_config(settings, **{"linger.ms": 20, "batch.size": 1_000_000}))
    send_to_topic(producer, topic, tqdm(messages, total=total, desc=label, unit="ev", unit_scale=True))
    producer.flush(120)


def baseline_a(bootstrap: str, topic: str, partitions: int, total: int) -> float:
    """Bare consumer: assign every partition, consume in batches, orjson-decode each message."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-a",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    started, seen = time.perf_counter(), 0
    with tqdm(total=total, desc="A  bare consumer", unit="ev", unit_scale=True) as bar:
        while seen < total:
            batch = consumer.consume(10_000, 1.0)
            for msg in batch:
                if msg.error() is None:
                    try:  # noqa: SIM105 (a context manager per message costs more)
                        orjson.loads(msg.value())
                    except orjson.JSONDecodeError:
                        pass
            seen += len(batch)
            bar.update(len(batch))
    consumer.close()
    return total / (time.perf_counter() - started)


def baseline_flow():
    """B: the per-event Bytewax flow (built from BENCH_* environment variables)."""
    from datetime import UTC, datetime

    import bytewax.operators as op
    import bytewax.operators.windowing as win
    from bytewax.connectors.kafka import KafkaSource
    from bytewax.dataflow import Dataflow
    from bytewax.operators.windowing import EventClock, TumblingWindower
    from bytewax.testing import TestingSink

    def decode(msg):
        try:
            return orjson.loads(msg.value)
        except orjson.JSONDecodeError:
            return None

    def ts(event) -> datetime:
        return datetime.fromtimestamp(event["timestamp"] / 1000, UTC)

    flow = Dataflow("baseline_b")
    source = KafkaSource([os.environ["BENCH_BOOTSTRAP"]], [os.environ["BENCH_TOPIC"]], tail=False)
    events = op.filter_map("decode", op.input("kafka", flow, source), decode)
    events = op.filter("valid", events, lambda e: isinstance(e, dict) and isinstance(e.get("timestamp"), int))
    keyed = op.key_on("key", events, lambda e: f"{e.get('tenant')}:{e.get('type')}")
    clock = EventClock(ts, wait_for_system_duration=timedelta(seconds=5))
    windower = TumblingWindower(length=timedelta(seconds=60), align_to=datetime(2020, 1, 1, tzinfo=UTC))
    counts = win.fold_window("count", keyed, clock, windower, lambda: 0, lambda n, _e: n + 1, lambda a, b: a + b)
    op.output("out", counts.down, TestingSink([]))
    return flow


def _run_flow(argv: list[str], env: dict[str, str], total: int, label: str, progress=None) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with tqdm(total=total, desc=label, unit="ev", unit_scale=True) as bar:
        while proc.poll() is None:
            time.sleep(0.5)
            if progress:
                bar.n = min(total, progress())
                bar.refresh()
        bar.n = total
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed: {proc.stderr.read().decode()[-3000:]}")
    return total / (time.perf_counter() - started)


def _flow_env(broker: BrokerSettings, warehouse: WarehouseSettings, **stream: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPULSE_")}
    env.update(
        PYTHONPATH=str(REPO),
        EVENTPULSE_BROKER_BOOTSTRAP=broker.bootstrap,
        EVENTPULSE_BROKER_EVENTS_TOPIC=broker.events_topic,
        EVENTPULSE_WAREHOUSE_URL=warehouse.url,
        EVENTPULSE_WAREHOUSE_DATABASE=warehouse.database,
    )
    env.update({f"EVENTPULSE_STREAM_{k.upper()}": v for k, v in stream.items()})
    return env


def _steady(broker: BrokerSettings, warehouse: WarehouseSettings, rate: int, seconds: int, log: Path) -> dict:
    """Offer ``rate`` events/s for ``seconds`` to the tailing dataflow; return latency percentiles (ms)."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = f"steady-{uuid.uuid4().hex[:6]}"
    for f in admin.create_topics([NewTopic(topic, 4, 1)]).values():
        f.result()
    broker = broker.model_copy(update={"events_topic": topic})
    env = _flow_env(broker, warehouse, tail="true", metrics_interval_s="1", provisional_interval_s="1")
    flow = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "flows.events:flow"],
        env=env,
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    total = rate * seconds
    plan_start = int(time.time() * 1000) + 4000 + int(total / 30)  # after generation
    profile = TrafficProfile(tenants=20, types=10, sources=5, payload_padding=0, max_disorder_ms=100, invalid_share=0)
    factory = EventFactory(profile, seed=99)
    messages = list(tqdm(factory.messages(total, plan_start, rate_per_s=rate), total=total, desc="generate steady"))
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    while time.time() * 1000 < plan_start:
        time.sleep(0.01)
    measure_from = time.time() + seconds / 3  # skip the warm-up third
    tick = rate // 100
    for i in tqdm(range(0, total, tick), desc=f"offer {rate:,} ev/s", unit="tick"):
        due = plan_start / 1000 + i / rate
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        for m in messages[i : i + tick]:
            while True:
                try:
                    producer.produce(topic, m.value, m.key)
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    time.sleep(4)
    _stop(flow)
    client = create_client(warehouse)
    rows = client.query(
        "SELECT metric, quantileExact(0.5)(value) FROM pipeline_metrics WHERE time >= fromUnixTimestamp64Milli({t:Int64}) "
        "AND (metric LIKE 'freshness%' OR metric LIKE 'processing%' OR metric = 'events_in_per_s') GROUP BY metric",
        parameters={"t": int(measure_from * 1000)},
    ).result_rows
    return dict(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rate", type=int, default=50_000, help="steady offered load (events/s)")
    parser.add_argument("--steady-seconds", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eventpulse-bench-"))
    bport, wport = free_port(), free_port()
    broker_proc = _start(
        [sys.executable, "-m", "eventpulse.broker", "--host", "127.0.0.1", "--port", str(bport), "--partitions", "4"],
        work / "broker.log",
    )
    wh_proc = _start(
        [
            sys.executable,
            "-m",
            "eventpulse.warehouse.server",
            "--host",
            "127.0.0.1",
            "--port",
            str(wport),
            "--path",
            str(work / "warehouse"),
        ],
        work / "warehouse.log",
    )
    try:
        wait_for_port("127.0.0.1", bport, 60)
        wait_for_http(f"http://127.0.0.1:{wport}/ping", 60)
        bootstrap, topic = f"127.0.0.1:{bport}", "bench-events"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(topic, args.partitions, 1)]).values():
            f.result()
        broker = BrokerSettings(bootstrap=bootstrap, events_topic=topic)
        warehouse = WarehouseSettings(url=f"http://127.0.0.1:{wport}", database="bench")
        migrate(warehouse)

        factory = EventFactory(PROFILE, seed=1)
        start_ms = int(time.time() * 1000) - 3_600_000
        messages = list(
            tqdm(factory.messages(args.events, start_ms, rate_per_s=20_000), total=args.events, desc="generate")
        )
        size = sum(len(m.value) for m in messages) / len(messages)
        valid = sum(m.valid for m in messages)
        _produce(bootstrap, topic, messages, args.events, "produce")
        del messages

        a = baseline_a(bootstrap, topic, args.partitions, args.events)
        b_env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_BOOTSTRAP": bootstrap, "BENCH_TOPIC": topic}
        b = _run_flow(
            [sys.executable, "-m", "bytewax.run", "benchmarks.dataflow:baseline_flow()"],
            b_env,
            args.events,
            "B  per-event Bytewax",
        )
        client = create_client(warehouse)
        ours = _run_flow(
            [sys.executable, "-m", "bytewax.run", "flows.events:flow"],
            _flow_env(broker, warehouse, tail="false"),
            valid,
            "ours (to warehouse)",
            progress=lambda: client.query("SELECT count() FROM events").result_rows[0][0],
        )
        written = client.query("SELECT count() FROM events FINAL").result_rows[0][0]
        steady = _steady(broker, warehouse, args.rate, args.steady_seconds, work / "steady-flow.log")
    finally:
        _stop(wh_proc)
        _stop(broker_proc)

    print()
    print(f"{args.events:,} events of {size:.0f} B on average, {args.partitions} partitions, {os.cpu_count()} cores")
    print(f"{'run':<34}{'events/s':>12}")
    for name, value in (
        ("A  bare consumer + orjson", a),
        ("B  per-event Bytewax fold_window", b),
        ("ours end to end", ours),
    ):
        print(f"{name:<34}{value:>12,.0f}")
    print(f"ratio ours/A = {ours / a:.2f}   ours/B = {ours / b:.2f}   (raw rows written: {written:,} of {valid:,})")
    print(f"\nsteady {args.rate:,} ev/s offered for {args.steady_seconds} s (median over intervals after warm-up), ms:")
    for key in sorted(steady):
        print(f"  {key:<32}{steady[key]:>12,.1f}")


if __name__ == "__main__":
    main()
