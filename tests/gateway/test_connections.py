"""Read deadlines and the connection limit of a real gateway (uvicorn with `gateway.server`'s protocol),
driven by raw sockets that send their requests as slowly as an attacker would."""

import socket
import time

import orjson
import pytest

from tests.gateway.conftest import event, wait_for_key

pytestmark = pytest.mark.integration


def connect(gw) -> socket.socket:
    host, port = gw.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or ``timeout``), and when it closed (monotonic)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except TimeoutError:
        return out, float("inf")
    except ConnectionResetError:
        pass
    return out, time.monotonic()


def trickle_bytes(sock: socket.socket, data: bytes, every_s: float = 0.05) -> None:
    """Send ``data`` a byte at a time until it is sent or the server closes the connection."""
    for byte in data:
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return
        time.sleep(every_s)


def request_head(key: str, length: int) -> bytes:
    return (
        f"POST /api/events HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_slow_headers_are_answered_408_and_closed_at_the_deadline(start_gateway, make_key):
    with start_gateway(header_timeout_s=0.6) as gw:
        key = make_key("acme")
        wait_for_key(gw, key)
        idle, trickle = connect(gw), connect(gw)
        started = time.monotonic()
        trickle_bytes(trickle, request_head(key, 10)[:40])  # a byte every 50 ms: never idle, never done
        for sock in idle, trickle:
            answer, closed_at = read_until_closed(sock, 5)
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
            assert b"connection: close" in answer
            assert 0.6 <= closed_at - started <= 0.6 + 0.15 + 1.0  # deadline, a sweep, and slack
            sock.close()
        # A client that is quick enough is served, and its keep-alive idle time is no header time.
        body = orjson.dumps(event("quick-1"))
        sock = connect(gw)
        for n in range(2):
            sock.sendall(request_head(key, len(body)) + body)
            assert sock.recv(65536).startswith(b"HTTP/1.1 202"), n
            time.sleep(1.0)  # longer than the header deadline, shorter than keep_alive_s (5)
        sock.close()


def test_without_a_header_deadline_a_slow_client_is_held_open(start_gateway):
    """Negative control: header_timeout_s=0 is uvicorn as it was, and the slow connection stays."""
    with start_gateway(header_timeout_s=0) as gw:
        sock = connect(gw)
        sock.sendall(b"POST /api/events HTTP/1.1\r\nHost: gw\r\n")
        answer, closed_at = read_until_closed(sock, 2.0)
        assert (answer, closed_at) == (b"", float("inf"))
        sock.close()


def test_slow_bodies_are_answered_408_and_closed_and_nothing_is_ingested(start_gateway, make_key):
    with start_gateway(body_timeout_s=0.6, header_timeout_s=5) as gw:
        key = make_key("acme")
        wait_for_key(gw, key)
        body = orjson.dumps(event("slow-body-1"))
        sock = connect(gw)
        sock.sendall(request_head(key, len(body)))
        started = time.monotonic()
        trickle_bytes(sock, body[:30])  # a byte every 50 ms: the body deadline is for the whole body
        answer, closed_at = read_until_closed(sock, 5)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
        assert 0.6 <= closed_at - started <= 0.6 + 0.15 + 1.0
        sock.close()
        with gw.client() as http:
            metrics = http.get("/api/metrics").json()
        assert metrics["events_accepted"] == 0 and metrics["events_rejected"] == {}  # no truncated body taken
        assert {"route": "/api/events", "status": 499, "count": 1} in metrics["requests"]
        assert gw.services.dead_letters.pending == 0 and gw.services.dead_letters.written == 0


def test_the_connection_limit_refuses_the_excess_until_the_deadline_frees_it(start_gateway, make_key):
    limit = 6
    with start_gateway(max_connections=limit, header_timeout_s=1.5) as gw:
        key = make_key("acme")
        wait_for_key(gw, key)
        slow = [connect(gw) for _ in range(limit)]
        for sock in slow:
            sock.sendall(b"POST /api/events HTTP/1.1\r\n")  # headers that never end
        time.sleep(0.2)
        started = time.monotonic()
        with gw.client(key) as http:
            refused = http.post("/api/events", json=event("limit-1"))
            assert refused.status_code == 503, refused.text
            assert time.monotonic() - started < 1.0  # refused at once, not held
            for sock in slow:  # the header deadline closes the slow ones...
                answer, _ = read_until_closed(sock, 5)
                assert answer.startswith(b"HTTP/1.1 408")
                sock.close()
        with gw.client(key) as http:  # ...and the slots are free again
            assert http.post("/api/events", json=event("limit-2")).status_code == 202
