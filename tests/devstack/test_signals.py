"""A stop flag raised by signal handlers: the handler must never wait for a lock its own thread holds.

The failure this guards against (``python -m devstack.broker`` left deadlocked in its SIGTERM handler,
Tansu unreaped, until the watchdog's SIGKILL 10 s later) needed the signal to land while the main
thread was inside ``wait()``. Here a child spins on ``wait(0)``, so it is inside ``wait()`` almost all
the time, and a timer signal raises a fresh flag ``ROUNDS`` times: a ``threading.Event`` (the negative
control) deadlocks in one of the first rounds (about 1 round in 4 measured), the `StopFlag` never.
"""

import signal
import subprocess
import sys
import threading
import time

import pytest

from devstack.signals import StopFlag, raised_by_signals

ROUNDS = 200

CHILD = """
import signal, sys, threading
from devstack.signals import StopFlag
kind, rounds = sys.argv[1], int(sys.argv[2])
make = {"stopflag": StopFlag, "event": threading.Event}[kind]
for n in range(rounds):
    flag = make()
    signal.signal(signal.SIGALRM, lambda *_: flag.set())
    signal.setitimer(signal.ITIMER_REAL, 0.0005)
    while not flag.wait(0):
        pass
print("rounds", rounds, flush=True)
"""


def _spin(kind: str, timeout: float) -> subprocess.CompletedProcess[str] | None:
    """Run the child; None if it had not finished after ``timeout`` s (it is then killed)."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(ROUNDS)], stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)


@pytest.mark.integration  # runs a child process that signals itself
def test_a_stop_flag_raised_by_a_signal_while_its_thread_waits_never_deadlocks() -> None:
    done = _spin("stopflag", timeout=60)
    assert done is not None, f"deadlocked within {ROUNDS} rounds"
    assert done.returncode == 0 and f"rounds {ROUNDS}" in done.stdout


@pytest.mark.integration  # runs a child process that signals itself
def test_control_a_threading_event_set_by_the_same_signals_deadlocks() -> None:
    assert _spin("event", timeout=5) is None  # the bug the broker wrapper and the supervisor had


def test_the_flag_wakes_waiters_on_other_threads_and_stays_raised() -> None:
    flag = StopFlag()
    woke: list[float] = []
    waiter = threading.Thread(target=lambda: woke.append(time.monotonic()) if flag.wait(30) else None)
    waiter.start()
    time.sleep(0.1)
    assert not flag.is_set() and not flag.wait(0.01)
    raised = time.monotonic()
    flag.set()
    waiter.join(5)
    assert woke and woke[0] - raised < 1.0
    assert flag.wait(0) and flag.wait(None) and flag.is_set()
    flag.set()  # again: still raised, nothing blocks


def test_raised_by_signals_raises_the_flag_and_restores_the_previous_handler() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with raised_by_signals(StopFlag(), (signal.SIGUSR1,)) as flag:
        signal.raise_signal(signal.SIGUSR1)
        assert flag.wait(5)
    assert signal.getsignal(signal.SIGUSR1) is before
