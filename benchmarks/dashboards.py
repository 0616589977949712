"""Page load times of the dashboards over a day of aggregates at 1,000 events/s.

    python benchmarks/dashboards.py [--url http://127.0.0.1:8123] [--rate 1000] [--hours 24]

Without ``--url`` a local warehouse server is started on a free port over a temporary directory.
The script fills a fresh database directly with what the pages read: a day of
``window_aggregates`` rows for every window family the stream computes (10 s, 60 s, 300/60 s;
20 tenants x (10 types x 5 sources + the tenant-wide row)), hourly and daily rollups for all but
the last two hours, dataflow metrics, dead letters, and one hour of raw events (for the
index-backed search only). Then it loads every page in-process with Streamlit's AppTest, cold
(caches emptied) and warm, and reports the times against a baseline in the same run: an app
whose page does no query (Streamlit's own cost). Results also go to
``benchmarks/results/dashboards.json``.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tqdm import tqdm  # noqa: E402

from eventpulse.access.credentials import users_file_for  # noqa: E402
from eventpulse.config.warehouse import WarehouseSettings  # noqa: E402
from eventpulse.warehouse.client import create_client  # noqa: E402
from eventpulse.warehouse.schema import migrate  # noqa: E402

APP = REPO / "dashboards" / "streamlit_app.py"
TENANTS, TYPES, SOURCES = 20, 10, 5
FAMILIES = ((10, 10), (60, 60), (300, 60))

_AGGREGATES = """
INSERT INTO {table}
SELECT
    tenant, {window:UInt32} AS window_seconds, {slide:UInt32} AS slide_seconds, window_start,
    window_start + INTERVAL {window:UInt32} SECOND AS window_end, type, source,
    event_count, error_count, if(event_count = 0, 0., error_count / event_count) AS error_rate,
    least(event_count, 40 + h % 60) AS distinct_users, event_count AS latency_count,
    event_count * p50 * 1.2 AS latency_sum, p50 / 4 AS latency_min, p99 * 3 AS latency_max,
    p50 AS latency_p50, p50 * 2.6 AS latency_p95, p99 AS latency_p99,
    window_start < {open_from:DateTime64(3, 'UTC')} AS is_final, 'stream' AS origin, 1 AS version,
    window_start + INTERVAL {window:UInt32} SECOND AS emitted_at
FROM (
    SELECT
        toDateTime64({start:DateTime64(3, 'UTC')}, 3, 'UTC') + toIntervalSecond(intDiv(number, {keys:UInt32}) * {slide:UInt32})
            AS window_start,
        number % {keys:UInt32} AS k,
        concat('tenant-', leftPad(toString(intDiv(k, {per_tenant:UInt32})), 2, '0')) AS tenant,
        k % {per_tenant:UInt32} AS combo,
        if(combo = 0, '*', concat('type_', toString(intDiv(combo - 1, {sources:UInt32})))) AS type,
        if(combo = 0, '*', concat('source_', toString((combo - 1) % {sources:UInt32}))) AS source,
        cityHash64(number, {seed:UInt64}) AS h,
        -- 1,000 events/s shared by tenants and combinations; tenant-wide rows hold their tenant's sum.
        toUInt64(round({rate:Float64} * {window:UInt32} / {tenants:UInt32} / if(combo = 0, 1, {combos:UInt32})
                       * (0.7 + (h % 600) / 1000.))) AS event_count,
        toUInt64(round(event_count * (0.01 + (h % 30) / 1000.))) AS error_count,
        20 + (h % 40) AS p50,
        150 + (h % 400) AS p99
    FROM numbers({rows:UInt64})
)"""

_EVENTS = """
INSERT INTO events (tenant, id, timestamp, type, source, user_id, latency_ms, is_error, data, extra,
                    schema_version, received_at, topic_partition, topic_offset)
