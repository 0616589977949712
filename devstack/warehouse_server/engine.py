"""The chDB engine and its connections, with per-request settings and database.

A process hosts one chDB engine, bound to one data directory. Any number of connections may be
open on it; each keeps its own session state (``SET``, ``USE``, temporary tables) and runs one
statement at a time: calls on one connection from several threads are serialised by chDB (a
query measured 0.1 s alone took 0.43 s for four threads sharing a connection and 0.22 s for four
connections on two cores). The server therefore gives every request a connection of its own.

A request's URL settings and ``database`` apply to that request only, as in ClickHouse. A
`Connection` remembers what it applied and, for the next request, changes only the difference
(clients send the same settings with every request, so usually nothing), restoring dropped
settings to the connection's baseline (the values of a fresh connection, or of its session).

Every method may block (it runs the engine) and is called from a worker thread; a connection
is used by one request at a time.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chdb

from devstack.warehouse_server.errors import ClickHouseError

_CHANGED_SETTINGS = "SELECT name, value FROM system.settings WHERE changed"


class EngineOpenError(RuntimeError):
    """The chDB data directory cannot be opened (typically: another process has it open)."""


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _setting_literal(value: str) -> str:
    """A SQL literal for a setting value given as text (URL parameter or system.settings).

    Quoting every value is safe: ClickHouse converts a string literal to the setting's type.
    A value already in quotes is an expression as system.settings shows it (``'auto(2)'``).
    """
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _run(raw: Any, sql: str | bytes, fmt: str = "TabSeparated", params: Mapping[str, str] | None = None) -> Any:
    try:
        return raw.query(sql, fmt, params=dict(params or {}))
    except Exception as exc:
        raise ClickHouseError.from_exception(exc) from None


@dataclass(frozen=True)
class QueryResult:
    data: bytes
    summary: dict[str, str]


def _summary(result: Any, result_bytes: int | None = None) -> dict[str, str]:
    """Statistics in the shape of ClickHouse's ``X-ClickHouse-Summary`` (numbers as strings)."""
    summary = {
        "read_rows": str(result.rows_read()),
        "read_bytes": str(result.bytes_read()),
        "written_rows": str(result.rows_written()),
        "written_bytes": str(result.bytes_written()),
        "total_rows_to_read": "0",
        "elapsed_ns": str(int(result.elapsed() * 1e9)),
    }
    if result_bytes is not None:
        summary["result_bytes"] = str(result_bytes)
    return summary


class Stream:
    """A running query whose output is read block by block (one Native block per chunk)."""

    def __init__(self, streaming: Any) -> None:
        self._streaming = streaming
        self._done = False

    def next(self) -> bytes | None:
        """The next chunk of output, or ``None`` at the end."""
        if self._done or self._streaming is None:
            return None
        try:
            chunk = self._streaming.fetch()
        except Exception as exc:
            self._done = True
            raise ClickHouseError.from_exception(exc) from None
        if chunk is None:
            self._done = True
            return None
        return chunk.bytes()

    @property
    def open(self) -> bool:
        return self._streaming is not None

    def close(self) -> None:
        """Stop the query if it is still running (the connection is free again). Idempotent."""
        self._done = True
        streaming, self._streaming = self._streaming, None
        if streaming is None:
            return
        with contextlib.suppress(Exception):  # a failed cancel leaves nothing to clean up here
            streaming.close()


class Insert:
    """An ``INSERT`` whose data is appended in chunks of its input format."""

    def __init__(self, inserter: Any) -> None:
        self._inserter = inserter

    def append(self, data: bytes) -> None:
        if data:
            try:
                self._inserter.append(data)
            except Exception as exc:
                raise ClickHouseError.from_exception(exc) from None

    def finish(self) -> dict[str, str]:
        try:
            result = self._inserter.finish()
        except Exception as exc:
            raise ClickHouseError.from_exception(exc) from None
        return {
            "read_rows": "0",
            "read_bytes": "0",
            "written_rows": str(result.rows_written),
            "written_bytes": str(result.bytes_written),
            "total_rows_to_read": "0",
            "elapsed_ns": str(int(result.elapsed * 1e9)),
        }

    def cancel(self) -> None:
        with contextlib.suppress(Exception):
            self._inserter.cancel()


