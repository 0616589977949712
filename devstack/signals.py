"""A stop request that signal handlers may raise: no lock, so no deadlock.

``threading.Event.set()`` must not be called from a signal handler. Python runs handlers in the
main thread between two bytecodes, and that thread may be inside ``Event.wait()`` just then, holding
the event's (non-reentrant) condition lock for a few bytecodes before it sleeps or after it wakes:
``set()`` then waits for that lock forever, on the very thread that holds it. Measured here: a main
loop ``while not stop.wait(0): ...`` hung on 5 of 20 SIGTERMs; ``wait(0.2)``, as the broker wrapper
and the supervisor used, rarely, but under CPU load often enough (about 1 in 15 runs of the
supervisor's SIGKILL test) to leave ``python -m devstack.broker`` deadlocked with Tansu unreaped
until the watchdog's SIGKILL, 10 s later.

`StopFlag` is set with a plain attribute store and one ``os.write`` to a self-pipe (both safe in a
handler: no Python-level lock), and waited on with ``select``. Once set it stays set.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import weakref
from collections.abc import Iterator, Sequence

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM) + (
    (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()
)
"""Ctrl-C, a service manager's stop, the terminal's hang-up."""


class StopFlag:
    """``set`` from anywhere (a signal handler, any thread), ``wait`` / ``is_set`` from any thread."""

    def __init__(self) -> None:
        self._raised = False
        self._read, self._write = os.pipe()  # not inherited by children (PEP 446)
        os.set_blocking(self._write, False)
        weakref.finalize(self, _close, self._read, self._write)

    def set(self) -> None:
        """Raise the flag; wakes every `wait`. Async-signal-safe in the sense that matters for Python."""
        self._raised = True
        with contextlib.suppress(OSError):  # a full pipe (BlockingIOError) already wakes every waiter
            os.write(self._write, b"\0")

    def is_set(self) -> bool:
        return self._raised

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is raised or ``timeout`` seconds passed; whether it is raised.

        The byte written by `set` is never read, so every later ``select`` returns at once too; a
        signal that interrupts the ``select`` runs its handler and the call resumes (PEP 475).
        """
        if not self._raised:
            select.select([self._read], [], [], timeout)
        return self._raised


def _close(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


@contextlib.contextmanager
def raised_by_signals(flag: StopFlag, sigs: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[StopFlag]:
    """While the block runs, each of ``sigs`` raises ``flag`` (and does nothing else); the previous
    handlers are restored after. Only the main thread can install handlers: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {sig: signal.signal(sig, lambda *_: flag.set()) for sig in sigs}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
