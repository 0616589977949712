"""Run a set of services as child processes: the engine behind ``eventpulse up``.

Services start as soon as the services they depend on are ready (a port that accepts
connections, a URL that answers, a log line, any callable, or, for a one-shot such as
migrations, a zero exit status). Each child's output is streamed line by line behind a coloured
``name | `` prefix. On Ctrl-C, SIGTERM, or any service exiting on its own, everything is stopped
in reverse start order: SIGTERM to the child's process group, SIGKILL after its grace period,
so grandchildren go too and no port stays bound.

Example:
    >>> sup = Supervisor([
    ...     ServiceSpec("broker", ["eventpulse", "broker", "serve"], ready_line="broker ready"),
    ...     ServiceSpec("gateway", ["eventpulse", "gateway", "serve"], port=8000, depends_on=["broker"]),
    ... ])
    >>> raise SystemExit(sup.run())  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Self

from eventpulse.stack.ports import (
    http_ok,
    port_is_free,
    port_open,
    wait_for_http,
    wait_for_port,
)
from eventpulse.stack.process import stop_group

__all__ = [
    "ServiceSpec",
    "StartupError",
    "Supervisor",
    "port_is_free",
    "wait_for_http",
    "wait_for_port",
]

_COLORS = ("36", "33", "35", "32", "34", "96", "93", "95", "92", "94")


class StartupError(RuntimeError):
    """A service could not start (or a port it needs is taken); everything started was stopped."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the stack.

    Readiness is every check that is set: ``port`` accepts connections on ``host``, ``url``
    answers below 400, a line of output matches the regex ``ready_line``, ``ready()`` returns
    True. With none set, a service is ready once started. A ``oneshot`` service is ready when it
    exits with status 0 (any other status fails the start) and its exit is expected.

    Attributes:
        env: variables added to (or replacing) the supervisor's environment.
        timeout: seconds the service has to become ready.
        depends_on: names of services that must be ready before this one starts.
        grace: seconds between SIGTERM and SIGKILL when stopping.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | os.PathLike[str] | None = None
    ready: Callable[[], bool] | None = None
    port: int | None = None
    host: str = "127.0.0.1"
    url: str | None = None
    ready_line: str | None = None
    timeout: float = 60.0
    depends_on: Sequence[str] = ()
    oneshot: bool = False
    grace: float = 10.0

    def __post_init__(self) -> None:
        if not self.name or not self.argv:
            raise ValueError("a service needs a name and a command")

    @property
    def address(self) -> str:
        """Where the service answers, for the table: its URL, else ``host:port``, else ``-``."""
        return self.url or (f"{self.host}:{self.port}" if self.port is not None else "-")


@dataclass
class _Running:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes]
    started: float
    pattern: re.Pattern[str] | None
    line_seen: threading.Event = field(default_factory=threading.Event)
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=30))
    reader: threading.Thread | None = None
    ready_after: float | None = None

    def is_ready(self) -> bool:
        s = self.spec
        if s.oneshot:
            return self.proc.poll() == 0
        return (
            (s.port is None or port_open(s.host, s.port, timeout=0.2))
            and (s.url is None or http_ok(s.url, timeout=0.5))
            and (self.pattern is None or self.line_seen.is_set())
            and (s.ready is None or s.ready())
        )


