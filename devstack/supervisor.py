"""Run a set of services as child processes: the engine behind ``eventpulse up``.

Services start as soon as the services they depend on are ready (a port that accepts
connections, a URL that answers, a log line, any callable, or, for a one-shot such as
migrations, a zero exit status). Each child's output is streamed line by line behind a coloured
``name | `` prefix.

A service that exits on its own once it was ready is started again after an exponential
backoff, while the others keep running (:class:`RestartPolicy`): its exit status is logged,
its restarts counted (status table, :meth:`Supervisor.restarts`, the ``on_event`` hook that
`eventpulse up` turns into ``pipeline_metrics`` rows). After ``limit`` restarts within
``window_s`` the next exit gives up: everything is stopped and :meth:`Supervisor.run` returns 1.
A one-shot service that exits 0 is done and never restarted.

On Ctrl-C, SIGTERM, SIGHUP or giving up, everything is stopped in reverse start order: SIGTERM
to the child's process group, SIGKILL after its grace period, so grandchildren go too and no
port stays bound. If the supervisor itself is killed, even with SIGKILL, its services still stop:
each child gets SIGTERM from the kernel (parent-death signal) and the watchdog
(:mod:`devstack.watchdog`) stops whole process groups, grandchildren included.

Why home-made: see ``devstack/README.md`` (honcho, supervisord, circus, mirakuru and
process-compose compared).

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Literal, Self

from devstack.ports import (
    http_ok,
    port_is_free,
    port_open,
    wait_for_http,
    wait_for_port,
)
from devstack.process import spawn_group, stop_group
from devstack.signals import StopFlag, raised_by_signals
from devstack.watchdog import Watchdog

__all__ = [
    "NO_RESTART",
    "RestartPolicy",
    "ServiceEvent",
    "ServiceSpec",
    "StartupError",
    "Supervisor",
    "describe_exit",
    "port_is_free",
    "wait_for_http",
    "wait_for_port",
]

_COLORS = ("36", "33", "35", "32", "34", "96", "93", "95", "92", "94")
_CLEANUP_GRACE = 3.0  # s for what a crashed service left behind in its group, before SIGKILL


class StartupError(RuntimeError):
    """A service could not start (or a port it needs is taken); everything started was stopped."""


@dataclass(frozen=True)
class RestartPolicy:
    """When a service that exited on its own is started again.

    The k-th restart within the last ``window_s`` seconds waits ``backoff_s * 2**(k-1)``
    seconds, at most ``max_backoff_s``; a service already restarted ``limit`` times within
    ``window_s`` is not restarted again: the supervisor gives up and stops everything (a crash
    loop is reported, not hidden). ``limit=0`` turns restarts off (:data:`NO_RESTART`).
    """

    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    limit: int = 5
    window_s: float = 300.0

    def __post_init__(self) -> None:
        if self.backoff_s < 0 or self.max_backoff_s < 0 or self.limit < 0 or self.window_s <= 0:
            raise ValueError("restart backoff, limit and window must be positive")

    def delay(self, recent: int) -> float:
        """Seconds to wait before a restart that follows ``recent`` restarts within the window."""
        return min(self.max_backoff_s, self.backoff_s * 2.0 ** min(recent, 62))


NO_RESTART = RestartPolicy(limit=0)


@dataclass(frozen=True)
class ServiceEvent:
    """A service exited on its own: it will be restarted, or the supervisor gives up.

    Attributes:
        status: its exit status (negative: killed by that signal, as in :attr:`Popen.returncode`).
        restarts: its restarts so far, this one included (when ``gave_up``: those before).
        delay: seconds until the restart (0 when ``gave_up``).
        at: wall-clock time of the exit (``time.time()``).
    """

    service: str
    status: int | None
    reason: str
    restarts: int
    gave_up: bool
    delay: float
    at: float


def describe_exit(status: int | None) -> str:
    """``exited with status 3`` / ``was killed by SIGKILL (signal 9)`` for a ``returncode``."""
    if status is None:
        return "is still running"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = "an unknown signal"
        return f"was killed by {name} (signal {-status})"
    return f"exited with status {status}"


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the stack.

    Readiness is every check that is set: ``port`` accepts connections on ``host``, ``url``
    answers below 400, a line of output matches the regex ``ready_line``, ``ready()`` returns
    True. With none set, a service is ready once started. A ``oneshot`` service is ready when it
    exits with status 0 (any other status fails the start), its exit is expected and it is
    never restarted.

    Attributes:
        env: variables added to (or replacing) the supervisor's environment.
        timeout: seconds the service has to become ready (at start and after each restart).
        depends_on: names of services that must be ready before this one starts.
        grace: seconds between SIGTERM and SIGKILL when stopping.
        restart: when to start it again after it exits on its own (default: the supervisor's).
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
    restart: RestartPolicy | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.argv:
            raise ValueError("a service needs a name and a command")

    @property
    def address(self) -> str:
        """Where the service answers, for the table: its URL, else ``host:port``, else ``-``."""
        return self.url or (f"{self.host}:{self.port}" if self.port is not None else "-")


_State = Literal["starting", "ready", "backoff", "done"]


@dataclass
class _Running:
    """One incarnation of a service (a restart replaces it with the next one)."""

    spec: ServiceSpec
    proc: subprocess.Popen[bytes]
    started: float
    pattern: re.Pattern[str] | None
    incarnation: int = 0
    state: _State = "starting"
    restart_at: float = 0.0
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
    """Starts, watches, restarts and stops a list of :class:`ServiceSpec`.

    Services are spawned from the thread that calls :meth:`start` and :meth:`wait` (or
    :meth:`run`); keep it alive while they run: the kernel sends the parent-death signal when
    the spawning *thread* ends.

    Args:
        services: the services; names must be unique, ``depends_on`` must name listed services.
        out: where prefixed output goes (default ``sys.stdout``).
        color: ANSI colours (default: when ``out`` is a terminal and ``NO_COLOR`` is unset).
        name: prefix of the supervisor's own lines.
        restart: the policy of services whose spec sets none (default :class:`RestartPolicy()`).
        on_event: called (on the supervising thread) for every exit that leads to a restart or
            to giving up, e.g. to record it; it must not block, and its errors are reported, not raised.
        watchdog: start the watchdog process that stops every group if the supervisor dies.
        death_signal: what each child receives from the kernel when the supervisor dies (None: nothing).
            ``watchdog=False, death_signal=None`` is the old behaviour: services outlive a killed
            supervisor (kept for tests that show the difference).
    """

    def __init__(
        self,
        services: Sequence[ServiceSpec],
        *,
        out: IO[str] | None = None,
        color: bool | None = None,
        name: str = "eventpulse",
        restart: RestartPolicy | None = None,
        on_event: Callable[[ServiceEvent], None] | None = None,
        watchdog: bool = True,
        death_signal: int | None = signal.SIGTERM,
    ) -> None:
        self.specs = _ordered(services)
        self.out = out or sys.stdout
        if color is None:
            color = self.out.isatty() and "NO_COLOR" not in os.environ
        self.color = color
        self.name = name
        self.policy = restart or RestartPolicy()
        self.on_event = on_event
        self._use_watchdog = watchdog
        self._death_signal = death_signal
        self._watchdog: Watchdog | None = None
        self._width = max(len(name), *(len(s.name) for s in self.specs))
        self._colors = {s.name: _COLORS[i % len(_COLORS)] for i, s in enumerate(self.specs)}
        self._lock = threading.Lock()
        self._stop = StopFlag()  # set by signal handlers: a threading.Event there can deadlock
        self._running: list[_Running] = []
        self.gave_up: str | None = None  # why the supervisor gave up restarting, once it did
        self._restarts: dict[str, int] = dict.fromkeys((s.name for s in self.specs), 0)
        self._recent: dict[str, collections.deque[float]] = {s.name: collections.deque() for s in self.specs}

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
        """``{service: pid}`` of the current incarnations (the pid is also the process group id)."""
        return {r.spec.name: r.proc.pid for r in self._running}

    def restarts(self) -> dict[str, int]:
        """``{service: restarts so far}`` for every service."""
        return dict(self._restarts)

    def states(self) -> dict[str, str]:
        """``{service: starting | ready | backoff | done}`` for the services started so far."""
        return {r.spec.name: r.state for r in self._running}

    @property
    def watchdog_pid(self) -> int | None:
        """The watchdog's pid while it runs."""
        return self._watchdog.pid if self._watchdog is not None else None

    def start(self) -> None:
        """Start every service in dependency order; return when all are ready.

        A service that was ready and exits while others are still starting is restarted by
        its policy, as after start-up.

        Raises:
            StartupError: a port is taken, a service exited or timed out before it was ready, or
                one gave up restarting (all started ones are stopped).
            KeyboardInterrupt: :meth:`request_stop` was called during start-up (all stopped).
        """
        taken = [s for s in self.specs if s.port is not None and not port_is_free(s.host, s.port)]
        if taken:
            ports = ", ".join(f"{s.host}:{s.port} ({s.name})" for s in taken)
            raise StartupError(f"already in use: {ports}; stop what holds them or change the ports")
        pending = list(self.specs)
        ready: set[str] = set()
        try:
            if self._use_watchdog and self._watchdog is None:
                self._watchdog = Watchdog()
            while pending or any(r.incarnation == 0 and r.state == "starting" for r in self._running):
                if self._stop.is_set():
                    raise KeyboardInterrupt("stop requested during start-up")
                for spec in [s for s in pending if set(s.depends_on) <= ready]:
                    pending.remove(spec)
                    self._running.append(self._spawn(spec))
                for run in self._running:
                    if run.incarnation == 0 and run.state == "starting" and self._check(run):
                        ready.add(run.spec.name)
                gave_up = self._supervise_once()
                if gave_up is not None:
                    raise StartupError(gave_up)
                self._stop.wait(0.05)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, spec: ServiceSpec, incarnation: int = 0) -> _Running:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
        try:
            proc = spawn_group(
                spec.argv,
                env=env,
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                death_signal=self._death_signal,
            )
        except OSError as exc:
            raise StartupError(f"{spec.name}: cannot run {spec.argv[0]!r}: {exc}") from exc
        if self._watchdog is not None:
            self._watchdog.guard(proc.pid, spec.grace)
        pattern = re.compile(spec.ready_line) if spec.ready_line else None
        run = _Running(spec, proc, time.monotonic(), pattern, incarnation=incarnation)
        run.reader = threading.Thread(target=self._pump, args=(run, proc.stdout), daemon=True)
        run.reader.start()
        again = f" again (restart {self._restarts[spec.name]})" if incarnation else ""
        self.say(f"started {spec.name}{again} (pid {proc.pid}): {shlex.join(spec.argv)}".replace("\n", "\\n"))
        return run

    def _check(self, run: _Running) -> bool:
        """First start: is ``run`` ready? Raises :class:`StartupError` if it died or timed out."""
        if run.is_ready():
            run.ready_after = time.monotonic() - run.started
            run.state = "done" if run.spec.oneshot else "ready"
            return True
        status = run.proc.poll()
        if status is not None:
            self._fail(run, f"{describe_exit(status)} before it was ready")
        if time.monotonic() - run.started > run.spec.timeout:
            self._fail(run, f"not ready after {run.spec.timeout:g} s")
        return False

    def _fail(self, run: _Running, reason: str) -> None:
        if run.reader is not None and run.proc.poll() is not None:
            run.reader.join(timeout=1.0)  # let a dead service's last lines arrive first
        tail = "\n".join(run.tail)
        raise StartupError(f"{run.spec.name} {reason}" + (f"; its last output:\n{tail}" if tail else ""))

    # -- supervision ----------------------------------------------------------------------------

    def _supervise_once(self) -> str | None:
        """One pass over the services: notice exits, restart due ones, track restarted ones' readiness.

        Returns the give-up message when a service exhausted its restarts, else None.
        """
        now = time.monotonic()
        for index, run in enumerate(self._running):
            spec = run.spec
            if run.state == "done" or (run.incarnation == 0 and run.state == "starting"):
                continue  # one-shot finished / first start: judged by start()
            if run.state == "backoff":
                if now >= run.restart_at and not self._stop.is_set():
                    self._running[index] = self._spawn(spec, run.incarnation + 1)
                continue
            status = run.proc.poll()
            if status is None:
                if run.state == "starting":
                    if run.is_ready():
                        run.state, run.ready_after = "ready", now - run.started
                        self.say(f"{spec.name} is ready again after {run.ready_after:.1f} s")
                        self.print_table()
                    elif now - run.started > spec.timeout:
                        message = self._exited(run, f"was not ready {spec.timeout:g} s after its restart")
                        if message is not None:
                            return message
                continue
            message = self._exited(run, describe_exit(status))
            if message is not None:
                return message
        return None

    def _cleanup(self, run: _Running) -> None:
        """Stop what is left of a crashed service's group (a grandchild may hold its port)."""
        stop_group(run.proc, min(run.spec.grace, _CLEANUP_GRACE))
        if self._watchdog is not None:
            self._watchdog.release(run.proc.pid)
        if run.reader is not None:
            run.reader.join(timeout=1.0)  # its last lines before our verdict

    def _exited(self, run: _Running, how: str) -> str | None:
        """``run`` is over: schedule its restart (None) or give up (the message)."""
        self._cleanup(run)
        spec, now = run.spec, time.monotonic()
        policy = spec.restart or self.policy
        recent = self._recent[spec.name]
        while recent and now - recent[0] > policy.window_s:
            recent.popleft()
        status = run.proc.returncode
        uptime = "" if run.ready_after is None else f" after running {now - run.started:.1f} s"
        if len(recent) >= policy.limit:
            why = (
                "restarts are off"
                if policy.limit == 0
                else f"it was restarted {len(recent)} times in the last {policy.window_s:g} s, the limit"
            )
            message = f"{spec.name} {how}{uptime}; {why}: giving up, stopping everything"
            self.gave_up = message
            self.say(message)
            self._notify(ServiceEvent(spec.name, status, how, self._restarts[spec.name], True, 0.0, time.time()))
            return message
        delay = policy.delay(len(recent))
        recent.append(now)
        self._restarts[spec.name] += 1
        count = self._restarts[spec.name]
        run.state, run.restart_at = "backoff", now + delay
        self.say(
            f"{spec.name} {how}{uptime}; restarting it in {delay:g} s "
            f"(restart {count}; {len(recent)} of {policy.limit} allowed in {policy.window_s:g} s)"
        )
        self._notify(ServiceEvent(spec.name, status, how, count, False, delay, time.time()))
        return None

    def _notify(self, event: ServiceEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception as exc:  # recording a restart must never stop the supervision
            self.say(f"could not record {event.service}'s exit: {exc!r}")

    def print_table(self) -> None:
        """Print what runs where, and how often each service was restarted."""
        rows = [("service", "pid", "ready in", "restarts", "address")]
        for run in self._running:
            took = "-" if run.ready_after is None else f"{run.ready_after:.1f} s"
            if run.spec.oneshot:
                pid = f"exit {run.proc.returncode}"
            elif run.state == "backoff":
                pid = "restarting"
            else:
                pid = str(run.proc.pid)
            rows.append((run.spec.name, pid, took, str(self._restarts[run.spec.name]), run.spec.address))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            self.say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[4])

    def wait(self) -> int:
        """Supervise until a stop is requested (return 0) or a service gave up restarting (return 1)."""
        while not self._stop.wait(0.1):
            if self._supervise_once() is not None:
                return 1
        return 0

    def stop(self) -> None:
        """Stop every started service, in reverse start order, then the watchdog. Idempotent."""
        while self._running:
            run = self._running.pop()
            if run.proc.poll() is None:
                self.say(f"stopping {run.spec.name}")
            stop_group(run.proc, run.spec.grace)
            if self._watchdog is not None:
                self._watchdog.release(run.proc.pid)
            if run.reader is not None:
                run.reader.join(timeout=2.0)
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None

    def run(self) -> int:
        """Start, print the table, supervise, stop; Ctrl-C / SIGTERM / SIGHUP stop everything.

        Returns the exit status for the command line: 0 after a requested stop, 1 when a service
        failed to start or gave up restarting.
        """
        with raised_by_signals(self._stop):
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
                counts = {name: n for name, n in self._restarts.items() if n}
                summary = ", ".join(f"{name} {n}" for name, n in counts.items())
                self.say("all services stopped" + (f" (restarts: {summary})" if summary else ""))

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
