"""The process supervisor, with real child processes (and grandchildren) on free ports."""

import io
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ports import free_port, port_is_free, wait_for_http, wait_for_port
from devstack.process import group_members
from devstack.supervisor import NO_RESTART, ServiceSpec, StartupError, Supervisor

pytestmark = pytest.mark.integration  # real child processes and ports
PY = sys.executable

SERVE_PORT = """
import socket, sys, time
print("booting", flush=True)
time.sleep(0.3)
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("listening", flush=True)
while True:
    srv.accept()[0].close()
"""
CHECK_PORT = """
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
print("migrated", flush=True)
"""
# A child with a grandchild; both print their pid.
TREE = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import os, time; print('grandchild', os.getpid(), flush=True); time.sleep(300)"])
print("parent", os.getpid(), flush=True)
time.sleep(300)
"""
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring SIGTERM", flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _pids(output: str, label: str) -> list[int]:
    return [int(p) for p in re.findall(rf"\b{label} (\d+)", output)]


def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_services_start_in_dependency_order_and_output_is_prefixed() -> None:
    port = free_port()
    out = io.StringIO()
    specs = [
        ServiceSpec(
            "app",
            [PY, "-c", "import time; print('app ready', flush=True); time.sleep(300)"],
            ready_line=r"app ready",
            depends_on=["migrate"],
        ),
        ServiceSpec("migrate", [PY, "-c", CHECK_PORT, str(port)], oneshot=True, depends_on=["db"]),
        ServiceSpec("db", [PY, "-c", SERVE_PORT, str(port)], port=port, timeout=10),
    ]
    with Supervisor(specs, out=out, color=False) as sup:
        pids = sup.pids()
        assert list(pids) == ["db", "migrate", "app"]  # dependency order, not list order
        sup.print_table()
    text = out.getvalue()

    for name, line in (("db", "booting"), ("db", "listening"), ("migrate", "migrated"), ("app", "app ready")):
        assert re.search(rf"^{name} +\| {line}$", text, re.M), (name, line)
    assert text.index("| migrated") < text.index("started app")  # app waited for the one-shot
    assert re.search(rf"db\s+{pids['db']}\s+\d+\.\d s\s+0\s+127\.0\.0\.1:{port}", text)  # 0 restarts
    assert re.search(r"migrate\s+exit 0", text)
    assert not any(_alive(pid) for pid in pids.values())
    assert port_is_free("127.0.0.1", port)


def test_colours_mark_each_service() -> None:
    out = io.StringIO()
    with Supervisor([ServiceSpec("one", [PY, "-c", "print('hi')"], oneshot=True)], out=out, color=True):
        pass
    assert re.search(r"\x1b\[36mone +\| \x1b\[0mhi", out.getvalue())


def test_a_service_dying_without_restarts_stops_all_others_and_their_children() -> None:
    out = io.StringIO()
    specs = [
        ServiceSpec("tree", [PY, "-c", TREE], ready_line="grandchild"),
        ServiceSpec(
            "crasher",
            [PY, "-c", "import time; time.sleep(0.3); print('boom'); raise SystemExit(3)"],
            restart=NO_RESTART,
        ),
    ]
    assert Supervisor(specs, out=out, color=False).run() == 1
    text = out.getvalue()

    assert re.search(r"^crasher +\| boom$", text, re.M)
    assert re.search(
        r"crasher exited with status 3 after running [\d.]+ s; restarts are off: giving up, stopping", text
    )
    assert text.index("stopping tree") > text.index("crasher exited")
    pids = _pids(text, "parent") + _pids(text, "grandchild")
    assert len(pids) == 2 and not any(_alive(pid) for pid in pids)


def test_startup_failure_names_the_service_and_stops_what_started() -> None:
    out = io.StringIO()
    specs = [
        ServiceSpec("tree", [PY, "-c", TREE], ready_line="grandchild"),
        ServiceSpec(
            "bad", [PY, "-c", "print('no config'); raise SystemExit(2)"], port=free_port(), depends_on=["tree"]
        ),
    ]
    assert Supervisor(specs, out=out, color=False).run() == 1
    text = out.getvalue()
    assert "start-up failed: bad exited with status 2 before it was ready; its last output:" in text
    assert "no config" in text
    assert not any(_alive(pid) for pid in _pids(text, "parent") + _pids(text, "grandchild"))


def test_readiness_timeout_is_an_error() -> None:
    sup = Supervisor(
        [ServiceSpec("mute", [PY, "-c", "import time; time.sleep(300)"], port=free_port(), timeout=0.5)],
        out=io.StringIO(),
    )
    started = time.monotonic()
    with pytest.raises(StartupError, match=r"mute not ready after 0.5 s"):
        sup.start()
    assert time.monotonic() - started < 3
    assert sup.pids() == {}


def test_a_taken_port_is_refused_before_anything_starts() -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        sup = Supervisor(
            [
                ServiceSpec("first", [PY, "-c", "import time; time.sleep(300)"]),
                ServiceSpec("web", [PY, "-m", "http.server", str(port)], port=port),
            ],
            out=io.StringIO(),
        )
        with pytest.raises(StartupError, match=rf"already in use: 127.0.0.1:{port} \(web\)"):
            sup.start()
        assert sup.pids() == {}


def test_bad_dependencies_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown service"):
        Supervisor([ServiceSpec("a", ["true"], depends_on=["nope"])])
    with pytest.raises(ValueError, match="cycle"):
        Supervisor([ServiceSpec("a", ["true"], depends_on=["b"]), ServiceSpec("b", ["true"], depends_on=["a"])])


DRIVER = """
import sys
from devstack.supervisor import ServiceSpec, Supervisor
port = int(sys.argv[1])
PY = sys.executable
specs = [
    ServiceSpec("web", [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                url=f"http://127.0.0.1:{port}/", timeout=10),
    ServiceSpec("tree", [PY, "-c", sys.argv[2]], ready_line="grandchild", depends_on=["web"]),
    ServiceSpec("stubborn", [PY, "-c", sys.argv[3]], ready_line="ignoring", grace=0.5),
]
sys.exit(Supervisor(specs, color=False).run())
"""


def test_sigint_stops_everything_leaving_no_orphans_and_no_bound_port() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [PY, "-c", DRIVER, str(port), TREE, STUBBORN], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    text = ""
    try:
        while "all services ready" not in text:
            text += lines.get(timeout=20)
        groups = [int(p) for p in re.findall(r"started \w+ \(pid (\d+)\)", text)]
        assert len(groups) == 3
        members = [pid for pgid in groups for pid in group_members(pgid)]
        assert len(members) >= 4  # web, tree, its grandchild, stubborn
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=2)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.1)  # let the reader thread drain the pipe
    while not lines.empty():
        text += lines.get()

    assert "all services stopped" in text
    assert not any(_alive(pid) for pid in members)
    assert all(group_members(pgid) == [] for pgid in groups)
    assert port_is_free("127.0.0.1", port)


def test_port_helpers() -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        assert not port_is_free("0.0.0.0", port)
        wait_for_port("127.0.0.1", port, timeout=1)
    assert port_is_free("127.0.0.1", port)
    with pytest.raises(TimeoutError, match=str(port)):
        wait_for_port("127.0.0.1", port, timeout=0.2)
    with pytest.raises(TimeoutError):
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=0.2)


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    """Every test must stop what it started: no new child of this pytest process may survive it.

    Children that existed before the test (session-scoped broker and warehouse) are not its own.
    """
    before = set(_children_of(os.getpid()))
    yield
    assert set(_children_of(os.getpid())) - before == set()
