"""Dataflow throughput and latency against two baselines, measured in the same run.

    .venv/bin/python benchmarks/dataflow.py            # 1,000,000 events, 4 partitions
    .venv/bin/python benchmarks/dataflow.py --events 200000 --steady-seconds 10
    .venv/bin/python benchmarks/dataflow.py --skip-b --producer other --users-per-tenant 5000 --event-seconds 10

Starts its own Tansu broker and warehouse server on free ports, produces N generated events
(20 tenants, 10 types, 5 sources, ~1 % invalid), then drains the same topic three ways:

* A: a bare confluent-kafka consumer that decodes every message with orjson (the ceiling);
* B: a straightforward per-event Bytewax flow for the same aggregates (KafkaSource → decode → key
  by (tenant, type, source) and by tenant → fold_window per window family with an EventClock, a
  per-key accumulator with a set of users and a ``ddsketch`` DDSketch), as a typical user would
  write it;
* ours: ``flows.dataflow:flow`` end to end into the warehouse (validation, raw events, dead letters,
  10 s / 60 s / 5 min-every-1 min windows, all metrics).

Then it offers a steady 50,000 events/s (event time = send time) to the dataflow in tail mode
and reads processing latency and freshness percentiles from ``pipeline_metrics``.
"""

import argparse
import dataclasses
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

from devstack.ports import free_port, wait_for_http, wait_for_port  # noqa: E402
from devstack.traffic.broker_sender import send_to_topic  # noqa: E402
from devstack.traffic.generator import EventFactory, GeneratedMessage, TrafficProfile  # noqa: E402
from eventpulse.access.credentials import users_file_for  # noqa: E402
from eventpulse.broker.admin import producer_config  # noqa: E402
from eventpulse.config.broker import BrokerSettings  # noqa: E402
from eventpulse.config.warehouse import WarehouseSettings  # noqa: E402
from eventpulse.warehouse.client import create_client  # noqa: E402
from eventpulse.warehouse.schema import migrate  # noqa: E402

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
    """B: the per-event Bytewax flow for the same aggregates (built from BENCH_* environment variables).

    Written plainly, as a typical user would: decode each message, key it by (tenant, type,
    source) and by tenant, and ``fold_window`` every window family (10 s and 60 s tumbling,
    5 min every 1 min) into a per-key accumulator with the same metrics as ours: count, errors
    (error rate at the end), distinct users (a set), latency sum/min/max and a DDSketch (the
    ``ddsketch`` library) for p50/p95/p99. The EventClock waits an hour of system time. Even
    so, on this replayed backlog Bytewax's windowing routes most (event, window) pairs to the
    ``late`` output (~80 %, all three families; counted and printed, not aggregated): B then does
    *less* aggregation work than ours, so its rate is an upper bound for a B that kept everything.
    """
    from datetime import UTC, datetime

    import bytewax.operators as op
    import bytewax.operators.windowing as win
    from bytewax.connectors.kafka import KafkaSource
    from bytewax.connectors.stdio import StdOutSink
    from bytewax.dataflow import Dataflow
    from bytewax.operators.windowing import EventClock, SlidingWindower, TumblingWindower
    from bytewax.testing import TestingSink
    from ddsketch import DDSketch

    def decode(msg):
        try:
            event = orjson.loads(msg.value)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(event, dict) or not isinstance(event.get("timestamp"), int):
            return None
        if not isinstance(event.get("data"), dict):
            return None
        return event

    def keys(event):
        tenant = event.get("tenant")
        return [(f"{tenant}|{event.get('type')}|{event.get('source')}", event), (f"{tenant}|*|*", event)]

    def ts(event) -> datetime:
        return datetime.fromtimestamp(event["timestamp"] / 1000, UTC)

    def new_acc() -> dict:
        return {
            "count": 0,
            "errors": 0,
            "users": set(),
            "lat_n": 0,
            "lat_sum": 0.0,
            "lat_min": None,
            "lat_max": None,
            "sketch": DDSketch(relative_accuracy=0.01),
        }

    def fold(acc: dict, event: dict) -> dict:
        data = event["data"]
        acc["count"] += 1
        status = data.get("status_code")
        if event.get("type") == "error" or data.get("error") is True or (isinstance(status, int) and status >= 500):
            acc["errors"] += 1
        acc["users"].add(str(data.get("user_id", "")))
        latency = data.get("latency_ms")
        if isinstance(latency, int | float):
            acc["lat_n"] += 1
            acc["lat_sum"] += latency
            acc["lat_min"] = latency if acc["lat_min"] is None else min(acc["lat_min"], latency)
            acc["lat_max"] = latency if acc["lat_max"] is None else max(acc["lat_max"], latency)
            acc["sketch"].add(latency)
        return acc

    def merge(a: dict, b: dict) -> dict:
        a["sketch"].merge(b["sketch"])
        lows = [v for v in (a["lat_min"], b["lat_min"]) if v is not None]
        highs = [v for v in (a["lat_max"], b["lat_max"]) if v is not None]
        a.update(
            count=a["count"] + b["count"],
            errors=a["errors"] + b["errors"],
            users=a["users"] | b["users"],
            lat_n=a["lat_n"] + b["lat_n"],
            lat_sum=a["lat_sum"] + b["lat_sum"],
            lat_min=min(lows, default=None),
            lat_max=max(highs, default=None),
        )
        return a

    def row(item):
        key, (window_id, acc) = item
        sketch = acc["sketch"]
        return (
            key,
            window_id,
            acc["count"],
            acc["errors"] / acc["count"],
            len(acc["users"]),
            acc["lat_sum"],
            acc["lat_min"],
            acc["lat_max"],
            *(sketch.get_quantile_value(q) for q in (0.5, 0.95, 0.99)),
        )

    flow = Dataflow("baseline_b")
    source = KafkaSource([os.environ["BENCH_BOOTSTRAP"]], [os.environ["BENCH_TOPIC"]], tail=False)
    events = op.filter_map("decode", op.input("kafka", flow, source), decode)
    keyed = op.flat_map("key", events, keys)
    clock = EventClock(ts, wait_for_system_duration=timedelta(hours=1))
    align = datetime(2020, 1, 1, tzinfo=UTC)
    windowers = {
        "10s": TumblingWindower(length=timedelta(seconds=10), align_to=align),
        "60s": TumblingWindower(length=timedelta(seconds=60), align_to=align),
        "5m_1m": SlidingWindower(length=timedelta(minutes=5), offset=timedelta(minutes=1), align_to=align),
    }
    for name, windower in windowers.items():
        out = win.fold_window(f"agg_{name}", keyed, clock, windower, new_acc, fold, merge)
        op.output(f"rows_{name}", op.map(f"row_{name}", out.down, row), TestingSink([]))
        op.output(f"late_{name}", op.map(f"late_line_{name}", out.late, lambda _item: "late"), StdOutSink())
    return flow