SELECT
    concat('tenant-', leftPad(toString(number % 20), 2, '0')) AS tenant,
    concat('evt-', toString(number)) AS id,
    toDateTime64({start:DateTime64(3, 'UTC')}, 3, 'UTC') + toIntervalMillisecond(intDiv(number * 1000, {rate:UInt64})) AS ts,
    concat('type_', toString(number % 10)), concat('source_', toString(number % 5)),
    concat('u', toString(cityHash64(number) % 500)) AS user_id,
    20 + cityHash64(number, 1) % 300, cityHash64(number, 2) % 50 = 0,
    concat('{"user_id":"', user_id, '","action":"', ['click', 'scroll', 'submit', 'view'][number % 4 + 1],
           '","latency_ms":', toString(20 + cityHash64(number, 1) % 300), ',"metadata":{"session":"s',
           toString(cityHash64(number, 3) % 100000), '"}}'),
    '{}', 1, ts, number % 4, number
FROM numbers({n:UInt64})"""


@contextmanager
def local_server(keep: Path | None = None):
    """A warehouse server on a free port over a temporary directory (or ``keep``, kept afterwards)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with contextlib.nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory(prefix="bench-dash-") as tmp:
        argv = [sys.executable, "-m", "devstack.warehouse_server", "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen([*argv, "--path", f"{tmp}/data"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1):
                        break
                except OSError:
                    time.sleep(0.1)
            # the server generated its users there; this process and the pages read them
            os.environ["EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE"] = str(users_file_for(Path(f"{tmp}/data")))
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(30)


def fill(settings: WarehouseSettings, rate: float, hours: int, raw_events: bool = True) -> dict[str, int]:
    """Write the day of aggregates (and the rest) the pages read; return row counts per table.

    ``raw_events=False`` skips the hour of raw events (the query API benchmark reads none)."""
    client = create_client(settings.model_copy(update={"query_timeout_s": 3600.0}), role="admin")
    now = time.time()
    end_s = int(now) // 60 * 60 + 60
    start_s = end_s - hours * 3600
    per_tenant = TYPES * SOURCES + 1
    keys = TENANTS * per_tenant
    steps = []
    for window, slide in FAMILIES:
        steps.append(("window_aggregates", window, slide, (hours * 3600) // slide))
    rollup_end = (end_s - 2 * 3600) // 3600 * 3600
    steps.append(("rollup_hourly", 3600, 3600, (rollup_end - start_s // 3600 * 3600) // 3600))
    steps.append(("rollup_daily", 86400, 86400, max(0, (rollup_end - start_s) // 86400)))
    for table, window, slide, windows in tqdm(steps, desc="aggregates", unit="family"):
        if windows <= 0:
            continue
        first = start_s // slide * slide if table == "window_aggregates" else start_s // window * window
        client.command(
            _AGGREGATES.replace("{table}", table),
            parameters={
                "window": window,
                "slide": slide,
                "start": _dt(first),
                "open_from": _dt(end_s - 2 * window),
                "keys": keys,
                "per_tenant": per_tenant,
                "sources": SOURCES,
                "seed": window,
                "rate": rate,
                "tenants": TENANTS,
                "combos": per_tenant - 1,
                "rows": windows * keys,
            },
            settings={"max_insert_threads": 2, "max_execution_time": 3600},
        )
    raw = int(rate * 3600) if raw_events else 0
    with tqdm(total=1, desc="raw events (1 h)", disable=not raw) as bar:
        client.command(
            _EVENTS,
            parameters={"start": _dt(end_s - 3600), "rate": int(rate), "n": raw},
            settings={"max_execution_time": 3600},
        )
        bar.update()
    metrics = [
        (_dt(t), f"bench:{p}", m, lbl, v)
        for t in range(int(now) - 3600, int(now), 5)
        for p in (1, 2)
        for m, lbl, v in (
            ("events_in_per_s", "", rate / 2),
            ("events_out_per_s", "", rate / 2),
            ("consumer_lag", str(p), 120.0),
            ("watermark_delay_ms", "", 2100.0),
            ("processing_latency_ms_p95", "", 35.0),
            ("freshness_event_ms_p95", "", 2600.0),
        )
    ]
    client.insert("pipeline_metrics", metrics, column_names=["time", "process", "metric", "label", "value"])
    client.command("OPTIMIZE TABLE window_aggregates FINAL", settings={"max_execution_time": 3600})
    counts = {
        t: client.query(f"SELECT count() FROM {t}").result_rows[0][0]
        for t in ("window_aggregates", "rollup_hourly", "rollup_daily", "events", "pipeline_metrics")
    }
    client.close()
    return counts


def _dt(epoch_s: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch_s, tz=UTC)


def load_times(runs: int) -> dict[str, dict[str, float]]:
    """Seconds to load each page in-process: the first (cold cache) and the median warm run."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    pages: dict[str, tuple[str | None, dict]] = {
        "live": (None, {}),
        "historical (last hour, minutes)": ("historical", {}),
        "historical (24 h, hours)": ("historical", {"range": "Last 24 hours"}),
        "historical (24 h, minutes)": ("historical", {"range": "Last 24 hours", "hist_granularity": "minute"}),
        "live (last hour)": (None, {"live_lookback": "1 hour"}),
        "health": ("health", {}),
        "alerts": ("alerts", {}),
        "search (words)": ("search", {"q_text": "scroll"}),
        "sql console": ("sql_console", {}),
    }
    results: dict[str, dict[str, float]] = {}
    baseline = AppTest.from_string("import streamlit as st\nst.title('baseline')\nst.metric('x', 1)")
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        baseline.run()
        times.append(time.perf_counter() - started)
    results["baseline (no query)"] = {"cold_s": times[0], "warm_s": statistics.median(times[1:])}
    for name, (page, state) in tqdm(pages.items(), desc="pages", unit="page"):
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.session_state["range"] = state.get("range", "Last hour")
        for key in ("q_text", "hist_granularity", "live_lookback"):
            if key in state:
                at.session_state[key] = state[key]
        at.run()
        if page:
            at.switch_page(f"app_pages/{page}.py")
        samples = []
        for i in range(runs + 1):
            if i == 0:
                st.cache_data.clear()
            started = time.perf_counter()
            at.run()
            samples.append(time.perf_counter() - started)
            if at.exception:
                raise RuntimeError(f"{name}: {at.exception}")
        results[name] = {
            "cold_s": samples[0],
            "warm_s": statistics.median(samples[1:]),
            "metrics_shown": len(at.metric),
            "notes": [i.value for i in at.info],
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an existing warehouse server (default: start one)")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second the aggregates describe")
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--runs", type=int, default=3, help="warm runs per page")
    args = parser.parse_args()

    def run(url: str) -> None:
        settings = WarehouseSettings(url=url, database=f"bench_{uuid.uuid4().hex[:8]}")
        migrate(settings)
        started = time.perf_counter()
        counts = fill(settings, args.rate, args.hours)
        fill_s = time.perf_counter() - started
        os.environ["EVENTPULSE_WAREHOUSE_URL"] = url
        os.environ["EVENTPULSE_WAREHOUSE_DATABASE"] = settings.database
        os.environ["EVENTPULSE_DASHBOARD_GATEWAY_URL"] = "http://127.0.0.1:9"
        times = load_times(args.runs)
        print(f"\nfilled in {fill_s:.1f} s: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
        print(f"{'page':34} {'cold (s)':>9} {'warm (s)':>9} {'metrics':>8}")
        for name, t in times.items():
            flag = "" if t["cold_s"] < 2 else "  > 2 s"
            shown = t.get("metrics_shown", "")
            print(
                f"{name:34} {t['cold_s']:9.3f} {t['warm_s']:9.3f} {shown:>8}{flag}  {' '.join(t.get('notes', []))[:60]}"
            )
        out = REPO / "benchmarks" / "results"
        out.mkdir(parents=True, exist_ok=True)
        (out / "dashboards.json").write_text(
            json.dumps(
                {"rate": args.rate, "hours": args.hours, "rows": counts, "fill_s": fill_s, "pages": times}, indent=2
            )
        )

    if args.url:
        run(args.url)
    else:
        with local_server() as url:
            run(url)


if __name__ == "__main__":
    main()
