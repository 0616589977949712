"""Start the real local services (Tansu broker, chDB warehouse server) as test subprocesses."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """An ephemeral port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(check, proc: subprocess.Popen, what: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError(f"{what} not ready after {timeout}s:\n{log.read_text()[-4000:]}")


def _port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


@contextmanager
def _process(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def run_broker(workdir: Path, partitions: int = 4) -> Iterator[str]:
    """A real Tansu broker on a free port; yields its bootstrap address."""
    port = free_port()
    argv = [sys.executable, "-m", "eventpulse.broker", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--partitions", str(partitions)]
    log = workdir / f"broker-{port}.log"
    with _process(argv, log) as proc:
        _wait(lambda: _port_open(port), proc, "broker", log)
        yield f"127.0.0.1:{port}"


def session_users_file() -> Path | None:
    """The test session's warehouse users file (tests/conftest.py exports it for every process)."""
    value = os.environ.get("EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE")
    return Path(value) if value else None


def session_auth(role: str = "admin") -> tuple[str, str]:
    """(user, password) of ``role`` in the session's users file, for raw HTTP requests."""
    from eventpulse.access.credentials import read_users_file

    path = session_users_file()
    assert path is not None, "tests/conftest.py exports the session's users file"
    credentials = read_users_file(path)[role]  # type: ignore[index]
    return credentials.user, credentials.password


def start_warehouse(path: Path, port: int, log: Path, users_file: Path | None = None) -> subprocess.Popen:
    """Start the warehouse server on ``port`` over chDB at ``path`` and wait for /ping.

    Its users are those of ``users_file`` (default: the session's, so every server of the
    session takes the same credentials), generated if the file is missing.
    """
    argv = [sys.executable, "-m", "eventpulse.warehouse.server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--path", str(path)]
    users_file = users_file or session_users_file()
    if users_file is not None:
        argv += ["--users-file", str(users_file)]
    out = log.open("ab")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()

    def ping() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as resp:
            return resp.status == 200

    _wait(ping, proc, "warehouse server", log)
    return proc


@contextmanager
def run_warehouse(workdir: Path) -> Iterator[str]:
    """A real warehouse server (chDB behind ClickHouse's HTTP interface); yields its URL."""
    port = free_port()
    proc = start_warehouse(workdir / "warehouse", port, workdir / f"warehouse-{port}.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