class Supervisor:
    """Starts, watches and stops a list of :class:`ServiceSpec`.

    Args:
        services: the services; names must be unique, ``depends_on`` must name listed services.
        out: where prefixed output goes (default ``sys.stdout``).
        color: ANSI colours (default: when ``out`` is a terminal and ``NO_COLOR`` is unset).
        name: prefix of the supervisor's own lines.
    """

    def __init__(
        self,
        services: Sequence[ServiceSpec],
        *,
        out: IO[str] | None = None,
        color: bool | None = None,
        name: str = "eventpulse",
    ) -> None:
        self.specs = _ordered(services)
        self.out = out or sys.stdout
        if color is None:
            color = self.out.isatty() and "NO_COLOR" not in os.environ
        self.color = color
        self.name = name
        self._width = max(len(name), *(len(s.name) for s in self.specs))
        self._colors = {s.name: _COLORS[i % len(_COLORS)] for i, s in enumerate(self.specs)}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._running: list[_Running] = []

    # -- output ---------------------------------------------------------------------------------

    def _emit(self, who: str, line: str) -> None:
        prefix = f"{who:<{self._width}} | "
        if self.color:
            code = self._colors.get(who, "1")
            prefix = f"\x1b[{code}m{prefix}\x1b[0m"
        with self._lock:
            self.out.write(prefix + line + "\n")
            self.out.flush()

    def say(self, message: str) -> None:
        """Print one of the supervisor's own lines."""
        for line in message.splitlines() or [""]:
            self._emit(self.name, line)

    def _pump(self, run: _Running, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            run.tail.append(line)
            if run.pattern is not None and run.pattern.search(line):
                run.line_seen.set()
            self._emit(run.spec.name, line)
        stream.close()

    # -- lifecycle ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask :meth:`start` / :meth:`wait` to return; safe from signal handlers and threads."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def pids(self) -> dict[str, int]:
        """``{service: pid}`` of what was started (the pid is also the process group id)."""
        return {r.spec.name: r.proc.pid for r in self._running}

    def start(self) -> None:
        """Start every service in dependency order; return when all are ready.

        Raises:
            StartupError: a port is taken, a service exited or timed out (all started ones are stopped).
            KeyboardInterrupt: :meth:`request_stop` was called during start-up (all stopped).
        """
        taken = [s for s in self.specs if s.port is not None and not port_is_free(s.host, s.port)]
        if taken:
            ports = ", ".join(f"{s.host}:{s.port} ({s.name})" for s in taken)
            raise StartupError(f"already in use: {ports}; stop what holds them or change the ports")
        pending = list(self.specs)
        ready: set[str] = set()
        try:
            while pending or len(ready) < len(self._running):
                if self._stop.is_set():
                    raise KeyboardInterrupt("stop requested during start-up")
                for spec in [s for s in pending if set(s.depends_on) <= ready]:
                    pending.remove(spec)
                    self._spawn(spec)
                for run in self._running:
                    if run.spec.name not in ready and self._check(run):
                        ready.add(run.spec.name)
                self._check_alive(ready)
                self._stop.wait(0.05)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, spec: ServiceSpec) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
        try:
            proc = subprocess.Popen(
                list(spec.argv),
                env=env,
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise StartupError(f"{spec.name}: cannot run {spec.argv[0]!r}: {exc}") from exc
        pattern = re.compile(spec.ready_line) if spec.ready_line else None
        run = _Running(spec, proc, time.monotonic(), pattern)
        run.reader = threading.Thread(target=self._pump, args=(run, proc.stdout), daemon=True)
        run.reader.start()
        self._running.append(run)
        self.say(f"started {spec.name} (pid {proc.pid}): {shlex.join(spec.argv)}".replace("\n", "\\n"))

    def _check(self, run: _Running) -> bool:
        if run.is_ready():
            run.ready_after = time.monotonic() - run.started
            return True
        status = run.proc.poll()
        if status is not None:
            self._fail(run, f"exited with status {status} before it was ready")
        if time.monotonic() - run.started > run.spec.timeout:
            self._fail(run, f"not ready after {run.spec.timeout:g} s")
        return False

    def _check_alive(self, ready: set[str]) -> None:
        for run in self._running:
            if run.spec.name in ready and not run.spec.oneshot and run.proc.poll() is not None:
                self._fail(run, f"exited with status {run.proc.returncode} during start-up")

    def _fail(self, run: _Running, reason: str) -> None:
        if run.reader is not None and run.proc.poll() is not None:
            run.reader.join(timeout=1.0)  # let a dead service's last lines arrive first
        tail = "\n".join(run.tail)
        raise StartupError(f"{run.spec.name} {reason}" + (f"; its last output:\n{tail}" if tail else ""))

    def print_table(self) -> None:
        """Print what runs where."""
        rows = [("service", "pid", "ready in", "address")]
        for run in self._running:
            took = "-" if run.ready_after is None else f"{run.ready_after:.1f} s"
            pid = f"exit {run.proc.returncode}" if run.spec.oneshot else str(run.proc.pid)
            rows.append((run.spec.name, pid, took, run.spec.address))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            self.say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[3])

    def wait(self) -> int:
        """Block until a stop is requested (return 0) or a service exits on its own (return 1)."""
        while not self._stop.wait(0.1):
            for run in self._running:
                if not run.spec.oneshot and run.proc.poll() is not None:
                    if run.reader is not None:
                        run.reader.join(timeout=1.0)
                    self.say(f"{run.spec.name} exited with status {run.proc.returncode}; stopping everything")
                    return 1
        return 0

    def stop(self) -> None:
        """Stop every started service, in reverse start order. Idempotent."""
        while self._running:
            run = self._running.pop()
            if run.proc.poll() is None:
                self.say(f"stopping {run.spec.name}")
            stop_group(run.proc, run.spec.grace)
            if run.reader is not None:
                run.reader.join(timeout=2.0)

    def run(self) -> int:
        """Start, print the table, wait, stop; Ctrl-C / SIGTERM / SIGHUP stop everything.

        Returns the exit status for the command line: 0 after a requested stop, 1 when a service
        failed to start or exited on its own.
        """
        with self._signals_stop():
            try:
                self.start()
            except StartupError as exc:
                self.say(f"start-up failed: {exc}")
                return 1
            except KeyboardInterrupt:
                self.say("stopped during start-up")
                return 0
            try:
                self.print_table()
                self.say("all services ready; Ctrl-C stops everything")
                return self.wait()
            finally:
                self.stop()
                self.say("all services stopped")

    @contextmanager
    def _signals_stop(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        previous = {sig: signal.signal(sig, lambda *_: self.request_stop()) for sig in sigs}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _ordered(services: Sequence[ServiceSpec]) -> list[ServiceSpec]:
    """Services in a start order that respects ``depends_on`` (stable; rejects cycles and typos)."""
    by_name = {s.name: s for s in services}
    if len(by_name) != len(services):
        raise ValueError("service names must be unique")
    for s in services:
        unknown = set(s.depends_on) - set(by_name)
        if unknown:
            raise ValueError(f"{s.name} depends on unknown service(s): {', '.join(sorted(unknown))}")
    ordered: list[ServiceSpec] = []
    placed: set[str] = set()
    while len(ordered) < len(services):
        batch = [s for s in services if s.name not in placed and set(s.depends_on) <= placed]
        if not batch:
            cycle = sorted(set(by_name) - placed)
            raise ValueError(f"dependency cycle among: {', '.join(cycle)}")
        ordered.extend(batch)
        placed.update(s.name for s in batch)
    return ordered
