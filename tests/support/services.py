"""Start the real local services (Tansu broker, chDB warehouse server) as test subprocesses."""

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

from eventpulse.broker.objectstore import object_store_argv
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
        argv = [sys.executable, "-m", "eventpulse.broker", "--host", "127.0.0.1", "--port", str(self.port)]
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
            os.killpg(proc.pid, sig)  # the whole group: `python -m eventpulse.broker` and Tansu under it
            proc.wait(30)

    def kill_broker(self, sig: int = signal.SIGKILL) -> None:
        self._kill(self.broker, sig)

    def kill_store(self, sig: int = signal.SIGKILL) -> None:
        self._kill(self.store, sig)

    def stop(self) -> None:
        for proc in (self.broker, self.store):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


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


def start_warehouse(path: Path, port: int, log: Path) -> subprocess.Popen:
    """Start the warehouse server on ``port`` over chDB at ``path`` and wait for /ping."""
    argv = [sys.executable, "-m", "eventpulse.warehouse.server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--path", str(path)]
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
