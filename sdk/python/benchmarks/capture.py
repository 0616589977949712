"""What `capture` costs the calling thread, against encoding the same event with ``json.dumps`` alone
(the baseline every client pays), measured in the same run.

    .venv/bin/python sdk/python/benchmarks/capture.py [--events 100000] [--rounds 5]

The client sends to a local server that answers 202 at once (stdlib, in this process), so the
background thread's work (batching, gzip, HTTP) competes with the capturing thread for the GIL as
it would in an application; its end-to-end rate is printed too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from eventpulse_sdk import Client, ClientConfig

DATA = {"action": "click", "page": "/pricing", "latency_ms": 41.5, "metadata": {"ab": "b", "n": 3}}


class _Accept(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"accepted":0,"rejected":0,"duplicates":0,"ids":[],"errors":[]}'
        self.send_response(202)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def baseline(n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        doc = {"id": "0193", "timestamp": 1, "type": "user_action", "source": "web_app", "data": {**DATA, "user_id": i}}
        json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    return time.perf_counter() - started


def sdk(n: int, url: str) -> tuple[float, float]:
    config = ClientConfig(endpoint=url, api_key="ep_bench", max_queue_size=n + 1)
    with Client(config=config) as client:
        started = time.perf_counter()
        for i in range(n):
            client.capture("user_action", "web_app", DATA, user_id=i)
        captured = time.perf_counter() - started
        assert client.flush(120)
        total = time.perf_counter() - started
    return captured, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    ratios, base_us, capture_us, rates = [], [], [], []
    for _ in range(args.rounds):
        b = baseline(args.events)
        c, total = sdk(args.events, url)
        base_us.append(b / args.events * 1e6)
        capture_us.append(c / args.events * 1e6)
        ratios.append(c / b)
        rates.append(args.events / total)
    print(f"{args.events:,} events x {args.rounds} rounds (median, range)")
    print(f"json.dumps baseline  {statistics.median(base_us):.2f} us/event ({min(base_us):.2f}-{max(base_us):.2f})")
    print(
        f"capture              {statistics.median(capture_us):.2f} us/event ({min(capture_us):.2f}-{max(capture_us):.2f})"
    )
    print(f"capture / baseline   {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
    print(f"captured to flushed  {statistics.median(rates):,.0f} events/s ({min(rates):,.0f}-{max(rates):,.0f})")
    server.shutdown()


if __name__ == "__main__":
    main()
