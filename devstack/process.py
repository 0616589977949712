"""Process groups: start a child that dies with its parent, stop it *and everything it started*.

Children run in their own session (``start_new_session=True``), so their process group id is
their pid and every grandchild inherits it. Stopping one is: SIGTERM to the group, wait until
no live member remains, SIGKILL the rest after the grace period, reap the leader. Membership
is read from ``/proc`` so zombies (dead, waiting for a parent that may never reap them, as in
containers whose PID 1 does not) do not count as alive.

A new session also means the child no longer hears the terminal's Ctrl-C or hang-up, and it
survives its parent's SIGKILL. :func:`spawn_group` therefore asks the kernel for a *parent-death
signal* (``prctl(PR_SET_PDEATHSIG)``, Linux): the child gets SIGTERM the moment the process that
started it dies, however it died. That covers the direct child only (its own children are not
told); :mod:`devstack.watchdog` covers the rest of each group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

_PROC = Path("/proc")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def parent_death_preexec(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when its parent dies (None off Linux).

    The libc function is looked up here, in the parent, so the forked child only makes one
    foreign call and two system calls before ``exec``: no import and no lock another thread
    could hold, which is what the ``preexec_fn`` caveat about threads is about. The setting
    survives ``exec``.
    The parent may already be gone by the time the child runs it; ``getppid()`` then differs
    from the pid recorded before the fork and the child signals itself at once.

    Note: the kernel ties the signal to the parent *thread* that forked the child: spawn from a
    thread that lives as long as the children (the supervisor spawns from the thread running it).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            os._exit(126)  # refuse to start a child that could outlive us
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def spawn_group(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    death_signal: int | None = signal.SIGTERM,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new session and process group.

    With ``death_signal`` (default SIGTERM, a graceful stop every service handles) the child
    receives that signal when this process dies, even of SIGKILL. Other keyword arguments go
    to :class:`subprocess.Popen`.
    """
    preexec = parent_death_preexec(death_signal) if death_signal is not None else None
    return subprocess.Popen(list(argv), env=env, cwd=cwd, start_new_session=True, preexec_fn=preexec, **popen)


def group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes in process group ``pgid``."""
    if not _PROC.is_dir():  # not Linux: ask the kernel whether anything is left
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to the group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> int | None:
    """SIGTERM ``proc``'s process group, SIGKILL it after ``grace`` s; return ``proc``'s status.

    ``proc`` must have been started with ``start_new_session=True``.
    """
    pgid = proc.pid
    signal_group(pgid, signal.SIGTERM)
    if not _wait_group_gone(proc, grace):
        signal_group(pgid, signal.SIGKILL)
        _wait_group_gone(proc, 5.0)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5.0)
    return proc.returncode


def kill_groups(groups: Mapping[int, float], poll: float = 0.02) -> list[int]:
    """SIGTERM every group in ``{pgid: grace}``, SIGKILL each one still alive after its grace.

    For process groups whose leader is not our child (so cannot be reaped here), e.g. from
    the watchdog. Returns the pgids that still had live members at the end.
    """
    start = time.monotonic()
    for pgid in groups:
        signal_group(pgid, signal.SIGTERM)
    pending = dict(groups)
    killed: set[int] = set()
    while pending:
        now = time.monotonic() - start
        for pgid, grace in list(pending.items()):
            if not group_members(pgid):
                del pending[pgid]
            elif now >= grace and pgid not in killed:
                signal_group(pgid, signal.SIGKILL)
                killed.add(pgid)
            elif now >= grace + 5.0:
                del pending[pgid]  # unkillable (D state?): give up on it, report it
                killed.add(-pgid)
        if pending:
            time.sleep(poll)
    return [-pgid for pgid in killed if pgid < 0]


def _wait_group_gone(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        proc.poll()  # reap the leader as soon as it exits, or it counts as a member until then
        if not group_members(proc.pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
