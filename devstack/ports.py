"""Small network probes shared by the local broker and the process supervisor.

``port_is_free`` binds with ``SO_REUSEADDR`` like the servers we start do (tokio, uvicorn,
granian...), so a port whose only sockets are in ``TIME_WAIT`` after a clean stop counts as free,
while a port with a listener (on that address or on the wildcard address) does not.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

_WILDCARDS = {"", "0.0.0.0", "::"}


class PortInUseError(RuntimeError):
    """A local service's listen address is already taken by another process."""


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_is_free(host: str, port: int) -> bool:
    """True if a server could bind ``host:port`` now."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral port that is free right now (for tests and throwaway servers)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def connect_host(host: str) -> str:
    """The address a client on this machine uses to reach a server listening on ``host``."""
    if host in _WILDCARDS:
        return "::1" if host == "::" else "127.0.0.1"
    return host


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((connect_host(host), port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True if ``url`` answers with a status below 400 (redirects followed)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until(
    probe: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll ``probe`` until it returns True.

    Raises:
        TimeoutError: after ``timeout`` seconds, naming ``what``.
        RuntimeError: as soon as ``alive`` (e.g. "the server process still runs") returns False.
    """
    deadline = time.monotonic() + timeout
    while True:
        if probe():
            return
        if alive is not None and not alive():
            raise RuntimeError(f"{what}: the process exited before it was ready")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:g} s")
        time.sleep(interval)


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    """Block until ``host:port`` accepts connections; ``TimeoutError`` otherwise."""
    wait_until(lambda: port_open(host, port), timeout, f"{host}:{port}")


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    """Block until ``url`` answers below 400; ``TimeoutError`` otherwise."""
    wait_until(lambda: http_ok(url), timeout, url, interval=0.1)


__all__ = [
    "connect_host",
    "free_port",
    "http_ok",
    "port_is_free",
    "port_open",
    "wait_for_http",
    "wait_for_port",
    "wait_until",
]
