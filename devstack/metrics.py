"""Service restarts as rows of the warehouse's ``pipeline_metrics`` table (the health page reads them).

Per exit that the supervisor handles (:class:`~devstack.supervisor.ServiceEvent`), with
``process = "eventpulse-up:<host>:<pid>"`` and the service's name as ``label``:

* ``service_restarts_total``: the service's restarts so far in this run (this one included);
* ``service_exit_status``: how it ended (negative: the signal that killed it);
* ``service_gave_up``: the restart limit was reached and the stack stopped (value: its restarts).

Best effort and off the supervising thread: the warehouse may be the service that just crashed,
so rows wait (up to ``max_pending``) and are retried until it answers; what is still unwritten
when the stack stops is dropped with a warning.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from urllib.parse import urlsplit

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from devstack.ports import port_open
from devstack.supervisor import ServiceEvent
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client

log = logging.getLogger(__name__)

Row = tuple[int, str, str, float]  # (time ms, metric, label, value)


def event_rows(event: ServiceEvent) -> list[Row]:
    """The ``pipeline_metrics`` rows that record one exit."""
    at = int(event.at * 1000)
    rows: list[Row] = [(at, "service_exit_status", event.service, float(event.status or 0))]
    if event.gave_up:
        rows.append((at, "service_gave_up", event.service, float(event.restarts)))
    else:
        rows.append((at, "service_restarts_total", event.service, float(event.restarts)))
    return rows


class RestartMetrics:
    """Writes :func:`event_rows` to ``pipeline_metrics`` from a background thread.

    Args:
        warehouse: where to write (the stack's own warehouse).
        retry_s: seconds between attempts while the warehouse does not answer.
        max_pending: rows kept while it is down (the oldest are dropped first).
    """

    def __init__(self, warehouse: WarehouseSettings, *, retry_s: float = 2.0, max_pending: int = 10_000) -> None:
        self.warehouse = warehouse
        self.retry_s = retry_s
        self.max_pending = max_pending
        self.process = f"eventpulse-up:{socket.gethostname()}:{os.getpid()}"
        self.written = 0
        self._queue: queue.Queue[Row | None] = queue.Queue()
        self._pending: list[Row] = []
        self._client: Client | None = None
        self._thread = threading.Thread(target=self._run, name="restart-metrics", daemon=True)
        self._thread.start()

    def record(self, event: ServiceEvent) -> None:
        """Queue the rows of ``event`` (never blocks: usable as the supervisor's ``on_event``)."""
        for row in event_rows(event):
            self._queue.put(row)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (one last try within ``timeout``), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        closing = False
        while True:
            try:
                item = self._queue.get(timeout=self.retry_s if self._pending else None)
                if item is None:
                    closing = True
                else:
                    self._pending.append(item)
                while not closing:  # take whatever else is queued, so one insert writes it all
                    item = self._queue.get_nowait()
                    if item is None:
                        closing = True
                    else:
                        self._pending.append(item)
            except queue.Empty:
                pass
            del self._pending[: max(0, len(self._pending) - self.max_pending)]
            if self._pending:
                self._write()
            if closing:
                if self._pending:
                    log.warning(
                        "%d service restart metric row(s) not written: the warehouse is down", len(self._pending)
                    )
                return

    def _reachable(self) -> bool:
        parts = urlsplit(self.warehouse.url)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            return True  # chdb:// and the like: let the client tell
        port = parts.port or (8443 if parts.scheme == "https" else 8123)
        return port_open(parts.hostname, port, timeout=self.warehouse.connect_timeout_s)

    def _write(self) -> None:
        times, metrics, labels, values = zip(*self._pending, strict=True)
        table = pa.table(
            {
                "time": pa.array(times, pa.timestamp("ms", "UTC")),
                "process": [self.process] * len(times),
                "metric": list(metrics),
                "label": list(labels),
                "value": pa.array(values, pa.float64()),
            }
        )
        if not self._reachable():
            return  # quietly: the client would log a warning per attempt while the server restarts
        try:
            self._client = self._client or create_client(self.warehouse, role="writer")
            self._client.insert_arrow("pipeline_metrics", table)
        except Exception as exc:  # down, not migrated yet, restarting: try again later
            log.info("service restart metrics not written yet: %s", exc)
            self._client = None  # the queue's timeout paces the retries
            return
        self.written += len(self._pending)
        self._pending.clear()
