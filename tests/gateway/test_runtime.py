"""How a serving gateway runs: the garbage collector's tuning, and ``python -m gateway`` as deployed."""

import contextlib
import gc
import socket
import time

import httpx
import pytest

from gateway.runtime import tune_gc
from tests.gateway.conftest import gateway_process, gateway_settings


def test_tune_gc_raises_the_young_threshold_and_freezes_the_startup_heap():
    before = gc.get_threshold()
    try:
        tune_gc(12_345, freeze=True)
        assert gc.get_threshold() == (12_345, before[1], before[2])
        assert gc.get_freeze_count() > 0
        tune_gc(0, freeze=False)  # 0 keeps what is set
        assert gc.get_threshold()[0] == 12_345
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def _socket(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    sock.settimeout(timeout)
    out = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            out += chunk
    return out, time.monotonic()


@pytest.mark.integration
def test_python_m_gateway_serves_with_its_deadlines_keep_alive_and_no_server_header(
    broker_settings, warehouse, make_key, tmp_path
):
    """The deployed entry point, as a process with two workers (the protocol must pickle to reach them):
    its answers carry no ``server`` header, a request whose headers or body do not arrive within the
    deadlines is answered 408 and closed, and an idle keep-alive connection is closed after
    ``keep_alive_s``, all from the settings it reads from the environment."""
    settings = gateway_settings(
        broker_settings, warehouse, workers=2, header_timeout_s=0.5, body_timeout_s=0.5, keep_alive_s=1
    )
    key = make_key("acme")  # before the start: the first key load knows it
    with gateway_process(settings, tmp_path / "gateway.log") as url:
        answer = httpx.get(f"{url}/api/health")
        assert answer.status_code == 200 and "server" not in answer.headers

        slow_headers = _socket(url)
        slow_headers.sendall(b"GET /api/health HTTP/1.1\r\nHost: gw\r\n")  # never finished
        started = time.monotonic()
        out, closed = _read_until_closed(slow_headers, timeout=5)
        assert out.startswith(b"HTTP/1.1 408") and closed - started < 2.5

        slow_body = _socket(url)
        slow_body.sendall(
            f"POST /api/events HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\nContent-Length: 100\r\n\r\n{{".encode()
        )
        started = time.monotonic()
        out, closed = _read_until_closed(slow_body, timeout=5)
        assert out.startswith(b"HTTP/1.1 408") and closed - started < 2.5

        idle = _socket(url)
        idle.sendall(b"GET /api/health HTTP/1.1\r\nHost: gw\r\n\r\n")
        started = time.monotonic()
        out, closed = _read_until_closed(idle, timeout=10)
        assert out.startswith(b"HTTP/1.1 200") and b"\r\nserver:" not in out.lower()
        assert 0.8 < closed - started < 3.0  # keep_alive_s=1, not uvicorn's default 5 s
