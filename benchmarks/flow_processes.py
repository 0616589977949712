"""Scaling efficiency of the dataflow over Bytewax processes, measured in one run.

    .venv/bin/python benchmarks/flow_processes.py                    # 300,000 events, 1/2/4 processes
    .venv/bin/python benchmarks/flow_processes.py --events 100000 --processes 1 2

Starts its own Tansu broker and warehouse server on free ports, produces N generated events to a
4-partition topic, then drains it with 1, 2 and 4 flow processes (``-i/-a``, one worker each,
``EVENTPULSE_STREAM_KEY_BUCKETS`` = the process count), each time into a fresh database:

* ``process``: the sink partitions of `flows.placement` (each process writes the rows it made);
* ``single``: the single sink partition of before (every row goes to one process), for comparison.

For each run: wall time, the CPU time of every flow process (``wait4`` rusage, user + system) minus
the same configuration's CPU on an empty topic (start-up, connections, shutdown), the warehouse
server's CPU, and the CPU-µs per event as a ratio to one process in the same run. The window
rows of every run are compared with the 1-process run: the results must be identical.
On a 2-core machine 4 processes oversubscribe the cores: compare CPU per event, not wall time.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.dataflow import PROFILE, _flow_env, _produce, _start, _stop  # noqa: E402
from devstack.ports import free_port, wait_for_http, wait_for_port  # noqa: E402
from devstack.traffic.generator import EventFactory  # noqa: E402
from eventpulse.access.credentials import users_file_for  # noqa: E402
from eventpulse.aggregation.compare import compare_rows  # noqa: E402
from eventpulse.aggregation.reconcile import stream_rows  # noqa: E402
from eventpulse.aggregation.spec import window_specs  # noqa: E402
from eventpulse.config.broker import BrokerSettings  # noqa: E402
from eventpulse.config.warehouse import WarehouseSettings  # noqa: E402
from eventpulse.warehouse.client import create_client  # noqa: E402
from eventpulse.warehouse.schema import migrate  # noqa: E402

EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@dataclass(frozen=True)
class Run:
    wall_s: float
    flow_cpu_s: float
    warehouse_cpu_s: float


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drain(processes: int, env: dict[str, str], warehouse_pid: int, log_dir: Path) -> Run:
    """Run ``processes`` flow processes to the end of the topic; their CPU from ``wait4``."""
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    env = {**env, "EVENTPULSE_STREAM_KEY_BUCKETS": str(processes)}
    warehouse_before, started = _process_cpu_s(warehouse_pid), time.perf_counter()
    procs = []
    for index in range(processes):
        argv = [sys.executable, "-m", "bytewax.run", "flows.dataflow:flow", "-w", "1"]
        if processes > 1:
            argv += ["-i", str(index), "-a", addresses]
        with (log_dir / f"flow-{processes}-{index}-{uuid.uuid4().hex[:6]}.log").open("ab") as out:
            procs.append(subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT))
    cpu = 0.0
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"a flow process exited with {proc.returncode}: see {log_dir}")
        cpu += usage.ru_utime + usage.ru_stime
    return Run(time.perf_counter() - started, cpu, _process_cpu_s(warehouse_pid) - warehouse_before)


def _windows(warehouse: WarehouseSettings) -> list[dict]:
    client = create_client(warehouse, role="admin")
    try:
        return [row for w in window_specs((10, 60), ((300, 60),)) for row in stream_rows(client, w, *EVERYTHING)]
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eventpulse-scale-"))
    bport, wport = free_port(), free_port()
    broker_argv = ["-m", "devstack.broker", "--host", "127.0.0.1", "--port", str(bport), "--storage", "memory"]
    broker_proc = _start([sys.executable, *broker_argv, "--partitions", str(args.partitions)], work / "broker.log")
    wh_argv = ["-m", "devstack.warehouse_server", "--host", "127.0.0.1", "--port", str(wport)]
    wh_proc = _start([sys.executable, *wh_argv, "--path", str(work / "warehouse")], work / "warehouse.log")
    results: dict[tuple[str, int], tuple[Run, Run, bool]] = {}
    try:
        wait_for_port("127.0.0.1", bport, 60)
        wait_for_http(f"http://127.0.0.1:{wport}/ping", 60)
        bootstrap, topic, empty = f"127.0.0.1:{bport}", "scale-events", "scale-empty"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(t, args.partitions, 1) for t in (topic, empty)]).values():
            f.result()
        start_ms = int(time.time() * 1000) - 3_600_000
        factory = EventFactory(PROFILE, seed=3)
        messages = list(tqdm(factory.messages(args.events, start_ms, rate_per_s=20_000), total=args.events))
        _produce(bootstrap, topic, messages, args.events, "produce")
        del messages
        broker = BrokerSettings(bootstrap=bootstrap, events_topic=topic)
        credentials = users_file_for(work / "warehouse")
        reference: list[dict] | None = None
        runs = [(mode, n) for mode in ("process", "single") for n in args.processes]
        for mode, n in tqdm(runs, desc="runs"):
            fixed_db = WarehouseSettings(url=f"http://127.0.0.1:{wport}", database=f"e_{mode}_{n}",
                                         credentials_file=credentials)  # fmt: skip
            db = fixed_db.model_copy(update={"database": f"s_{mode}_{n}"})
            migrate(fixed_db)
            migrate(db)
            on_empty = broker.model_copy(update={"events_topic": empty})
            fixed = _drain(n, _flow_env(on_empty, fixed_db, tail="false", sink_parts=mode), wh_proc.pid, work)
            run = _drain(n, _flow_env(broker, db, tail="false", sink_parts=mode), wh_proc.pid, work)
            rows = _windows(db)
            reference = reference if reference is not None else rows
            results[(mode, n)] = (run, fixed, not compare_rows(rows, reference))
    finally:
        _stop(wh_proc)
        _stop(broker_proc)

    print(f"\n{args.events:,} events, {args.partitions} partitions, {os.cpu_count()} cores; one worker per process")
    head = f"{'sink parts':<12}{'procs':>6}{'wall s':>8}{'flow CPU s':>12}{'start-up':>10}"
    print(head + f"{'µs/event':>10}{'× 1 proc':>10}{'warehouse µs/ev':>17}{'same results':>14}")
    for mode in ("process", "single"):
        base = None
        for n in args.processes:
            run, fixed, same = results[(mode, n)]
            per_event = (run.flow_cpu_s - fixed.flow_cpu_s) / args.events * 1e6
            base = base or per_event
            wh = (run.warehouse_cpu_s - fixed.warehouse_cpu_s) / args.events * 1e6
            print(
                f"{mode:<12}{n:>6}{run.wall_s:>8.1f}{run.flow_cpu_s:>12.1f}{fixed.flow_cpu_s:>10.1f}"
                f"{per_event:>10.1f}{per_event / base:>10.2f}{wh:>17.1f}{'yes' if same else 'NO':>14}"
            )
    print("(µs/event: flow CPU net of the same configuration's run on an empty topic; × 1 proc: same sink mode)")


if __name__ == "__main__":
    main()