def _run_flow(argv: list[str], env: dict[str, str], total: int, label: str, progress=None) -> tuple[float, int]:
    """Run a flow to its end; (seconds, lines it printed that say "late")."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=err)
        with tqdm(total=total, desc=label, unit="ev", unit_scale=True) as bar:
            while proc.poll() is None:
                time.sleep(0.2)
                if progress:
                    bar.n = min(total, progress())
                    bar.refresh()
            bar.n = total
        took = time.perf_counter() - started
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{label} failed: {err.read().decode()[-3000:]}")
        out.seek(0)
        late = sum(1 for line in out if line.startswith(b"late"))
    return took, late


def _flow_env(broker: BrokerSettings, warehouse: WarehouseSettings, **stream: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPULSE_")}
    env.update(
        PYTHONPATH=str(REPO),
        EVENTPULSE_BROKER_BOOTSTRAP=broker.bootstrap,
        EVENTPULSE_BROKER_EVENTS_TOPIC=broker.events_topic,
        **warehouse.environment(),
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
        [sys.executable, "-m", "bytewax.run", "flows.dataflow:flow"],
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
        send_to_topic(producer, topic, messages[i : i + tick])
    producer.flush(60)
    time.sleep(4)
    _stop(flow)
    client = create_client(warehouse, role="admin")
    rows = client.query(
        "SELECT metric, quantileExact(0.5)(value), max(value) FROM pipeline_metrics "
        "WHERE time >= fromUnixTimestamp64Milli({t:Int64}) AND (metric LIKE 'freshness%' "
        "OR metric LIKE 'processing%' OR metric = 'events_in_per_s' OR metric = 'emit_ms_p99' "
        "OR metric LIKE 'snapshot_wait_ms_%_p99') GROUP BY metric",
        parameters={"t": int(measure_from * 1000)},
    ).result_rows
    return {metric: (median, worst) for metric, median, worst in rows}


def other_producer(message: GeneratedMessage) -> GeneratedMessage:
    """A valid message as another producer writes the seed format: ``tenant`` in the body, fields in
    another order, no ``received_at`` or ``schema_version`` (the broker timestamp stands in)."""
    if not message.valid or message.event is None:
        return message
    event = message.event
    doc = {k: event[k] for k in ("tenant", "type", "source", "timestamp", "id", "data")}
    return dataclasses.replace(message, value=orjson.dumps(doc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rate", type=int, default=50_000, help="steady offered load (events/s)")
    parser.add_argument("--steady-seconds", type=int, default=20)
    parser.add_argument(
        "--skip-b", action="store_true", help="leave out baseline B (~9 of the ~12 minutes; ratios to B not printed)"
    )
    parser.add_argument(
        "--producer",
        choices=("gateway", "other"),
        default="gateway",
        help="message form: the gateway's exact form, or another producer's seed format (`tenant` in the body, "
        "no received_at/schema_version, other field order)",
    )
    parser.add_argument("--users-per-tenant", type=int, default=PROFILE.users_per_tenant)
    parser.add_argument("--event-seconds", type=float, default=None, help="event time the events span (default 50 s/M)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eventpulse-bench-"))
    bport, wport = free_port(), free_port()
    broker_proc = _start(
        [
            sys.executable,
            "-m",
            "devstack.broker",
            "--host",
            "127.0.0.1",
            "--port",
            str(bport),
            "--partitions",
            "4",
            "--storage",
            "memory",
        ],
        work / "broker.log",
    )
    wh_proc = _start(
        [
            sys.executable,
            "-m",
            "devstack.warehouse_server",
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
        bootstrap, topic, empty = f"127.0.0.1:{bport}", "bench-events", "bench-empty"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(t, args.partitions, 1) for t in (topic, empty)]).values():
            f.result()
        broker = BrokerSettings(bootstrap=bootstrap, events_topic=topic)
        warehouse = WarehouseSettings(
            url=f"http://127.0.0.1:{wport}", database="bench", credentials_file=users_file_for(work / "warehouse")
        )
        migrate(warehouse)

        factory = EventFactory(dataclasses.replace(PROFILE, users_per_tenant=args.users_per_tenant), seed=1)
        start_ms = int(time.time() * 1000) - 3_600_000
        rate = 20_000 if args.event_seconds is None else args.events / args.event_seconds
        messages = list(
            tqdm(factory.messages(args.events, start_ms, rate_per_s=rate), total=args.events, desc="generate")
        )
        if args.producer == "other":
            messages = [other_producer(m) for m in messages]
        size = sum(len(m.value) for m in messages) / len(messages)
        valid = sum(m.valid for m in messages)
        _produce(bootstrap, topic, messages, args.events, "produce")
        del messages

        a = baseline_a(bootstrap, topic, args.partitions, args.events)
        # Each flow runs once on an empty topic first: its fixed cost (interpreter, imports,
        # connections, shutdown), reported and taken out of the "net" rate.
        b_argv = [sys.executable, "-m", "bytewax.run", "benchmarks.dataflow:baseline_flow()"]
        b_env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_BOOTSTRAP": bootstrap, "BENCH_TOPIC": topic}
        b_fixed = b_took = b_late = None
        if not args.skip_b:
            b_fixed, _ = _run_flow(b_argv, {**b_env, "BENCH_TOPIC": empty}, 0, "B  start-up (empty topic)")
            b_took, b_late = _run_flow(b_argv, b_env, args.events, "B  per-event Bytewax")
        ours_argv = [sys.executable, "-m", "bytewax.run", "flows.dataflow:flow"]
        empty_broker = broker.model_copy(update={"events_topic": empty})
        ours_fixed, _ = _run_flow(ours_argv, _flow_env(empty_broker, warehouse, tail="false"), 0, "ours start-up")
        client = create_client(warehouse, role="admin")
        ours_took, _ = _run_flow(
            ours_argv,
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
    print(f"producer form: {args.producer}, {args.users_per_tenant:,} users per tenant, event rate {rate:,.0f}/s")
    ours, ours_net = valid / ours_took, valid / max(ours_took - ours_fixed, 1e-9)
    print(f"{'run':<34}{'seconds':>9}{'start-up':>10}{'events/s':>12}{'net ev/s':>12}")
    print(f"{'A  bare consumer + orjson':<34}{args.events / a:>9.2f}{'-':>10}{a:>12,.0f}{a:>12,.0f}")
    if b_took is not None:
        b, b_net = args.events / b_took, args.events / max(b_took - b_fixed, 1e-9)
        print(f"{'B  per-event Bytewax fold_window':<34}{b_took:>9.2f}{b_fixed:>10.2f}{b:>12,.0f}{b_net:>12,.0f}")
    print(f"{'ours end to end':<34}{ours_took:>9.2f}{ours_fixed:>10.2f}{ours:>12,.0f}{ours_net:>12,.0f}")
    print("(net: events / (seconds - the same flow's start-up on an empty topic); A times only its consume loop)")
    print(f"ratio ours/A = {ours_net / a:.2f} net, {ours / a:.2f} with start-up")
    if b_took is not None:
        print(f"ratio ours/B = {ours_net / b_net:.2f} net, {ours / b:.2f} with start-up")
        print(f"B dropped {b_late:,} (event, window) pairs as late")
    print(f"raw rows written: {written:,} of {valid:,} valid")
    print(f"\nsteady {args.rate:,} ev/s offered for {args.steady_seconds} s, per metrics interval (1 s) after warm-up:")
    print(f"  {'metric (ms, or events/s)':<32}{'median':>12}{'worst':>12}")
    for key in sorted(steady):
        median, worst = steady[key]
        print(f"  {key:<32}{median:>12,.1f}{worst:>12,.1f}")


if __name__ == "__main__":
    main()
