"""Pipeline incidents and topic incarnations: what went wrong, what was done, in the warehouse.

An incident is a fault the pipeline detected and survived, e.g. a source position beyond the log
end after the broker lost its data: the dataflow resets by its policy, records an
`Incident` in ``pipeline_incidents`` (migration 0050) and goes on; the consumer-lag sensor alerts
on it and the health page lists it. ``topic_incarnations`` records each incarnation of a topic
partition the dataflow read (see `flows.source`), which the insert deduplication tokens name.

Writes are best effort with a retry queue (`IncidentLog`): a fault often comes with the warehouse
briefly away too, and the flow must not stop because it could not report.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import astuple, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Incident:
    """One row of ``pipeline_incidents``; offsets are -1 when unknown."""

    component: str
    kind: str  # e.g. position_past_end, position_before_start, topic_recreated
    topic: str
    partition: int
    expected_offset: int
    log_start: int
    log_end: int
    action: str
    detail: str
    time: datetime = field(default_factory=_now)
    process: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    incident_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def describe(self) -> str:
        return (
            f"{self.kind} on {self.topic}[{self.partition}]: position {self.expected_offset}, "
            f"log [{self.log_start}, {self.log_end}); {self.action}"
        )


@dataclass(frozen=True, slots=True)
class Incarnation:
    """One row of ``topic_incarnations``."""

    topic: str
    partition: int
    incarnation: str
    topic_id: str
    start_offset: int
    reason: str  # "start" (no resume state) or "reset" (after an incident)
    started_at: datetime = field(default_factory=_now)


INCIDENT_COLUMNS = tuple(f.name for f in fields(Incident))
INCARNATION_COLUMNS = tuple(f.name for f in fields(Incarnation))


def insert_incidents(client: Client, incidents: Sequence[Incident]) -> None:
    """Insert ``incidents`` (the server drops a retried identical insert by its token)."""
    if incidents:
        token = "incidents:" + ",".join(i.incident_id for i in incidents)
        client.insert(
            "pipeline_incidents",
            [astuple(i) for i in incidents],
            column_names=list(INCIDENT_COLUMNS),
            settings={"insert_deduplication_token": token},
        )


def insert_incarnations(client: Client, incarnations: Sequence[Incarnation]) -> None:
    if incarnations:
        client.insert("topic_incarnations", [astuple(i) for i in incarnations], column_names=list(INCARNATION_COLUMNS))


def recent_incidents(client: Client, since: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """Incidents recorded at or after ``since``, oldest first."""
    result = client.query(
        f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM pipeline_incidents FINAL "
        "WHERE time >= {since:DateTime64(3, 'UTC')} ORDER BY time, incident_id LIMIT {limit:UInt32}",
        parameters={"since": since, "limit": limit},
    )
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def current_incarnations(client: Client, topic: str) -> dict[int, dict[str, Any]]:
    """The latest recorded incarnation per partition of ``topic``: ``{partition: row}``."""
    result = client.query(
        "SELECT partition, argMax(incarnation, started_at), argMax(topic_id, started_at), max(started_at) "
        "FROM topic_incarnations FINAL WHERE topic = {topic:String} GROUP BY partition",
        parameters={"topic": topic},
    )
    return {
        int(p): {"incarnation": inc, "topic_id": tid, "started_at": started}
        for p, inc, tid, started in result.result_rows
    }


class IncidentLog:
    """Thread-safe writer of incidents and incarnations for one process, with a retry queue.

    `record` and `incarnation` try to write at once; what fails stays queued and goes with the
    next call or `flush` (the source calls it on its periodic position check).
    """

    def __init__(self, warehouse: WarehouseSettings | None) -> None:
        self._warehouse = warehouse
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._incidents: list[Incident] = []
        self._incarnations: list[Incarnation] = []

    def record(self, incident: Incident) -> None:
        log.error("pipeline incident: %s (%s)", incident.describe(), incident.detail)
        with self._lock:
            self._incidents.append(incident)
        self.flush()

    def incarnation(self, incarnation: Incarnation) -> None:
        with self._lock:
            self._incarnations.append(incarnation)
        self.flush()

    def flush(self) -> bool:
        """Write what is queued; False if something is still waiting for the warehouse."""
        with self._lock:
            if self._warehouse is None:
                self._incidents.clear()
                self._incarnations.clear()
                return True
            if not self._incidents and not self._incarnations:
                return True
            try:
                self._client = self._client or create_client(self._warehouse, role="writer")
                insert_incidents(self._client, self._incidents)
                self._incidents.clear()
                insert_incarnations(self._client, self._incarnations)
                self._incarnations.clear()
                return True
            except Exception as exc:  # the warehouse may be down: keep them for the next try
                log.warning("incidents not written yet (%d queued): %s", len(self._incidents), exc)
                self._client = None
                return False
