"""Run the real pipeline from tests: produce messages, run the dataflow until the topic is drained.

Other areas use this to fill a warehouse with real data::

    produce(broker.bootstrap, broker.events_topic, (m.key, m.value) for m in EventFactory().messages(1000, t0))
    run_flow_until_drained(broker, warehouse)
"""

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from pathlib import Path

from confluent_kafka import Producer

from devstack.traffic.generator import GeneratedMessage
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from tests.support.services import free_port

REPO = Path(__file__).resolve().parents[2]

Message = tuple[bytes | None, bytes] | GeneratedMessage


def produce(bootstrap: str, topic: str, messages: Iterable[Message]) -> int:
    """Produce ``(key, value)`` pairs (or `GeneratedMessage`s) with an idempotent producer; flush; return the count."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "message.max.bytes": 2_000_000,
        }
    )
    count = 0
    for message in messages:
        key, value = (message.key, message.value) if isinstance(message, GeneratedMessage) else message
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("messages left unacknowledged by the broker")
    return count


def flow_env(
    broker: BrokerSettings,
    warehouse: WarehouseSettings,
    *,
    tail: bool = False,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a flow process needs for ``broker`` and ``warehouse``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPULSE_")}
    env.update(
        EVENTPULSE_BROKER_BOOTSTRAP=broker.bootstrap,
        EVENTPULSE_BROKER_EVENTS_TOPIC=broker.events_topic,
        EVENTPULSE_BROKER_DEAD_LETTER_TOPIC=broker.dead_letter_topic,
        **warehouse.environment(),
        EVENTPULSE_STREAM_TAIL="true" if tail else "false",
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.update(extra_env or {})
    return env


def flow_command(
    workers: int = 1,
    recovery_dir: Path | None = None,
    snapshot_s: int = 1,
    *,
    process: int | None = None,
    addresses: Sequence[str] = (),
) -> list[str]:
    """``python -m bytewax.run flows.dataflow:flow`` with workers and, optionally, recovery and
    ``-i process -a addresses`` (one process of a Bytewax cluster)."""
    argv = [sys.executable, "-m", "bytewax.run", "flows.dataflow:flow", "-w", str(workers)]
    if process is not None:
        argv += ["-i", str(process), "-a", ";".join(addresses)]
    if recovery_dir is not None:
        argv += ["-r", str(recovery_dir), "-s", str(snapshot_s), "-b", "0"]
    return argv


def init_recovery(directory: Path, partitions: int = 1) -> None:
    """``python -m bytewax.recovery DIR N``: create the recovery partitions."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(directory), str(partitions)], check=True)


def committed_epoch(recovery: Path) -> int:
    """The epoch a restart from ``recovery`` would resume from (0 before the first commit)."""
    with closing(sqlite3.connect(recovery / "part-0.sqlite3", timeout=5)) as db:
        row = db.execute("SELECT max(commit_epoch) FROM commits").fetchone()
    return row[0] or 0


def start_flow(
    broker: BrokerSettings,
    warehouse: WarehouseSettings,
    *,
    workers: int = 1,
    tail: bool = False,
    recovery_dir: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen:
    """Start the real dataflow as a subprocess (its own session, so it can be killed alone)."""
    out = log.open("ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            flow_command(workers, recovery_dir),
            env=flow_env(broker, warehouse, tail=tail, extra_env=extra_env),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log:
            out.close()


def run_flow_cluster_until_drained(
    broker: BrokerSettings,
    warehouse: WarehouseSettings,
    processes: int,
    *,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    recovery_dir: Path | None = None,
    log_dir: Path,
) -> float:
    """`run_flow_until_drained` with ``processes`` Bytewax processes of one worker each (``-i/-a``
    on free local ports); every process must exit 0."""
    started = time.monotonic()
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(processes)]
    env = flow_env(broker, warehouse, tail=False, extra_env=extra_env)
    procs: list[tuple[subprocess.Popen, Path]] = []
    for index in range(processes):
        log = log_dir / f"flow-{index}.log"
        with log.open("ab") as out:
            argv = flow_command(1, recovery_dir, process=index, addresses=addresses)
            procs.append((subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT), log))
    try:
        for proc, log in procs:
            code = proc.wait(max(1.0, timeout - (time.monotonic() - started)))
            if code != 0:
                raise RuntimeError(f"flow process exited with {code}:\n{log.read_text()[-4000:]}")
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"the flow cluster did not drain in {timeout}s") from None
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return time.monotonic() - started


def run_flow_until_drained(
    broker: BrokerSettings,
    warehouse: WarehouseSettings,
    *,
    workers: int = 1,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    recovery_dir: Path | None = None,
    log: Path | None = None,
) -> float:
    """Run the dataflow with ``EVENTPULSE_STREAM_TAIL=false`` until it has read the whole topic,
    closed every window and written everything; return the seconds it took.

    Raises if it fails or takes longer than ``timeout``.
    """
    started = time.monotonic()
    log = log or Path(os.environ.get("TMPDIR", "/tmp")) / f"flow-{os.getpid()}-{time.monotonic_ns()}.log"
    proc = start_flow(
        broker, warehouse, workers=workers, tail=False, recovery_dir=recovery_dir, extra_env=extra_env, log=log
    )
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise TimeoutError(f"dataflow did not drain in {timeout}s:\n{log.read_text()[-4000:]}") from None
    if code != 0:
        raise RuntimeError(f"dataflow exited with {code}:\n{log.read_text()[-4000:]}")
    return time.monotonic() - started
