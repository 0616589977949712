"""A well-behaved tenant's latency while 1,000 slow clients hold connections, against no slow clients, in one run.

    .venv/bin/python benchmarks/gateway_slow_clients.py [--duration 15] [--rounds 3] [--slow 1000]
        [--connections 64] [--trickle-s 1.0] [--header-timeout-s 10] [--body-timeout-s 30] [--max-connections 4096]

Loopback only, bounded in time and count. Starts its own broker (Tansu), warehouse server, a key
and the gateway (``python -m gateway``, with the deadline settings given), then runs ``--rounds`` rounds
of three loads of ``--duration`` seconds each on the same gateway, one after the other:

* **no slow clients**: wrk (``apt-get install wrk``) posting single events on ``--connections``
  keep-alive connections (the well-behaved tenant);
* **slow headers**: the same wrk load while a separate process keeps ``--slow`` connections open
  that send a request's headers one byte every ``--trickle-s`` seconds, never ending them, and
  reconnects each one the gateway closes;
* **slow bodies**: likewise, with complete headers (``Content-Length: 1000000``) and a body sent
  one byte every ``--trickle-s`` seconds.

Printed per load: the tenant's requests/s, p50/p99 and errors, and the slow clients' side:
connections opened, how many the gateway closed with 408, and the most open at once; then the
median over the rounds of each round's p99 ratio (slow load over that round's load without slow
clients), because the shared cores' speed drifts from minute to minute. With
``--header-timeout-s 0 --body-timeout-s 0`` the gateway has no deadlines (uvicorn as it was).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.gateway import WRK_SCRIPT, event, run_wrk, start, wait_http  # noqa: E402
from eventpulse.config.warehouse import WarehouseSettings  # noqa: E402
from eventpulse.stack.ports import free_port  # noqa: E402
from eventpulse.warehouse.client import create_client  # noqa: E402
from eventpulse.warehouse.setup import migrate  # noqa: E402
from gateway.api_keys import create_key  # noqa: E402

HOST = "127.0.0.1"


async def _slow_client(port: int, kind: str, key: str, trickle_s: float, stop: float, stats: dict) -> None:
    """One slow connection at a time, reopened whenever the gateway closes it, until ``stop``."""
    head = f"POST /api/events HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
    if kind == "body":
        head += "Content-Length: 1000000\r\n\r\n"
    else:
        head += "X-Pad: "  # a header line that never ends
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(trickle_s)
            continue
        stats["opened"] += 1
        stats["open"] += 1
        stats["max_open"] = max(stats["max_open"], stats["open"])
        try:
            writer.write(head.encode())
            while time.monotonic() < stop:
                try:
                    got = await asyncio.wait_for(reader.read(4096), trickle_s)
                except TimeoutError:
                    writer.write(b"a")  # one more byte, still not done
                    continue
                stats["closed_408" if got.startswith(b"HTTP/1.1 408") else "closed_other"] += 1
                break
        except OSError:
            stats["closed_other"] += 1
        finally:
            stats["open"] -= 1
            writer.close()


async def _slow_clients(port: int, kind: str, key: str, count: int, trickle_s: float, seconds: float) -> dict:
    stats = dict(opened=0, open=0, max_open=0, closed_408=0, closed_other=0, connect_errors=0)
    stop = time.monotonic() + seconds
    tasks = []
    for _ in range(count):  # ramp up over ~1 s
        tasks.append(asyncio.create_task(_slow_client(port, kind, key, trickle_s, stop, stats)))
        await asyncio.sleep(1.0 / count)
    print("READY", flush=True)
    await asyncio.gather(*tasks)
    return stats


def slow_clients_main(argv: list[str]) -> None:
    """``--slow-clients PORT KIND KEY COUNT TRICKLE_S SECONDS``: the slow side, in its own process."""
    port, kind, key, count, trickle_s, seconds = argv
    stats = asyncio.run(_slow_clients(int(port), kind, key, int(count), float(trickle_s), float(seconds)))
    print("STATS " + orjson.dumps(stats).decode(), flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--slow-clients"]:
        return slow_clients_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds of each load (wrk).")
    parser.add_argument("--slow", type=int, default=1000, help="Slow connections held open (at most 5,000).")
    parser.add_argument("--connections", type=int, default=64, help="The well-behaved tenant's connections.")
    parser.add_argument("--trickle-s", type=float, default=1.0, help="A slow client sends one byte this often.")
    parser.add_argument("--header-timeout-s", type=float, default=10.0)
    parser.add_argument("--body-timeout-s", type=float, default=30.0)
    parser.add_argument("--max-connections", type=int, default=4096)
    parser.add_argument(
        "--rounds", type=int, default=3, help="Rounds of the three loads; medians of the per-round p99 ratios."
    )
    args = parser.parse_args()
    if not 0 < args.slow <= 5000 or not 0 < args.duration <= 120 or not 0 < args.rounds <= 10:
        parser.error("--slow is 1..5000, --duration at most 120 s, --rounds 1..10 (this is a bounded benchmark)")
    if not shutil.which("wrk"):
        parser.error("needs wrk: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="gateway-slow-"))
    procs: list[subprocess.Popen] = []
    try:
        broker_port, wh_port, gw_port = free_port(), free_port(), free_port()
        procs.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "eventpulse.broker",
                    "--port",
                    str(broker_port),
                    "--partitions",
                    "4",
                    "--storage",
                    "memory",
                ],
                tmp / "broker.log",
                cwd=ROOT,
            )
        )
        procs.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "eventpulse.warehouse.server",
                    "--port",
                    str(wh_port),
                    "--path",
                    str(tmp / "wh"),
                ],
                tmp / "warehouse.log",
                cwd=ROOT,
            )
        )
        wait_http(f"http://{HOST}:{wh_port}/ping")
        warehouse = WarehouseSettings(url=f"http://{HOST}:{wh_port}", database="bench")
        migrate(warehouse)
        client = create_client(warehouse)
        key = create_key(client, "bench", rate_per_s=1e9, burst=10**9)[1]
        client.close()
        env = {
            "EVENTPULSE_BROKER_BOOTSTRAP": f"{HOST}:{broker_port}",
            "EVENTPULSE_WAREHOUSE_URL": warehouse.url,
            "EVENTPULSE_WAREHOUSE_DATABASE": "bench",
            "EVENTPULSE_GATEWAY_HOST": HOST,
            "EVENTPULSE_GATEWAY_PORT": str(gw_port),
            "EVENTPULSE_GATEWAY_MAX_QUEUED_EVENTS": "1000000",
            "EVENTPULSE_GATEWAY_HEADER_TIMEOUT_S": str(args.header_timeout_s),
            "EVENTPULSE_GATEWAY_BODY_TIMEOUT_S": str(args.body_timeout_s),
            "EVENTPULSE_GATEWAY_MAX_CONNECTIONS": str(args.max_connections),
            "EVENTPULSE_GATEWAY_LOG_REQUESTS": "none",
        }
        procs.append(start([sys.executable, "-m", "gateway"], tmp / "gateway.log", env, cwd=ROOT))
        gw = f"http://{HOST}:{gw_port}"
        wait_http(f"{gw}/api/health/ready")
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT)
        body = tmp / "single.json"
        body.write_bytes(orjson.dumps(event(0, int(time.time() * 1000))))
        run_wrk(f"{gw}/api/events", body, key, args.connections, 2, script)  # warm up
        rows = []
        for kind in ("none", "headers", "body") * args.rounds:
            slow = None
            stats = None
            if kind != "none":
                seconds = args.duration + 3
                argv = [sys.executable, __file__, "--slow-clients", str(gw_port), kind, key]
                argv += [str(args.slow), str(args.trickle_s), str(seconds)]
                slow = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
                assert slow.stdout is not None
                if slow.stdout.readline().strip() != "READY":
                    raise RuntimeError("slow clients did not start")
            result = run_wrk(f"{gw}/api/events", body, key, args.connections, args.duration, script)
            if slow is not None:
                out, _ = slow.communicate(timeout=args.duration + 30)
                stats = orjson.loads(out.split("STATS ", 1)[1])
            rows.append((kind, result, stats))
        print(
            f"{os.cpu_count()} cores shared by broker, warehouse, gateway, wrk and the slow clients; {args.duration:g} s"
            f" per load; tenant: {args.connections} wrk connections posting single events; slow clients: {args.slow},"
            f" a byte every {args.trickle_s:g} s; gateway: header_timeout_s={args.header_timeout_s:g}"
            f" body_timeout_s={args.body_timeout_s:g} max_connections={args.max_connections};"
            f" load average at the end: {os.getloadavg()[0]:.2f}"
        )
        print(
            f"{'slow clients':14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99 vs none':>12} {'errors':>7}"
            f" {'slow opened':>12} {'closed 408':>11} {'closed other':>13} {'max open':>9}"
        )
        ratios: dict[str, list[float]] = {"none": [], "headers": [], "body": []}
        for number, at in enumerate(range(0, len(rows), 3), 1):
            print(f"round {number}")
            base_p99 = rows[at][1]["p99"]
            for kind, r, s in rows[at : at + 3]:
                s = s or {}
                ratios[kind].append(r["p99"] / base_p99)
                print(
                    f"  {kind:12} {r['rps']:8.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['p99'] / base_p99:11.2f}x"
                    f" {r['errors']:7d} {s.get('opened', 0):12d} {s.get('closed_408', 0):11d}"
                    f" {s.get('closed_other', 0):13d} {s.get('max_open', 0):9d}"
                )
        p99s = {kind: [r["p99"] for k, r, _ in rows if k == kind] for kind in ratios}
        for kind in ("headers", "body"):
            print(
                f"median over {args.rounds} round(s), slow {kind}: tenant p99 {statistics.median(p99s[kind]):.1f} ms"
                f" against {statistics.median(p99s['none']):.1f} ms without slow clients;"
                f" median ratio {statistics.median(ratios[kind]):.2f}x ({min(ratios[kind]):.2f}-{max(ratios[kind]):.2f})"
            )
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
