"""Dashboard query latency at 32 concurrent clients with the Redis query cache and without it, in the
same run.

    .venv/bin/python benchmarks/query_cache.py [--hours 6] [--clients 32] [--queries 40]

Starts a warehouse server and redis-server on free ports, fills a database as
``benchmarks/dashboards.py`` does (``--hours`` of window aggregates at 1,000 events/s), then runs
the historical page's per-tenant series query (20 tenants, the page's own SQL and parameters) from
``--clients`` threads, ``--queries`` each, through `eventpulse.cache.query_cache.QueryCache`: once
without Redis (every call runs the query) and once with it (first call per tenant runs it, the rest
are hits; each call still reads ``system.parts`` for the data version). Prints p50/p95/p99 of
both and the hit ratio.
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

from benchmarks.dashboards import TENANTS, fill, local_server  # noqa: E402
from eventpulse.cache.client import sync_client  # noqa: E402
from eventpulse.cache.query_cache import QueryCache  # noqa: E402
from eventpulse.config.redis import RedisSettings  # noqa: E402
from eventpulse.config.warehouse import WarehouseSettings  # noqa: E402
from eventpulse.stack.ports import free_port, wait_for_port  # noqa: E402
from eventpulse.warehouse.client import create_client  # noqa: E402
from eventpulse.warehouse.setup import migrate  # noqa: E402

SQL = """
    SELECT toStartOfInterval(window_start, INTERVAL 300 SECOND) AS bucket,
           sum(event_count) AS events, sum(error_count) AS errors,
           sum(latency_count) AS latency_count
    FROM window_aggregates FINAL
    WHERE tenant = {tenant:String} AND type = '*' AND source = '*'
      AND window_seconds = 60 AND slide_seconds = 60
      AND window_start >= {start:DateTime64(3, 'UTC')} AND window_start < {end:DateTime64(3, 'UTC')}
    GROUP BY bucket ORDER BY bucket"""


def run(cache: QueryCache, warehouse: WarehouseSettings, clients: int, queries: int, hours: int) -> np.ndarray:
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(hours=hours)

    def client_loop(number: int) -> list[float]:
        client = create_client(warehouse, autogenerate_session_id=False)
        out = []
        for i in range(queries):
            params = {"tenant": f"tenant-{(number + i) % TENANTS:02d}", "start": start, "end": end}
            started = time.perf_counter()
            cache.frame(client, SQL, params, {"max_execution_time": 30})
            out.append((time.perf_counter() - started) * 1000)
        client.close()
        return out

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
            counts = fill(warehouse, 1000.0, args.hours)
            print(f"filled: {counts}")
            settings = RedisSettings(url=f"redis://127.0.0.1:{port}/0", key_prefix="bench:")
            results = {}
            for name, client in (("without cache", None), ("with Redis cache", sync_client(settings))):
                cache = QueryCache(client, prefix=settings.key_prefix, ttl_s=300)
                latencies = run(cache, warehouse, args.clients, args.queries, args.hours)
                results[name] = (latencies, cache.stats())
            print(f"{args.clients} clients x {args.queries} queries, {TENANTS} tenants, {args.hours} h of aggregates")
            for name, (ms, stats) in results.items():
                p50, p95, p99 = np.quantile(ms, [0.5, 0.95, 0.99])
                ratio = stats["hit_ratio"]
                hits = "-" if ratio is None else f"{ratio:.0%}"
                print(f"  {name:17} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p99 {p99:7.1f} ms  hit ratio {hits}")
            base, cached = (np.quantile(results[n][0], 0.99) for n in results)
            print(f"p99 with the cache / without: {cached / base:.2f}x")
        finally:
            redis.terminate()
            redis.wait(15)


if __name__ == "__main__":
    main()
