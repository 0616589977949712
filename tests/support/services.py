"""Start the real local services (Tansu broker, chDB warehouse server, redis-server) as test subprocesses."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from devstack.broker.objectstore import object_store_argv
from eventpulse.config.broker import BrokerSettings


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


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """`stop` for a process started in its own session, with its children (a launcher and its server)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class BrokerProcesses:
    """A real Tansu broker on a free port and, with ``storage="s3"``, its object store (s3rver on
    disk under ``workdir``), each in a process group of its own, so a test can kill -9 either and
    start it again on the same port and data: ``kill_broker()``, ``start_broker()``,
    ``kill_store()``, ``start_store()``. ``env`` adds ``EVENTPULSE_BROKER_*`` variables (retention).
    """

    def __init__(
        self,
        workdir: Path,
        partitions: int = 4,
        storage: Literal["memory", "s3"] = "memory",
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir, self.partitions, self.storage = workdir, partitions, storage
        self.port = free_port()
        self.settings = BrokerSettings(storage=storage, port=self.port, store_port=free_port())
        self.store_dir = workdir / f"broker-{self.port}-store"
        self.env = {"EVENTPULSE_BROKER_STORAGE": storage, **(env or {})}
        self.broker: subprocess.Popen | None = None
        self.store: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen:
        with log.open("ab") as out:
            return subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True
            )

    def start_store(self) -> None:
        """Start the object store (s3 storage only) and wait until it serves."""
        log = self.workdir / f"broker-{self.port}-store.log"
        self.store = self._spawn(object_store_argv(self.settings, self.store_dir), log)
        _wait(lambda: _port_open(self.settings.store_port), self.store, "object store", log)

    def start_broker(self, timeout: float = 60.0) -> None:
        """Start the broker and wait until it has created the platform's topics."""
        argv = [sys.executable, "-m", "devstack.broker", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--partitions", str(self.partitions), "--storage", self.storage]
        argv += ["--store-port", str(self.settings.store_port)]
        log = self.workdir / f"broker-{self.port}.log"
        start = log.stat().st_size if log.exists() else 0
        self.broker = self._spawn(argv, log)
        _wait(lambda: b"broker ready on" in log.read_bytes()[start:], self.broker, "broker", log, timeout)

    def start(self) -> "BrokerProcesses":
        if self.storage == "s3":
            self.start_store()
        self.start_broker()
        return self

    @staticmethod
    def _kill(proc: subprocess.Popen | None, sig: int) -> None:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, sig)  # the whole group: `python -m devstack.broker` and Tansu under it
            proc.wait(30)

    def kill_broker(self, sig: int = signal.SIGKILL) -> None:
        self._kill(self.broker, sig)

    def kill_store(self, sig: int = signal.SIGKILL) -> None:
        self._kill(self.store, sig)

    def stop(self) -> None:
        for proc in (self.broker, self.store):
            if proc is not None:
                stop_group(proc)


@contextmanager
def broker_processes(
    workdir: Path, partitions: int = 4, storage: Literal["memory", "s3"] = "memory", env: dict[str, str] | None = None
) -> Iterator[BrokerProcesses]:
    """Started `BrokerProcesses`, stopped at the end."""
    processes = BrokerProcesses(workdir, partitions, storage, env)
    try:
        yield processes.start()
    finally:
        processes.stop()


@contextmanager
def run_broker(
    workdir: Path, partitions: int = 4, storage: Literal["memory", "s3"] = "memory", env: dict[str, str] | None = None
) -> Iterator[str]:
    """A real Tansu broker on a free port (``storage="s3"``: durable, with its object store on disk
    under ``workdir``); yields its bootstrap address. To kill and restart it, use `broker_processes`."""
    with broker_processes(workdir, partitions, storage, env) as processes:
        yield processes.bootstrap


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
    argv = [sys.executable, "-m", "devstack.warehouse_server", "--host", "127.0.0.1", "--port", str(port)]
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


@contextmanager
def _process(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """``argv`` running in its own session with its output in ``log``; stopped when the block ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
    try:
        yield proc
    finally:
        stop(proc)


def redis_argv(port: int, workdir: Path) -> list[str]:
    """Debian's redis-server (``make redis``) on 127.0.0.1:``port``, nothing saved to disk."""
    return [
        *("redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir)),
        *("--save", "", "--appendonly", "no", "--protected-mode", "yes"),
    ]


@contextmanager
def run_redis(workdir: Path) -> Iterator[str]:
    """A real redis-server on a free port; yields its ``redis://`` URL."""
    port = free_port()
    log = workdir / f"redis-{port}.log"
    with _process(redis_argv(port, workdir), log) as proc:
        _wait(lambda: _port_open(port), proc, "redis-server", log)
        yield f"redis://127.0.0.1:{port}/0"