@dataclass
class Connection:
    """One chDB connection and the session state the server keeps track of."""

    raw: Any
    baseline: dict[str, str]
    """Setting values to restore (name -> value as in system.settings); others go to DEFAULT."""
    baseline_db: str = "default"
    applied: dict[str, str] = field(default_factory=dict)
    current_db: str = "default"
    reusable: bool = True
    """False once the connection's state is unknown or changed for good; it is then closed."""

    def prepare(self, settings: Mapping[str, str], database: str | None) -> None:
        """Make exactly ``settings`` (on top of the baseline) and ``database`` current."""
        for name in [name for name in self.applied if name not in settings]:
            restore = _setting_literal(self.baseline[name]) if name in self.baseline else "DEFAULT"
            del self.applied[name]
            self._set(name, restore)
        # readonly last: once it is on, no other setting may change
        for name, value in sorted(settings.items(), key=lambda item: item[0] == "readonly"):
            if self.applied.get(name) != value:
                self._set(name, _setting_literal(value))  # if it fails, the old value stays in effect
                self.applied[name] = value
        target = database or self.baseline_db
        if target != self.current_db:
            _run(self.raw, f"USE {quote_identifier(target)}")
            self.current_db = target

    def _set(self, name: str, literal: str) -> None:
        try:
            _run(self.raw, f"SET {quote_identifier(name)} = {literal}")
        except ClickHouseError:
            if name in self.baseline or literal == "DEFAULT":  # a restore failed: state unknown
                self.reusable = False
            raise

    def adopt_session_state(self, kind: str) -> None:
        """After a ``SET``/``USE`` in a session: what it changed becomes the session's baseline."""
        if kind == "USE":
            self.baseline_db = self.current_db = _run(self.raw, "SELECT currentDatabase()").bytes().decode().strip()
            return
        rows = _run(self.raw, _CHANGED_SETTINGS, "JSONEachRow").bytes().splitlines()
        changed = {row["name"]: row["value"] for row in map(json.loads, rows)}
        baseline = {}
        for name, value in changed.items():
            if self.applied.get(name) == value:  # still the URL's value: the baseline is unchanged
                if name in self.baseline:
                    baseline[name] = self.baseline[name]
            else:
                baseline[name] = value
                self.applied.pop(name, None)  # the SET overrides the URL's value from now on
        for name in [name for name in self.applied if name not in changed]:  # SET ... = DEFAULT
            del self.applied[name]
        self.baseline = baseline

    def query(self, sql: bytes, fmt: str, params: Mapping[str, str]) -> QueryResult:
        result = _run(self.raw, sql, fmt, params)
        data = result.bytes()
        return QueryResult(data, _summary(result, len(data)))

    def stream(self, sql: bytes, fmt: str, params: Mapping[str, str]) -> Stream:
        try:
            streaming = self.raw.send_query(sql, fmt, params=dict(params))
        except Exception as exc:
            raise ClickHouseError.from_exception(exc) from None
        return Stream(streaming)

    def insert(self, head: bytes, fmt: str) -> Insert:
        try:
            return Insert(self.raw.send_insert(head.decode("utf-8"), fmt))
        except Exception as exc:
            raise ClickHouseError.from_exception(exc) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()


class Engine:
    """The process's chDB engine on ``path``: opens connections and knows the server's facts."""

    def __init__(self, path: Path, default_database: str = "default") -> None:
        self.path = Path(path)
        self.default_database = default_database
        """Where a request that names no database lands (ClickHouse's ``default_database``); created if missing."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            # Held until close(): the engine stays up while connections come and go.
            self._anchor = chdb.connect(str(self.path))
        except Exception as exc:
            raise EngineOpenError(
                f"cannot open the chDB warehouse at {self.path}: {exc} "
                "(only one process may open a chDB path: is a warehouse server already running on it?)"
            ) from None
        self._lock = threading.Lock()
        self._closed = False
        version, timezone = _run(self._anchor, "SELECT version(), timezone()").bytes().decode().split()
        self.version: str = version
        self.timezone: str = timezone
        rows = _run(self._anchor, "SELECT name, is_input, is_output FROM system.formats", "JSONEachRow")
        formats = [json.loads(line) for line in rows.bytes().splitlines()]
        self.input_formats = {f["name"].lower(): f["name"] for f in formats if f["is_input"]}
        self.output_formats = {f["name"].lower(): f["name"] for f in formats if f["is_output"]}
        rows = _run(self._anchor, "SELECT name FROM system.table_functions", "TabSeparated").bytes().splitlines()
        self.table_functions: frozenset[str] = frozenset(name.decode().lower() for name in rows)
        rows = _run(self._anchor, _CHANGED_SETTINGS, "JSONEachRow").bytes().splitlines()
        self._baseline = {row["name"]: row["value"] for row in map(json.loads, rows)}
        _run(self._anchor, f"CREATE DATABASE IF NOT EXISTS {quote_identifier(default_database)}")

    def connect(self) -> Connection:
        """A new connection, in the state of a fresh session."""
        with self._lock:
            if self._closed:
                raise ClickHouseError.from_exception(RuntimeError("the warehouse engine is shut down"))
            raw = chdb.connect(str(self.path))
        return Connection(raw, dict(self._baseline), baseline_db=self.default_database)

    def close(self) -> None:
        """Close the anchor connection (the engine stops when its last connection closes)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(Exception):
            self._anchor.close()
