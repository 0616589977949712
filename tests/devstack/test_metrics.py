"""Service restarts written to the real warehouse's ``pipeline_metrics`` (best effort while it is down)."""

import io
import os
import signal
import sys
import threading
import time
import uuid

import pytest

from devstack.metrics import RestartMetrics
from devstack.ports import free_port
from devstack.supervisor import RestartPolicy, ServiceEvent, ServiceSpec, Supervisor
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate

pytestmark = pytest.mark.integration

ROWS = """
    SELECT metric, label, value, process FROM pipeline_metrics
    WHERE metric LIKE 'service_%' ORDER BY time, metric"""


def _rows(settings: WarehouseSettings) -> list[tuple]:
    client = create_client(settings, role="admin")
    try:
        return [tuple(r) for r in client.query(ROWS).result_rows]
    finally:
        client.close()


def _event(service: str, status: int, restarts: int, gave_up: bool = False) -> ServiceEvent:
    return ServiceEvent(service, status, "test", restarts, gave_up, 0.0 if gave_up else 1.0, time.time())


def test_restarts_of_a_supervised_service_land_in_pipeline_metrics(warehouse: WarehouseSettings) -> None:
    metrics = RestartMetrics(warehouse)
    argv = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(300)"]
    sup = Supervisor(
        [ServiceSpec("svc", argv, ready_line="up")],
        out=io.StringIO(),
        restart=RestartPolicy(backoff_s=0.05),
        on_event=metrics.record,
    )
    done = threading.Event()

    def run() -> None:
        sup.start()
        for _ in range(2):
            pid = sup.pids()["svc"]
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while not (sup.states()["svc"] == "ready" and sup.pids()["svc"] != pid):
                assert time.monotonic() < deadline
                sup._supervise_once()
                time.sleep(0.02)
        sup.stop()
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert done.is_set()
    metrics.close()

    rows = _rows(warehouse)
    assert [(m, label, v) for m, label, v, _ in rows] == [
        ("service_exit_status", "svc", -9.0),
        ("service_restarts_total", "svc", 1.0),
        ("service_exit_status", "svc", -9.0),
        ("service_restarts_total", "svc", 2.0),
    ]
    assert {p for *_, p in rows} == {metrics.process} and metrics.process.startswith("eventpulse-up:")
    assert metrics.written == 4


def test_a_warehouse_that_is_down_costs_nothing_and_loses_only_what_it_missed() -> None:
    down = WarehouseSettings(url=f"http://127.0.0.1:{free_port()}", connect_timeout_s=0.5)
    metrics = RestartMetrics(down, retry_s=0.1)
    started = time.monotonic()
    metrics.record(_event("flow", 1, 1))  # never blocks the supervisor
    assert time.monotonic() - started < 0.05
    time.sleep(0.5)
    metrics.close(timeout=3)
    assert metrics.written == 0 and not metrics._thread.is_alive()


def test_rows_wait_until_the_warehouse_is_ready(warehouse_url: str) -> None:
    """At start-up the database is not migrated yet: rows are kept and written once it is."""
    settings = WarehouseSettings(url=warehouse_url, database=f"t_{uuid.uuid4().hex[:12]}")
    metrics = RestartMetrics(settings, retry_s=0.2)
    metrics.record(_event("warehouse", -9, 1))
    time.sleep(0.5)
    assert metrics.written == 0  # no database, no table yet
    migrate(settings)
    deadline = time.monotonic() + 10
    while metrics.written < 2:
        assert time.monotonic() < deadline, "pending rows were not retried"
        time.sleep(0.1)
    metrics.record(_event("warehouse", -9, 1, gave_up=True))
    metrics.close()
    assert [(m, label, v) for m, label, v, _ in _rows(settings)] == [
        ("service_exit_status", "warehouse", -9.0),
        ("service_restarts_total", "warehouse", 1.0),
        ("service_exit_status", "warehouse", -9.0),
        ("service_gave_up", "warehouse", 1.0),
    ]
