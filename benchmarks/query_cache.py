"""Dashboard query latency at 32 concurrent clients with the Redis query cache and without it, in the
same run.

    .venv/bin/python benchmarks/query_cache.py [--hours 6] [--clients 32] [--queries 40]

Starts a warehouse server and redis-server on free ports, fills a database with ``--hours`` of
60 s window aggregates at 1,000 events/s (the rows ``benchmarks/dashboards.py`` writes), then runs
the historical page's per-tenant series query (20 tenants, the page's own SQL and parameters) from
``--clients`` threads, ``--queries`` each, through `eventpulse.cache.query_cache.QueryCache`: once
without Redis (every call runs the query), with it and the data version read from ``system.parts``
on every call (``version_s`` 0: exact), with the version shared for 1 s (the default), and the same
with no result kept in the process's memory (every hit read from Redis, as a process that did not
run the query itself reads it). The first call per tenant (a warm-up, not measured) runs the query,
the rest are hits. Prints p50/p95/p99 of each and the hit
ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.dashboards import _AGGREGATES, SOURCES, TENANTS, TYPES, _dt, local_server  # noqa: E402
from devstack.ports import free_port, wait_for_port  # noqa: E402
from eventpulse.cache.client import sync_client  # noqa: E402
from eventpulse.cache.query_cache import QueryCache  # noqa: E402
from eventpulse.config.redis import RedisSettings  # noqa: E402
from eventpulse.config.warehouse import WarehouseSettings  # noqa: E402
from eventpulse.warehouse.client import create_client  # noqa: E402
from eventpulse.warehouse.schema import migrate  # noqa: E402

SQL = """
    SELECT toStartOfInterval(window_start, INTERVAL 300 SECOND) AS bucket,
           sum(event_count) AS events, sum(error_count) AS errors,
           sum(latency_count) AS latency_count
    FROM window_aggregates FINAL
    WHERE tenant = {tenant:String} AND type = '*' AND source = '*'
      AND window_seconds = 60 AND slide_seconds = 60
      AND window_start >= {start:DateTime64(3, 'UTC')} AND window_start < {end:DateTime64(3, 'UTC')}
    GROUP BY bucket ORDER BY bucket"""


def fill(warehouse: WarehouseSettings, rate: float, hours: int) -> int:
    """``hours`` of 60 s windows for 20 tenants x (10 types x 5 sources + the tenant-wide row), as
    ``benchmarks/dashboards.py`` writes them (its other tables are not read here)."""
    client = create_client(warehouse.model_copy(update={"query_timeout_s": 3600.0}), role="admin")
    end_s = int(time.time()) // 60 * 60 + 60
    per_tenant = TYPES * SOURCES + 1
    keys = TENANTS * per_tenant
    parameters = {"window": 60, "slide": 60, "start": _dt(end_s - hours * 3600), "open_from": _dt(end_s - 120)}
    parameters |= {"keys": keys, "per_tenant": per_tenant, "sources": SOURCES, "seed": 60, "rate": rate}
    parameters |= {"tenants": TENANTS, "combos": per_tenant - 1, "rows": hours * 60 * keys}
    sql = _AGGREGATES.replace("{table}", "window_aggregates")
    client.command(sql, parameters=parameters, settings={"max_execution_time": 3600})
    rows = int(client.query("SELECT count() FROM window_aggregates").result_rows[0][0])
    client.close()
    return rows


def run(cache: QueryCache, warehouse: WarehouseSettings, clients: int, queries: int, hours: int) -> np.ndarray:
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(hours=hours)

    def client_loop(number: int) -> list[float]:
        client = create_client(warehouse, role="admin", autogenerate_session_id=False)
        out = []
        for i in range(queries):
            params = {"tenant": f"tenant-{(number + i) % TENANTS:02d}", "start": start, "end": end}
            started = time.perf_counter()
            cache.frame(client, SQL, params, {"max_execution_time": 30})
            out.append((time.perf_counter() - started) * 1000)
        client.close()
        return out

    client = create_client(warehouse, role="admin", autogenerate_session_id=False)
    for tenant in range(TENANTS):  # warm-up, not measured: the steady state of a dashboard in use
        params = {"tenant": f"tenant-{tenant:02d}", "start": start, "end": end}
        cache.frame(client, SQL, params, {"max_execution_time": 30})
    client.close()
    with ThreadPoolExecutor(clients) as pool:
        return np.array([ms for result in pool.map(client_loop, range(clients)) for ms in result])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=6)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--queries", type=int, default=40)
    args = parser.parse_args()
    with local_server() as url, tempfile.TemporaryDirectory(prefix="bench-qc-") as tmp:
        port = free_port()
        redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_for_port("127.0.0.1", port, 30)
            warehouse = WarehouseSettings(url=url, database="bench")
            migrate(warehouse)
            print(f"filled: {fill(warehouse, 1000.0, args.hours)} window rows")
            settings = RedisSettings(url=f"redis://127.0.0.1:{port}/0", key_prefix="bench:")
            results = {}
            redis_client = sync_client(settings)
            modes = (  # (name, Redis, version period, bytes of results the process keeps itself)
                ("without cache", None, 0.0, 0),
                ("cache, exact", redis_client, 0.0, 64 << 20),
                ("cache, 1 s", redis_client, 1.0, 64 << 20),
                ("cache, 1 s, Redis", redis_client, 1.0, 0),  # every hit from Redis: another process's results
            )
            for name, client, version_s, local_bytes in modes:
                redis_client.flushdb()
                cache = QueryCache(
                    client, prefix=settings.key_prefix, ttl_s=300, version_s=version_s, local_bytes=local_bytes
                )
                latencies = run(cache, warehouse, args.clients, args.queries, args.hours)
                results[name] = (latencies, cache.stats())
            print(f"{args.clients} clients x {args.queries} queries, {TENANTS} tenants, {args.hours} h of aggregates")
            for name, (ms, stats) in results.items():
                p50, p95, p99 = np.quantile(ms, [0.5, 0.95, 0.99])
                ratio = stats["hit_ratio"]
                hits = "-" if ratio is None else f"{ratio:.0%}"
                misses = "" if ratio is None else f"  misses after the warm-up {int(stats['misses']) - TENANTS}"
                print(f"  {name:17} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p99 {p99:7.1f} ms  hit ratio {hits}{misses}")
            base = np.quantile(results["without cache"][0], 0.99)
            for name in ("cache, exact", "cache, 1 s", "cache, 1 s, Redis"):
                print(f"p99 {name} / without: {np.quantile(results[name][0], 0.99) / base:.2f}x")
        finally:
            redis.terminate()
            redis.wait(15)


if __name__ == "__main__":
    main()
