"""Query API latency: dashboard-sized queries over a day of aggregates at 1,000 events/s.

    python benchmarks/query_api.py [--hours 24] [--clients 32] [--requests 20] [--keep DIR]

Starts a local warehouse server on a free port, fills a fresh database with the same day of
``window_aggregates`` as benchmarks/dashboards.py, creates a ``read`` key per tenant and starts
the gateway (``python -m gateway``). Then ``--clients`` concurrent clients each send
``--requests`` ``GET /api/metrics/query`` requests (a day of one metric, hourly buckets, broken
down by type, for a tenant; three metrics in turn), first cold (every request a distinct query:
no cache hit) and then warm (the same requests again: answered from the gateway's cache). The
baseline, in the same run, is the equivalent SQL sent straight to the warehouse with
clickhouse-connect as the reader by as many threads (``WHERE tenant = ...``, no scoping, no HTTP
API), over the same ranges as the cold run (the warehouse caches no answers). Until 2026-12-03 the
baseline's ranges were shifted 69 days back, before the data: it timed empty reads. Prints p50/p99 per run and the ratios. ``--keep DIR`` keeps the warehouse's data in DIR and
reuses it on the next run with the same ``--keep`` (the fill takes minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eventpulse.api_keys import create_key  # noqa: E402
from eventpulse.config.warehouse import WarehouseSettings  # noqa: E402
from eventpulse.warehouse.client import create_client  # noqa: E402
from eventpulse.warehouse.schema import migrate  # noqa: E402
from gateway.query import MetricQuery  # noqa: E402

METRICS = ("event_count", "error_rate", "latency_p95")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


def cpu_seconds() -> dict[str, float]:
    """CPU time so far of this process (the clients), the gateway and the warehouse server."""
    out = {"clients": sum(psutil.Process().cpu_times()[:2])}
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            name = "warehouse" if "warehouse_server" in cmdline else "gateway" if "gateway" in cmdline else None
            if name:
                out[name] = out.get(name, 0.0) + sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return out


def measured(run, *args) -> tuple[dict[str, float], dict[str, float]]:
    """``run(*args)``'s latency percentiles and the CPU milliseconds per request of each process."""
    before = cpu_seconds()
    samples = run(*args)
    after = cpu_seconds()
    cpu = {name: (after[name] - before.get(name, 0.0)) * 1000 / len(samples) for name in after}
    return percentiles(samples), cpu


def requests_for(tenants: int, count: int, end: datetime, offset: int) -> list[tuple[int, dict[str, str]]]:
    """``count`` (tenant index, query parameters) pairs; ``offset`` shifts the range so a run misses the cache."""
    out = []
    for i in range(count):
        shift = timedelta(minutes=offset + i)
        params = {
            "metric": METRICS[i % len(METRICS)],
            "start": (end - timedelta(days=1) - shift).isoformat(),
            "end": (end - shift).isoformat(),
            "granularity": "3600",
            "breakdown": "type",
        }
        out.append((i % tenants, params))
    return out


