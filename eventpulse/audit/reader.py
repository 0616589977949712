"""Reading the audit log back: filtered listings (newest first) and a follow mode (oldest first)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from eventpulse.audit.model import COLUMNS, AuditEntry
from eventpulse.audit.writer import TABLE

_DT = "DateTime64(6, 'UTC')"


@dataclass(frozen=True)
class AuditQuery:
    """Filters; empty ones match everything. ``action`` matches exactly or as an area (``api_key``)."""

    actor: str = ""
    action: str = ""
    tenant: str = ""
    result: str = ""
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100

    def where(self) -> tuple[str, dict[str, Any]]:
        """The WHERE clause and its bound parameters."""
        clauses: list[str] = ["1"]
        params: dict[str, Any] = {}
        if self.actor:
            clauses.append("actor = {actor:String}")
            params["actor"] = self.actor
        if self.action:
            clauses.append("(action = {action:String} OR startsWith(action, concat({action:String}, '.')))")
            params["action"] = self.action
        if self.tenant:
            clauses.append("tenant = {tenant:String}")
            params["tenant"] = self.tenant
        if self.result:
            clauses.append("result = {result:String}")
            params["result"] = self.result
        if self.since is not None:
            clauses.append(f"time >= {{since:{_DT}}}")
            params["since"] = self.since
        if self.until is not None:
            clauses.append(f"time < {{until:{_DT}}}")
            params["until"] = self.until
        return " AND ".join(clauses), params


def read_audit(client: Client, query: AuditQuery) -> list[AuditEntry]:
    """The newest ``query.limit`` rows matching ``query``, newest first."""
    where, params = query.where()
    result = client.query(
        f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {where} ORDER BY time DESC, event_id DESC "
        "LIMIT {limit:UInt32}",
        parameters={**params, "limit": query.limit},
    )
    return [_entry(row) for row in result.result_rows]


def follow_audit(
    client: Client,
    query: AuditQuery,
    *,
    poll_s: float = 1.0,
    overlap_s: float = 10.0,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[AuditEntry]:
    """The last ``query.limit`` matching rows, then every new one as it arrives, oldest first.

    Writers stamp a row before inserting it, so a row may land a little after a later-stamped one:
    each poll looks back ``overlap_s`` before the newest row seen and skips the ids already shown.
    """
    seen: deque[str] = deque(maxlen=100_000)
    seen_set: set[str] = set()
    backlog = list(reversed(read_audit(client, query)))
    newest = query.since
    while True:
        for entry in backlog:
            if entry.event_id in seen_set:
                continue
            if len(seen) == seen.maxlen:
                seen_set.discard(seen[0])
            seen.append(entry.event_id)
            seen_set.add(entry.event_id)
            newest = entry.time if newest is None else max(newest, entry.time)
            yield entry
        if stop():
            return
        time.sleep(poll_s)
        since = newest - timedelta(seconds=overlap_s) if newest is not None else None
        backlog = _oldest_first(client, replace(query, since=since, limit=10_000))


def _oldest_first(client: Client, query: AuditQuery) -> list[AuditEntry]:
    where, params = query.where()
    result = client.query(
        f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {where} ORDER BY time, event_id LIMIT {{limit:UInt32}}",
        parameters={**params, "limit": query.limit},
    )
    return [_entry(row) for row in result.result_rows]


def _entry(row: Sequence[Any]) -> AuditEntry:
    values = dict(zip(COLUMNS, row, strict=True))
    values["parameters"] = orjson.loads(values["parameters"] or "{}")
    if values["time"].tzinfo is None:  # clickhouse-connect returns naive UTC times
        values["time"] = values["time"].replace(tzinfo=UTC)
    return AuditEntry(**values)
