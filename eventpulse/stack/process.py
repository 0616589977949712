"""Process groups: stop a child *and everything it started*.

Children run in their own session (``start_new_session=True``), so their process group id is
their pid and every grandchild inherits it. Stopping one is: SIGTERM to the group, wait until
no live member remains, SIGKILL the rest after the grace period, reap the leader. Membership
is read from ``/proc`` so zombies (dead, waiting for a parent that may never reap them, as in
containers whose PID 1 does not) do not count as alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

_PROC = Path("/proc")


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


def _wait_group_gone(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        proc.poll()  # reap the leader as soon as it exits, or it counts as a member until then
        if not group_members(proc.pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