async def api_run(url: str, keys: list[str], plan: list[list[tuple[int, dict[str, str]]]]) -> list[float]:
    """Each client one keep-alive connection, sending its requests one after the other.

    A minimal HTTP/1.1 client on asyncio streams (~0.1 ms of CPU per request): httpx spent
    ~4 ms per request here, on the same two cores as the gateway and the warehouse, which made
    the client the bottleneck of the measurement."""
    latencies: list[float] = []
    host, port = url.removeprefix("http://").split(":")

    async def client(requests: list[tuple[int, dict[str, str]]]) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for tenant, params in requests:
                head = (
                    f"GET /api/metrics/query?{urlencode(params)} HTTP/1.1\r\nHost: {host}\r\n"
                    f"X-API-Key: {keys[tenant]}\r\n\r\n"
                )
                started = time.perf_counter()
                writer.write(head.encode())
                status, _, rest = (await reader.readuntil(b"\r\n\r\n")).partition(b"\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in rest.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                assert status.split()[1] == b"200", body[:500]
        finally:
            writer.close()

    await asyncio.gather(*(client(requests) for requests in plan))
    return latencies


def direct_run(settings: WarehouseSettings, plan: list[list[tuple[int, dict[str, str]]]]) -> list[float]:
    latencies: list[float] = []

    def client(requests: list[tuple[int, dict[str, str]]]) -> None:
        conn = create_client(settings, role="reader", autogenerate_session_id=False)
        for tenant, params in requests:
            query = MetricQuery(
                params["metric"],
                datetime.fromisoformat(params["start"]),
                datetime.fromisoformat(params["end"]),
                int(params["granularity"]),
                params["breakdown"],
                window_s=60,  # what the gateway picks for hourly buckets
            )
            sql, bound = query.sql()
            sql = sql.replace("WHERE ", "WHERE tenant = {tenant:String} AND ", 1)
            started = time.perf_counter()
            conn.query(sql, parameters={**bound, "tenant": f"tenant-{tenant:02d}"})
            latencies.append(time.perf_counter() - started)
        conn.close()

    with ThreadPoolExecutor(len(plan)) as pool:
        list(pool.map(client, plan))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20, help="requests per client per run")
    parser.add_argument("--keep", type=Path, help="keep the warehouse data here and reuse it on the next run")
    args = parser.parse_args()
    dashboards = _load("dashboards")
    gateway_bench = _load("gateway")
    filled = args.keep / f"filled-{args.hours}h-{args.rate:g}" if args.keep else None
    with dashboards.local_server(args.keep) as url, tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        database = filled.read_text().strip() if filled and filled.exists() else f"bench_{uuid.uuid4().hex[:8]}"
        settings = WarehouseSettings(url=url, database=database)
        migrate(settings)
        if filled is None or not filled.exists():
            started = time.perf_counter()
            dashboards.fill(settings, args.rate, args.hours, raw_events=False)
            print(f"filled {args.hours} h of aggregates in {time.perf_counter() - started:.0f} s", flush=True)
            if filled is not None:
                filled.write_text(database)
        tenants = dashboards.TENANTS
        admin = create_client(settings, role="admin")
        keys = [create_key(admin, f"tenant-{t:02d}", ("read",))[1] for t in range(tenants)]
        admin.close()
        port = gateway_bench.free_port()
        env = {
            **settings.environment(),
            "EVENTPULSE_BROKER_BOOTSTRAP": "127.0.0.1:9",  # the query API needs no broker
            "EVENTPULSE_GATEWAY_PORT": str(port),
            "EVENTPULSE_GATEWAY_QUERY_RATE_PER_S": "1000000",
            "EVENTPULSE_GATEWAY_QUERY_BURST": "1000000",
            "EVENTPULSE_GATEWAY_QUERY_CACHE_TTL_S": "600",
            "EVENTPULSE_GATEWAY_QUERY_CACHE_ENTRIES": "100000",
        }
        gateway = gateway_bench.start([sys.executable, "-m", "gateway"], Path(tmp) / "gateway.log", env, cwd=REPO)
        try:
            api = f"http://127.0.0.1:{port}"
            gateway_bench.wait_http(f"{api}/api/health")
            time.sleep(2.5)  # the key cache's first reload
            end = datetime.now(tz=UTC).replace(second=0, microsecond=0)
            n = args.requests

            def plan(offset: int) -> list[list[tuple[int, dict[str, str]]]]:
                return [requests_for(tenants, n, end, offset + c * n) for c in range(args.clients)]

            cold_plan = plan(0)

            def via_api(plan):
                return asyncio.run(api_run(api, keys, plan))

            results = {
                "direct (clickhouse-connect, same SQL)": measured(direct_run, settings, cold_plan),
                "query API cold (no cache hit)": measured(via_api, cold_plan),
                "query API warm (cached)": measured(via_api, cold_plan),
            }
            gauges = httpx.get(f"{api}/api/metrics").json()
        finally:
            gateway.terminate()
            gateway.wait(30)
    base = results["direct (clickhouse-connect, same SQL)"][0]
    print(f"{args.clients} clients x {n} requests, a day of {', '.join(METRICS)} by type, hourly buckets")
    for name, (r, cpu) in results.items():
        ratio = f"{r['p99_ms'] / base['p99_ms']:.2f}x direct p99" if r is not base else "baseline"
        print(f"  {name:40s} p50 {r['p50_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms   ({ratio}, n={r['n']})")
        print(f"  {'':40s} CPU ms per request: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items())))
    hit = {k: gauges.get(k) for k in ("query_cache_hits", "query_cache_misses", "query_cache_hit_ratio")}
    print(f"gateway: {hit}, answer time (ms, the service's view): {gauges.get('query_latency_ms')}")


if __name__ == "__main__":
    main()
