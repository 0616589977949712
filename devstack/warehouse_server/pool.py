"""Which connection a request runs on: a pooled one, its session's, or a throwaway one.

Requests without ``session_id`` lease an idle pooled connection (a new one if none is idle).
Requests with ``session_id`` run on their session's own connection, so ``SET``, ``USE`` and
temporary tables persist between them as with ClickHouse (clickhouse-connect sends a session
id by default); a session expires ``session_timeout`` seconds after its last request, and a
request arriving while its session is busy waits up to two seconds, then is refused with
``SESSION_IS_LOCKED`` as ClickHouse refuses concurrent requests in one session.
``readonly`` cannot be undone on a connection: requests with ``readonly=2`` (every reader's, and
every GET) lease from a pool of their own, whose connections all have it on (they still change
the other settings per request); ``readonly=1`` forbids changing any setting afterwards, so
such a request runs on a throwaway connection.

Both registries are used from the event loop's thread only, so they need no locks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from devstack.warehouse_server.engine import Connection, Engine
from devstack.warehouse_server.errors import SESSION_IS_LOCKED, SESSION_NOT_FOUND, ClickHouseError


class ConnectionPool:
    """Idle connections for requests outside sessions; at most ``max_idle`` are kept."""

    def __init__(self, engine: Engine, max_idle: int) -> None:
        self._engine = engine
        self._max_idle = max_idle
        self._idle: list[Connection] = []

    def lease(self) -> Connection:
        return self._idle.pop() if self._idle else self._engine.connect()

    def release(self, conn: Connection) -> None:
        if conn.reusable and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


@dataclass
class _Session:
    conn: Connection
    busy: bool = False
    expires_at: float = 0.0


class Sessions:
    """Named sessions, each with its own connection."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._clock = clock
        self._sessions: dict[str, _Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    async def acquire(self, session_id: str, check: bool, wait_s: float = 2.0) -> Connection:
        """The session's connection (created unless ``check``).

        A session still busy after ``wait_s`` raises ``SESSION_IS_LOCKED``; the short wait
        absorbs the moment between a client reading a response and the server's bookkeeping.
        """
        self.expire()
        session = self._sessions.get(session_id)
        if session is None:
            if check:
                raise ClickHouseError(SESSION_NOT_FOUND, f"Session {session_id} not found")
            session = self._sessions[session_id] = _Session(self._engine.connect())
        deadline = self._clock() + wait_s
        while session.busy:
            if self._clock() >= deadline or self._sessions.get(session_id) is not session:
                raise ClickHouseError(SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client")
            await asyncio.sleep(0.005)
        session.busy = True
        return session.conn

    def release(self, session_id: str, timeout_s: float) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            return
        session.busy = False
        session.expires_at = self._clock() + timeout_s
        if not session.conn.reusable:
            del self._sessions[session_id]
            session.conn.close()

    def expire(self) -> None:
        """Close the sessions idle past their timeout."""
        now = self._clock()
        for session_id in [sid for sid, s in self._sessions.items() if not s.busy and s.expires_at <= now]:
            self._sessions.pop(session_id).conn.close()

    def close(self) -> None:
        for session in self._sessions.values():
            session.conn.close()
        self._sessions.clear()
