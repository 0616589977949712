"""Services that a fault test can kill -9 and start again on the same port, and the exactness check.

`Exactness` is what every fault scenario asserts: every acknowledged event is in ``events FINAL``
exactly once, and the window aggregates equal the batch recompute from raw events (the
reconciliation behind orchestration's ``stream_matches_batch`` check, `eventpulse.aggregation.reconcile`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from clickhouse_connect.driver.client import Client

from eventpulse.aggregation.compare import Difference
from eventpulse.aggregation.reconcile import reconcile
from eventpulse.aggregation.spec import WindowSpec, window_specs
from eventpulse.api_keys import DEFAULT_SCOPES, create_key
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.stream import StreamSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from tests.support.load import LoadDriver
from tests.support.pipeline import REPO, init_recovery, start_flow
from tests.support.services import free_port

EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))

FLOW_ENV = {
    "EVENTPULSE_STREAM_WINDOW_SECONDS": "[10, 60]",
    "EVENTPULSE_STREAM_SLIDING_WINDOWS": "[[30, 10]]",
    "EVENTPULSE_STREAM_IDLE_PARTITION_TIMEOUT_S": "1",
    "EVENTPULSE_STREAM_POSITION_CHECK_S": "1",
    "EVENTPULSE_STREAM_METRICS_INTERVAL_S": "1",
    "EVENTPULSE_STREAM_SINK_MAX_BACKOFF_S": "1",
    "EVENTPULSE_STREAM_RAW_INSERT_MIN_ROWS": "0",
}
"""Short windows and quick reactions for the fault scenarios (flows started by the tests and by `eventpulse up`)."""
MINUTE = WindowSpec(60, 60)


def families(env: Mapping[str, str] = FLOW_ENV) -> tuple[WindowSpec, ...]:
    """The window families a flow started with ``env`` writes."""
    names = {
        "window_seconds": "EVENTPULSE_STREAM_WINDOW_SECONDS",
        "sliding_windows": "EVENTPULSE_STREAM_SLIDING_WINDOWS",
    }
    stream = StreamSettings.model_validate({f: json.loads(env[v]) for f, v in names.items() if v in env})
    return window_specs(stream.window_seconds, stream.sliding_windows)


def kill_group(proc: subprocess.Popen) -> None:
    """kill -9 the process and its whole group (the Tansu binary under ``python -m devstack.broker``, say)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _wait(check: Callable[[], bool], proc: subprocess.Popen, what: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        if time.monotonic() > deadline:
            kill_group(proc)
            raise TimeoutError(f"{what} not ready after {timeout}s:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)


def _spawn(argv: list[str], log: Path, env: Mapping[str, str]) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=dict(env), cwd=REPO, start_new_session=True
        )


_KEPT = frozenset({"EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE"})
"""Variables a child keeps from the test session: the warehouse users every server of the session shares."""


def _child_environment() -> dict[str, str]:
    """The session's environment without its EVENTPULSE_* settings (but with `_KEPT`)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EVENTPULSE_") or k in _KEPT}


def start_gateway(
    broker: BrokerSettings, warehouse: WarehouseSettings, port: int, log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen:
    """``python -m gateway`` on ``port``; waits until ``/api/health/ready`` answers 200."""
    variables = _child_environment()
    variables |= {
        "EVENTPULSE_BROKER_BOOTSTRAP": broker.bootstrap,
        "EVENTPULSE_BROKER_EVENTS_TOPIC": broker.events_topic,
        "EVENTPULSE_BROKER_DEAD_LETTER_TOPIC": broker.dead_letter_topic,
        "EVENTPULSE_WAREHOUSE_URL": warehouse.url,
        "EVENTPULSE_WAREHOUSE_DATABASE": warehouse.database,
        "EVENTPULSE_GATEWAY_PORT": str(port),
        "EVENTPULSE_GATEWAY_LOG_REQUESTS": "none",
        **(env or {}),
    }
    proc = _spawn([sys.executable, "-m", "gateway"], log, variables)
    url = f"http://127.0.0.1:{port}/api/health/ready"
    _wait(lambda: httpx.get(url, timeout=2).status_code == 200, proc, "gateway", log, 60)
    return proc


@dataclass
class Exactness:
    """The warehouse against what the gateway acknowledged."""

    acknowledged: int
    stored: int
    missing: int
    duplicates: int
    unexpected: int  # stored ids never sent
    differences: list[Difference] = field(default_factory=list)
    missing_ids: frozenset[str] = frozenset()

    @property
    def exact(self) -> bool:
        return not (self.missing or self.duplicates or self.unexpected or self.differences)

    def describe(self) -> str:
        listed = [d.as_dict() for d in self.differences[:5]]
        return (
            f"acknowledged {self.acknowledged}, stored {self.stored}, missing {self.missing}, duplicates "
            f"{self.duplicates}, unexpected {self.unexpected}, window differences {len(self.differences)} {listed}"
        )


def overcount(differences: list[Difference], window: WindowSpec = MINUTE) -> int:
    """Events the stream counted beyond the batch recompute in ``window``'s tenant-wide rows."""
    return sum(
        d.left - d.right
        for d in differences
        if d.metric == "event_count"
        and d.key[1:3] == (window.seconds, window.slide_seconds)
        and d.key[4:] == ("*", "*")
    )


def measure(
    client: Client,
    acknowledged: Collection[str],
    sent: Collection[str],
    windows: tuple[WindowSpec, ...],
    prefix: str,
) -> Exactness:
    """Count ``events FINAL`` rows per id of this run (ids starting with ``prefix``) and reconcile the windows.

    Windows are compared whole, provisional ones included (``final_only=False``): a flow that tails
    the topic has open windows at the end of a scenario, and they must be right too.
    """
    rows = client.query(
        "SELECT id, count() FROM events FINAL WHERE startsWith(id, {p:String}) GROUP BY id", parameters={"p": prefix}
    ).result_rows
    counts = dict(rows)
    acked = set(acknowledged)
    return Exactness(
        acknowledged=len(acked),
        stored=sum(counts.values()),
        missing=len(acked - counts.keys()),
        missing_ids=frozenset(acked - counts.keys()),
        duplicates=sum(n - 1 for n in counts.values()),
        unexpected=len(counts.keys() - set(sent)),
        differences=reconcile(client, windows, *EVERYTHING, final_only=False),
    )


def wait_until_exact(
    measure_once: Callable[[], Exactness], timeout: float, done: Callable[[Exactness], bool] | None = None
) -> Exactness:
    """Measure until ``done`` (default: the warehouse is exact) or ``timeout`` seconds passed; return the
    last measurement."""
    deadline = time.monotonic() + timeout
    while True:
        result = measure_once()
        if (done(result) if done else result.exact) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def recovery_seconds(client: Client, acknowledged: Mapping[str, float], fault_at: float) -> float | None:
    """Seconds from ``fault_at`` until the first event acknowledged after it was stored (``ingested_at``)."""
    after = [i for i, at in acknowledged.items() if at > fault_at]
    if not after:
        return None
    first = client.query(
        "SELECT toUnixTimestamp64Milli(min(ingested_at)) FROM events WHERE id IN {ids:Array(String)}",
        parameters={"ids": after},
    ).result_rows[0][0]
    return max(0.0, first / 1000 - fault_at) if first else None


def check(
    warehouse: WarehouseSettings,
    load: LoadDriver,
    windows: tuple[WindowSpec, ...],
    timeout: float = 60.0,
    done: Callable[[Exactness], bool] | None = None,
) -> Exactness:
    """Wait (up to ``timeout``) until the warehouse is exact for ``load`` (or ``done``); the last measurement."""
    client = create_client(warehouse, role="admin")
    try:
        return wait_until_exact(
            lambda: measure(client, load.acknowledged, load.sent, windows, f"{load.run}-"), timeout, done
        )
    finally:
        client.close()


def worst_recovery(warehouse: WarehouseSettings, load: LoadDriver, faults: list[float]) -> float | None:
    """The worst `recovery_seconds` over the faults injected at ``faults`` (wall-clock times)."""
    client = create_client(warehouse, role="admin")
    try:
        times = [recovery_seconds(client, load.acknowledged, at) for at in faults]
    finally:
        client.close()
    known = [t for t in times if t is not None]
    return max(known) if known else None


class Pipeline:
    """Gateway and dataflow processes over a broker and a warehouse database, each killable and restartable.

    The gateway keeps its port across restarts (the load driver's URL stays valid); the flow keeps
    its recovery store (``workdir/recovery``) unless it is started with ``fresh=True``.
    """

    def __init__(
        self,
        workdir: Path,
        broker: BrokerSettings,
        warehouse: WarehouseSettings,
        flow_env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir, self.broker, self.warehouse = workdir, broker, warehouse
        self.flow_env = {**FLOW_ENV, **(flow_env or {})}
        self.gateway_port = free_port()
        self.recovery = workdir / "recovery"
        self.gateway: subprocess.Popen | None = None
        self.flow: subprocess.Popen | None = None
        self.faults: list[float] = []  # wall-clock times of the faults injected

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def key(self, tenant: str) -> str:
        client = create_client(self.warehouse, role="admin")
        try:
            return create_key(client, tenant, DEFAULT_SCOPES)[1]
        finally:
            client.close()

    def start_gateway(self) -> None:
        self.gateway = start_gateway(self.broker, self.warehouse, self.gateway_port, self.workdir / "gateway.log")

    def start_flow(self, fresh: bool = False) -> None:
        if fresh or not self.recovery.exists():
            shutil.rmtree(self.recovery, ignore_errors=True)
            init_recovery(self.recovery)
        self.flow = start_flow(
            self.broker,
            self.warehouse,
            tail=True,
            recovery_dir=self.recovery,
            extra_env=self.flow_env,
            log=self.workdir / "flow.log",
        )

    def kill(self, proc: subprocess.Popen | None) -> None:
        """kill -9 a process (group) of this pipeline and note the time of the fault."""
        assert proc is not None and proc.poll() is None, "the process to kill is not running"
        self.faults.append(time.time())
        kill_group(proc)

    def client(self) -> Client:
        return create_client(self.warehouse, role="admin")

    def check(
        self, load: LoadDriver, timeout: float = 60.0, done: Callable[[Exactness], bool] | None = None
    ) -> Exactness:
        return check(self.warehouse, load, families(self.flow_env), timeout, done)

    def wait_stored(self, load: LoadDriver, timeout: float = 60.0) -> None:
        """Block until every event ``load`` has acknowledged so far is in ``events`` (the flow caught up)."""
        ids = list(load.acknowledged)
        client = self.client()
        try:
            deadline = time.monotonic() + timeout
            while True:
                stored = client.query(
                    "SELECT uniqExact(id) FROM events WHERE id IN {ids:Array(String)}", parameters={"ids": ids}
                ).result_rows[0][0]
                if stored == len(ids):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{stored} of {len(ids)} acknowledged events stored after {timeout}s")
                time.sleep(0.2)
        finally:
            client.close()

    def recovery_s(self, load: LoadDriver) -> float | None:
        return worst_recovery(self.warehouse, load, self.faults)

    def close(self) -> None:
        for proc in (self.gateway, self.flow):
            if proc is not None and proc.poll() is None:
                kill_group(proc)


class Up:
    """``eventpulse up`` (broker, warehouse, flow, gateway; no Dagster, no dashboard) on free ports.

    ``data_dir`` holds the broker's store and the flow's recovery store; ``warehouse_path`` the chDB
    directory (two stacks can share it one after the other: "a second `eventpulse up` on one warehouse").
    """

    def __init__(
        self,
        workdir: Path,
        data_dir: Path,
        warehouse_path: Path,
        env: Mapping[str, str] | None = None,
        ports: Mapping[str, int] | None = None,
    ) -> None:
        self.workdir, self.data_dir, self.warehouse_path = workdir, data_dir, warehouse_path
        names = ("BROKER", "BROKER_STORE", "WAREHOUSE", "GATEWAY", "REDIS")
        self.ports = dict(ports) if ports else {name: free_port() for name in names}
        self.env = {**FLOW_ENV, "EVENTPULSE_STACK_RESTART_BACKOFF_S": "0.2", **(env or {})}
        self.log = workdir / f"up-{self.ports['GATEWAY']}.log"
        self.proc: subprocess.Popen | None = None
        self.faults: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['GATEWAY']}"

    @property
    def warehouse(self) -> WarehouseSettings:
        return WarehouseSettings(url=f"http://127.0.0.1:{self.ports['WAREHOUSE']}")

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def start(self, timeout: float = 120.0) -> None:
        env = _child_environment()
        env |= {f"EVENTPULSE_{name}_PORT": str(port) for name, port in self.ports.items()}
        env |= {"EVENTPULSE_DATA_DIR": str(self.data_dir), "EVENTPULSE_WAREHOUSE_PATH": str(self.warehouse_path)}
        env |= self.env
        argv = [sys.executable, "-m", "cli", "up", "--without", "dagster", "--without", "dashboard"]
        mark = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        _wait(
            lambda: "all services ready" in self.log.read_text(errors="replace")[mark:],
            self.proc,
            "up",
            self.log,
            timeout,
        )

    def pids(self) -> dict[str, int]:
        """``{service: pid}`` of the latest start of each service (each leads its process group)."""
        found = re.findall(r"started (\w+)(?: again \(restart \d+\))? \(pid (\d+)\)", self.text())
        return {name: int(pid) for name, pid in found}

    def crash(self, service: str, timeout: float = 60.0) -> float:
        """kill -9 a service's process group; wait until the supervisor has it ready again; its downtime (s)."""
        before = self.text().count(f"{service} is ready again")
        self.faults.append(time.time())
        os.killpg(self.pids()[service], signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while self.text().count(f"{service} is ready again") == before:
            assert self.proc is not None and self.proc.poll() is None, self.text()[-4000:]
            assert time.monotonic() < deadline, f"{service} not restarted:\n{self.text()[-4000:]}"
            time.sleep(0.1)
        return time.time() - self.faults[-1]

    def key(self, tenant: str) -> str:
        client = create_client(self.warehouse, role="admin")
        try:
            return create_key(client, tenant, DEFAULT_SCOPES)[1]
        finally:
            client.close()

    def check(
        self, load: LoadDriver, timeout: float = 60.0, done: Callable[[Exactness], bool] | None = None
    ) -> Exactness:
        return check(self.warehouse, load, families(self.env), timeout, done)

    def recovery_s(self, load: LoadDriver) -> float | None:
        return worst_recovery(self.warehouse, load, self.faults)

    def stop(self) -> int:
        """Ctrl-C (SIGINT) and wait; the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)

    def kill(self) -> None:
        """Whatever is left of this stack, killed (clean-up after a failed test)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pgid in self.pids().values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
