"""A local fake of the gateway's batch route (stdlib HTTP server on a free port) for the SDK's unit
tests: it records each request and answers as a test scripts it, by default as the gateway does."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    raw: bytes  # as sent (compressed or not)
    events: list[dict[str, Any]]


Answer = tuple[int, dict[str, str], dict[str, Any]]


def accept(events: list[dict[str, Any]]) -> Answer:
    """The gateway's 202: every event accepted."""
    return (
        202,
        {},
        {"accepted": len(events), "rejected": 0, "duplicates": 0, "ids": [e["id"] for e in events], "errors": []},
    )


@dataclass
class FakeGateway:
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    answer: Callable[[Request], Answer] = lambda r: accept(r.events)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for r in self.requests for e in r.events]


@contextmanager
def fake_gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, raw, json.loads(body))
            with fake.lock:
                fake.requests.append(request)
                status, headers, doc = fake.answer(request)
            out = json.dumps(doc).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
