"""The supervisor's watchdog: stops every service group when the supervisor dies, even of SIGKILL.

A parent-death signal (:func:`devstack.process.parent_death_preexec`) reaches only the
supervisor's direct children, and only as a polite SIGTERM: a wrapper that dies of it without
stopping what it started (or ignores it) would leave a grandchild holding a port. So the
supervisor also starts this small process, in a session of its own, and tells it over a pipe
which process groups it runs and how long each may take to stop::

    + PGID GRACE      a service group was started
    - PGID            it was stopped by the supervisor itself

End of file on the pipe means the supervisor is gone (a clean stop closes it after releasing
every group, so there is then nothing to do). The watchdog then SIGTERMs every group still
registered, SIGKILLs what is left after its grace period, and exits. The pipe's write end is
not inherited by the services (``close_fds``, non-inheritable pipes), so only the supervisor's
death closes it.

Run as ``python -m devstack.watchdog SUPERVISOR_PID``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

from devstack.process import kill_groups


class Watchdog:
    """The supervisor's end of the pipe (start one per supervisor run, :meth:`close` at the end)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.watchdog", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # not in our process group: a kill of the group must not take it
        )
        self.alive = True

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _send(self, line: str) -> None:
        if not self.alive or self._proc.stdin is None:
            return
        try:
            self._proc.stdin.write(line.encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            self.alive = False  # the parent-death signal still covers the direct children

    def guard(self, pgid: int, grace: float) -> None:
        """Stop group ``pgid`` (SIGTERM, SIGKILL after ``grace`` s) if the supervisor dies."""
        self._send(f"+ {pgid} {grace:g}")

    def release(self, pgid: int) -> None:
        """Group ``pgid`` was stopped by the supervisor: forget it."""
        self._send(f"- {pgid}")

    def close(self, timeout: float = 5.0) -> None:
        """Close the pipe and reap the watchdog (it finds nothing left to stop)."""
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self.alive = False


def _say(message: str) -> None:
    with contextlib.suppress(OSError):  # the terminal may be gone with the supervisor
        sys.stderr.write(f"eventpulse watchdog | {message}\n")
        sys.stderr.flush()


def main(argv: list[str]) -> int:
    """Read registrations until end of file, then stop every group still registered."""
    supervisor = argv[0] if argv else "?"
    groups: dict[int, float] = {}
    for raw in sys.stdin.buffer:
        op, *args = raw.decode(errors="replace").split()
        if op == "+" and len(args) == 2:
            groups[int(args[0])] = float(args[1])
        elif op == "-" and args:
            groups.pop(int(args[0]), None)
    if not groups:
        return 0
    _say(f"supervisor {supervisor} is gone: stopping {len(groups)} service group(s) {sorted(groups)}")
    stuck = kill_groups(groups)
    if stuck:
        _say(f"could not stop process group(s) {stuck}")
        return 1
    _say("every service group stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
