"""Supervision with real processes: restarts with backoff, giving up, and death of the supervisor.

The supervisor runs on a thread of its own here (start, supervise and stop all on that thread:
the kernel's parent-death signal is tied to the thread that spawned a child), or in a separate
"driver" process for the SIGKILL scenarios.
"""

import contextlib
import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ports import free_port, http_ok, port_is_free
from devstack.process import group_members
from devstack.supervisor import NO_RESTART, RestartPolicy, ServiceEvent, ServiceSpec, Supervisor
from tests.devstack.test_supervisor import STUBBORN, TREE, _alive, _children_of, _pids, _wait_for

pytestmark = pytest.mark.integration  # real child processes and ports
PY = sys.executable
FAST = RestartPolicy(backoff_s=0.1, max_backoff_s=1.0, limit=3, window_s=60)

# A wrapper whose child (same process group) serves HTTP: killing only the wrapper leaves the
# child holding the port, as a crashed `python -m devstack.broker` would leave Tansu.
WRAPPER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-m", "http.server", sys.argv[1], "--bind", "127.0.0.1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("server", child.pid, flush=True)
time.sleep(300)
"""


def _web(name: str, port: int) -> ServiceSpec:
    argv = [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    return ServiceSpec(name, argv, url=f"http://127.0.0.1:{port}/", port=port, timeout=10)


class Background:
    """A supervisor running (start, wait, stop) on its own thread, with its output captured."""

    def __init__(self, specs: list[ServiceSpec], **kwargs) -> None:
        self.out = io.StringIO()
        self.events: list[ServiceEvent] = []
        self.sup = Supervisor(specs, out=self.out, color=False, on_event=self.events.append, **kwargs)
        self.code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.code = self.sup.run()
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def __enter__(self) -> "Background":
        self.thread.start()
        _wait_for(lambda: "all services ready" in self.text or self.code is not None, 30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sup.request_stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
        assert self.error is None, self.error

    @property
    def text(self) -> str:
        return self.out.getvalue()


def test_a_service_killed_with_sigkill_restarts_and_the_others_keep_their_pids() -> None:
    ports = [free_port(), free_port(), free_port()]
    specs = [
        _web("web", ports[0]),
        _web("other", ports[1]),
        ServiceSpec("tree", [PY, "-c", TREE], ready_line="grandchild"),
        ServiceSpec("wrapped", [PY, "-c", WRAPPER, str(ports[2])], url=f"http://127.0.0.1:{ports[2]}/", timeout=10),
    ]
    with Background(specs, restart=FAST) as bg:
        before = bg.sup.pids()
        tree_pids = _pids(bg.text, "parent") + _pids(bg.text, "grandchild")
        first_server = _pids(bg.text, "server")[0]

        os.kill(before["web"], signal.SIGKILL)
        os.kill(before["wrapped"], signal.SIGKILL)  # its HTTP child still holds the port
        _wait_for(lambda: bg.sup.states() == dict.fromkeys(before, "ready") and bg.sup.pids() != before, 15)
        after = bg.sup.pids()

        assert after["web"] != before["web"] and after["wrapped"] != before["wrapped"]
        assert after["other"] == before["other"] and after["tree"] == before["tree"]
        assert all(_alive(pid) for pid in (after["other"], *tree_pids))  # never touched
        assert not _alive(first_server)  # the orphan was stopped, so the new one could bind
        assert http_ok(f"http://127.0.0.1:{ports[0]}/") and http_ok(f"http://127.0.0.1:{ports[2]}/")
        assert bg.sup.restarts() == {"web": 1, "other": 0, "tree": 0, "wrapped": 1}
        _wait_for(lambda: bg.text.count("is ready again") == 2)
        table = bg.text
    text = bg.text
    assert bg.code == 0

    assert "web was killed by SIGKILL (signal 9) after running" in text
    assert re.search(r"restarting it in 0\.1 s \(restart 1; 1 of 3 allowed in 60 s\)", text)
    assert re.search(rf"web\s+{after['web']}\s+\d+\.\d s\s+1\s+http://127\.0\.0\.1:{ports[0]}/", table)
    assert re.search(rf"other\s+{after['other']}\s+\d+\.\d s\s+0\s+", table)
    assert sorted((e.service, e.status, e.restarts, e.gave_up) for e in bg.events) == [
        ("web", -9, 1, False),
        ("wrapped", -9, 1, False),
    ]
    assert "all services stopped (restarts: web 1, wrapped 1)" in text
    assert all(port_is_free("127.0.0.1", p) for p in ports)
    assert not any(_alive(pid) for pid in [*after.values(), *tree_pids])


def test_with_restarts_off_a_crash_stops_everything() -> None:
    """Negative control of the test above: the old behaviour, one crash stops the stack."""
    port = free_port()
    with Background([_web("web", port), _web("other", free_port())], restart=NO_RESTART) as bg:
        os.kill(bg.sup.pids()["web"], signal.SIGKILL)
        bg.thread.join(15)
    assert bg.code == 1
    assert "web was killed by SIGKILL (signal 9)" in bg.text and "restarts are off: giving up" in bg.text
    assert "stopping other" in bg.text
    assert bg.events == [ServiceEvent("web", -9, bg.events[0].reason, 0, True, 0.0, bg.events[0].at)]


CRASHER = "import time; print('up', flush=True); time.sleep(0.2); raise SystemExit(4)"


def test_a_crash_loop_backs_off_exponentially_then_gives_up_and_stops_cleanly() -> None:
    policy = RestartPolicy(backoff_s=0.2, max_backoff_s=0.5, limit=3, window_s=60)
    specs = [_web("web", free_port()), ServiceSpec("crasher", [PY, "-c", CRASHER], ready_line="up", restart=policy)]
    with Background(specs) as bg:
        web_pid = bg.sup.pids()["web"]
        bg.thread.join(30)
    text = bg.text
    assert bg.code == 1
    assert [e.restarts for e in bg.events] == [1, 2, 3, 3] and [e.gave_up for e in bg.events] == [0, 0, 0, 1]
    assert all(e.status == 4 for e in bg.events)
    assert [e.delay for e in bg.events] == [0.2, 0.4, 0.5, 0.0]  # doubling, capped at max_backoff_s
    gaps = [b.at - a.at for a, b in zip(bg.events, bg.events[1:], strict=False)]
    assert all(gap >= delay + 0.2 for gap, delay in zip(gaps, (0.2, 0.4, 0.5), strict=True)), gaps  # + its 0.2 s run
    assert text.count("started crasher again") == 3
    assert re.search(
        r"crasher exited with status 4 after running [\d.]+ s; it was restarted 3 times in the last 60 s, "
        r"the limit: giving up, stopping everything",
        text,
    )
    assert bg.sup.gave_up is not None and "crasher exited with status 4" in bg.sup.gave_up
    assert "stopping web" in text and "all services stopped (restarts: crasher 3)" in text
    assert not _alive(web_pid)


def test_restarts_outside_the_window_do_not_count_toward_the_limit() -> None:
    policy = RestartPolicy(backoff_s=0.05, limit=1, window_s=0.5)
    crasher = "import time; print('up', flush=True); time.sleep(0.7); raise SystemExit(4)"
    with Background([ServiceSpec("slow-crasher", [PY, "-c", crasher], ready_line="up", restart=policy)]) as bg:
        _wait_for(lambda: bg.sup.restarts()["slow-crasher"] >= 3, 15)  # each crash is alone in its window
        assert bg.code is None and bg.sup.gave_up is None
        assert all(e.delay == 0.05 for e in bg.events)  # the backoff starts over too
    assert bg.code == 0


def test_a_one_shot_that_succeeded_is_not_restarted() -> None:
    specs = [
        ServiceSpec("migrate", [PY, "-c", "print('migrated')"], oneshot=True),
        ServiceSpec("app", [PY, "-c", "import time; print('up', flush=True); time.sleep(300)"], ready_line="up"),
    ]
    with Background(specs, restart=FAST) as bg:
        time.sleep(1.0)
        assert bg.sup.states() == {"migrate": "done", "app": "ready"}
        assert bg.sup.restarts() == {"migrate": 0, "app": 0}
    assert bg.text.count("started migrate") == 1
    assert re.search(r"migrate\s+exit 0\s+\d+\.\d s\s+0\s+-", bg.text)


def test_a_restarted_service_that_never_gets_ready_counts_as_a_crash(tmp_path: Path) -> None:
    port = free_port()
    flag = str(tmp_path / "served")  # the first run serves the port, later runs only sleep
    script = (
        "import os, socket, sys, time\n"
        f"if not os.path.exists({flag!r}):\n"
        f"    open({flag!r}, 'w').close(); s = socket.create_server(('127.0.0.1', {port})); time.sleep(0.3)\n"
        "    raise SystemExit(1)\n"
        "time.sleep(300)\n"
    )
    policy = RestartPolicy(backoff_s=0.05, limit=2, window_s=60)
    spec = ServiceSpec("flaky", [PY, "-c", script], port=port, timeout=0.5, restart=policy)
    with Background([spec]) as bg:
        bg.thread.join(20)
    assert bg.code == 1
    assert bg.text.count("was not ready 0.5 s after its restart") == 2
    assert [e.restarts for e in bg.events] == [1, 2, 2]


# -- the supervisor killed with SIGKILL ---------------------------------------------------------

DRIVER = """
import signal, sys
from devstack.supervisor import ServiceSpec, Supervisor
mode, web, broker, tree, stubborn = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
PY = sys.executable
specs = [
    ServiceSpec("web", [PY, "-m", "http.server", str(web), "--bind", "127.0.0.1"],
                url=f"http://127.0.0.1:{web}/", timeout=10),
    ServiceSpec("broker", [PY, "-m", "devstack.broker", "--port", str(broker), "--partitions", "1",
                           "--storage", "memory"],
                port=broker, ready_line="broker ready on", timeout=30),
    ServiceSpec("tree", [PY, "-c", tree], ready_line="grandchild"),
    ServiceSpec("stubborn", [PY, "-c", stubborn], ready_line="ignoring", grace=0.5),
]
options = {
    "full": {},
    "pdeathsig-only": {"watchdog": False},
    "none": {"watchdog": False, "death_signal": None},
}[mode]
sys.exit(Supervisor(specs, color=False, **options).run())
"""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.fixture
def driver(request: pytest.FixtureRequest) -> Iterator:
    """Start the driver in a mode; yields (proc, output lines, ports); kills whatever is left after."""
    started: list[tuple[subprocess.Popen[str], list[int]]] = []

    def start(mode: str) -> tuple[subprocess.Popen[str], str, list[int], list[int]]:
        ports = [free_port(), free_port()]
        proc = subprocess.Popen(
            [PY, "-c", DRIVER, mode, *map(str, ports), TREE, STUBBORN],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        groups: list[int] = []
        started.append((proc, groups))
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
        text = ""
        deadline = time.monotonic() + 60
        while "all services ready" not in text:
            assert proc.poll() is None and time.monotonic() < deadline, text
            with contextlib.suppress(queue.Empty):
                text += lines.get(timeout=1)
        groups += [int(p) for p in re.findall(r"started \w+ \(pid (\d+)\)", text)]
        return proc, text, ports, groups

    yield start
    for proc, groups in started:  # whatever a mode left behind (the negative controls leave all)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


def _members(groups: list[int]) -> dict[int, str]:
    return {pid: _comm(pid) for pgid in groups for pid in group_members(pgid)}


def test_sigkill_of_the_supervisor_stops_every_child_and_grandchild_and_frees_every_port(driver) -> None:
    proc, _text, ports, groups = driver("full")
    members = _members(groups)
    assert len(groups) == 4
    assert any("tansu" in comm for comm in members.values()), members  # the broker's grandchild
    assert len(members) >= 6  # web, broker wrapper + Tansu, tree + grandchild, stubborn
    assert not any(port_is_free("127.0.0.1", p) for p in ports)

    killed = time.monotonic()
    proc.kill()
    proc.wait()
    _wait_for(lambda: not any(_alive(pid) for pid in members) and all(port_is_free("127.0.0.1", p) for p in ports), 10)
    took = time.monotonic() - killed
    print(f"every service process gone and ports free {took:.2f} s after SIGKILL of the supervisor")
    assert took < 5  # the stubborn one's grace is 0.5 s
    assert all(group_members(pgid) == [] for pgid in groups)


@pytest.mark.parametrize(
    ("mode", "survivors"),
    [
        ("none", {"web", "broker", "tansu", "tree", "grandchild", "stubborn"}),  # the bug as measured
        ("pdeathsig-only", {"grandchild", "stubborn"}),  # the direct children's polite SIGTERM is not enough
    ],
)
def test_without_the_watchdog_or_the_death_signal_services_outlive_the_supervisor(driver, mode, survivors) -> None:
    """Negative controls of the test above: turn the pieces off and processes stay behind."""
    proc, text, _ports, groups = driver(mode)
    names = dict(zip(groups, ("web", "broker", "tree", "stubborn"), strict=True))
    leaders = set(groups)
    grandchild = _pids(text, "grandchild")[0]
    members = _members(groups)
    proc.kill()
    proc.wait()
    time.sleep(3)  # ample time for anything that was going to stop

    left: set[str] = set()
    for pid, comm in members.items():
        if not _alive(pid):
            continue
        if pid in leaders:
            left.add(names[pid])
        elif pid == grandchild:
            left.add("grandchild")
        elif "tansu" in comm:
            left.add("tansu")
    assert left == survivors


def test_the_watchdog_is_reaped_when_the_supervisor_stops_cleanly() -> None:
    with Background([_web("web", free_port())]) as bg:
        watchdog = bg.sup.watchdog_pid
        assert watchdog is not None and _alive(watchdog)
    assert not _alive(watchdog)


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    before = set(_children_of(os.getpid()))
    yield
    assert set(_children_of(os.getpid())) - before == set()
