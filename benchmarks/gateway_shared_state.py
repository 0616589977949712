"""Gateway throughput with rate limits and idempotency memory shared through Redis, against the
same gateway with its in-process ones, measured in the same run.

    .venv/bin/python benchmarks/gateway_shared_state.py [--duration 8] [--rounds 3] [--connections 64]

Starts a broker (Tansu), a warehouse server, redis-server (``make redis``), one key and two
gateways (``python -m gateway``, one process each): ``local`` without Redis and ``shared`` with
``EVENTPULSE_REDIS_URL``. Each round loads both in turn with wrk (single events, then batches of
100 and 1000), the first of the two alternating, so a swing of the shared cores hits both alike; the summary gives the median over
the rounds of shared/local per run, for throughput and for CPU per event (the steadier of the two
when other work shares the cores). The key's quota is far above the load (nothing is refused) but
the shared gateway still leases its tokens from Redis, ``rate_limit_lease_max`` (1000) per round
trip: the round trips are counted from its ``/api/metrics``. Events carry no id (as in
``benchmarks/gateway.py``), so the idempotency memory is not consulted: this measures the limiter.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.gateway import WRK_SCRIPT, cpu_seconds, event, run_wrk, start, stop_all, wait_http  # noqa: E402
from devstack.ports import free_port, wait_for_port  # noqa: E402
from eventpulse.api_keys import create_key  # noqa: E402
from eventpulse.config.warehouse import WarehouseSettings  # noqa: E402
from eventpulse.warehouse.client import create_client  # noqa: E402
from eventpulse.warehouse.schema import migrate  # noqa: E402

RUNS = {"single": ("/api/events", 1), "batch100": ("/api/events/batch", 100), "batch1000": ("/api/events/batch", 1000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64, help="wrk connections for single events.")
    parser.add_argument("--batch-connections", type=int, default=8)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gateway-shared-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        broker, wh, redis = free_port(), free_port(), free_port()
        procs.append(start([sys.executable, "-m", "devstack.broker", "--port", str(broker)], tmp / "b.log", cwd=ROOT))
        wh_argv = [sys.executable, "-m", "devstack.warehouse_server", "--port", str(wh), "--path", str(tmp / "wh")]
        procs.append(start(wh_argv, tmp / "wh.log", cwd=ROOT))
        redis_argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(redis), "--save", "", "--dir", str(tmp)]
        procs.append(start(redis_argv, tmp / "redis.log"))
        wait_http(f"http://127.0.0.1:{wh}/ping")
        wait_for_port("127.0.0.1", redis, 30)
        warehouse = WarehouseSettings(url=f"http://127.0.0.1:{wh}", database="bench")
        migrate(warehouse)
        client = create_client(warehouse, role="admin")
        key = create_key(client, "bench", rate_per_s=1e9, burst=10**9)[1]
        client.close()
        gateways: dict[str, tuple[str, subprocess.Popen]] = {}
        for name, redis_url in (("local", ""), ("shared", f"redis://127.0.0.1:{redis}/0")):
            port = free_port()
            env = {
                "EVENTPULSE_BROKER_BOOTSTRAP": f"127.0.0.1:{broker}",
                "EVENTPULSE_WAREHOUSE_URL": warehouse.url,
                "EVENTPULSE_WAREHOUSE_DATABASE": "bench",
                "EVENTPULSE_GATEWAY_PORT": str(port),
                "EVENTPULSE_GATEWAY_MAX_QUEUED_EVENTS": "1000000",
                "EVENTPULSE_REDIS_URL": redis_url,
            }
            proc = start([sys.executable, "-m", "gateway"], tmp / f"gateway-{name}.log", env, cwd=ROOT)
            procs.append(proc)
            gateways[name] = (f"http://127.0.0.1:{port}", proc)
        for url, _ in gateways.values():
            wait_http(f"{url}/api/health/ready")
        assert httpx.get(f"{gateways['shared'][0]}/api/health").json()["shared_state"]["mode"] == "redis"
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT)
        bodies = {run: tmp / f"{run}.json" for run in RUNS}
        for url, _ in gateways.values():  # warm up
            run_wrk(f"{url}/api/events/batch", _write(bodies, "batch100"), key, 4, 2, script)
        ratios: dict[str, list[float]] = {run: [] for run in RUNS}
        capacity: dict[str, list[float]] = {run: [] for run in RUNS}  # local CPU/event over shared CPU/event
        print(
            f"{'round':6} {'run':10} {'local ev/s':>11} {'shared ev/s':>12} {'shared/local':>13} {'CPU us/ev l/s':>15}"
        )
        for number in range(1, args.rounds + 1):
            for run, (route, n) in RUNS.items():
                body = _write(bodies, run)
                rates, cpu = {}, {}
                order = list(gateways) if number % 2 else list(reversed(gateways))
                for name in order:  # which goes first alternates: neither always gets the quieter minute
                    url, proc = gateways[name]
                    connections = args.connections if n == 1 else args.batch_connections
                    before = cpu_seconds(proc.pid)
                    result = run_wrk(f"{url}{route}", body, key, connections, args.duration, script)
                    assert result["errors"] == 0, result
                    rates[name] = result["rps"] * n
                    cpu[name] = (cpu_seconds(proc.pid) - before) / max(1, result["requests"] * n) * 1e6
                ratio = rates["shared"] / rates["local"]
                ratios[run].append(ratio)
                capacity[run].append(cpu["local"] / max(cpu["shared"], 1e-9))
                print(
                    f"{number:<6} {run:10} {rates['local']:11.0f} {rates['shared']:12.0f} {ratio:12.3f}x"
                    f" {cpu['local']:7.2f}/{cpu['shared']:.2f}"
                )
        metrics = httpx.get(f"{gateways['shared'][0]}/api/metrics").json()
        print(
            f"shared gateway: {metrics['rate_limit_leases']} lease round trips for {metrics['events_accepted']}"
            f" events, {metrics['shared_state_errors']} Redis errors"
        )
        print(
            "summary: median over the rounds (target >= 0.90) of shared/local throughput, and of the same-core"
            " capacity (local CPU us/event / shared CPU us/event: what the shared path costs on a busy machine)"
        )
        for run, values in ratios.items():
            cap = capacity[run]
            print(
                f"  {run:10} throughput {statistics.median(values):.3f}x (min {min(values):.3f}, max {max(values):.3f})"
                f"   capacity {statistics.median(cap):.3f}x (min {min(cap):.3f}, max {max(cap):.3f})"
            )
    finally:
        stop_all(procs)


def _write(bodies: dict[str, Path], run: str) -> Path:
    """The run's body with a fresh timestamp (the gateway refuses events too far in the past)."""
    now = int(time.time() * 1000)
    n = RUNS[run][1]
    doc = event(0, now) if n == 1 else [event(i, now) for i in range(n)]
    bodies[run].write_bytes(orjson.dumps(doc))
    return bodies[run]


if __name__ == "__main__":
    main()
