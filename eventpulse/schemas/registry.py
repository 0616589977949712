"""The registry as validation reads it: the latest schema of each (tenant, event type), compiled, refreshed.

`SchemaRegistry` holds one immutable `SchemaSnapshot` and swaps it whole on each refresh, so a reader
(the gateway's event loop, the dataflow's decode step) sees one version per subject for the whole of a
call. The gateway refreshes it in the background (`gateway.schema_registry`), the dataflow between two
micro-batches (`refresh_if_due`); a failed read keeps the snapshot it has, and until the first good one
no schema applies (logged). Compiled validators are kept across refreshes while their version stays.

Validation checks an event's ``data`` (the envelope is the contract's, `eventpulse.events.contract`):
a violation is refused with reason ``schema_violation``, ``field`` the JSON pointer of the offending value
in the event (``/data/items/0/sku``; for a missing required property, where it should be) and a detail
naming the version and the failed keyword.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from eventpulse.events.rejections import Rejection, RejectReason
from eventpulse.schemas.store import SchemaVersion, compile_schema, latest_versions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveSchema:
    version: int
    fingerprint: str
    validator: Any  # jsonschema_rs.Draft202012Validator


@dataclass(frozen=True, slots=True)
class SchemaSnapshot:
    """The latest schema of every subject (``(tenant, event_type)``), compiled."""

    schemas: dict[tuple[str, str], LiveSchema] = field(default_factory=dict)

    def version_of(self, tenant: str, event_type: str) -> int:
        """The version events of this subject are checked against now (0: none registered)."""
        live = self.schemas.get((tenant, event_type))
        return live.version if live is not None else 0

    def accepts(self, tenant: str, event_type: str, data: Any) -> bool:
        """Whether ``data`` passes the subject's latest schema (True when it has none): what fast paths ask."""
        live = self.schemas.get((tenant, event_type))
        return live is None or live.validator.is_valid(data)

    def unsure(self, tenants: list[str], types: list[str], texts: list[str]) -> set[int]:
        """Positions of the events (``data`` as JSON ``texts``) that break their subject's schema, or whose
        ``data`` does not decode: the wire-batch fast path sends them to the general path, which refuses them."""
        out: set[int] = set()
        schemas = self.schemas
        for k, key in enumerate(zip(tenants, types, strict=True)):
            live = schemas.get(key)
            if live is None:
                continue
            try:
                if not live.validator.is_valid(orjson.loads(texts[k])):
                    out.add(k)
            except orjson.JSONDecodeError:
                out.add(k)
        return out

    def check(self, tenant: str, event_type: str, data: Any) -> Rejection | None:
        """Why ``data`` breaks the subject's latest schema, or None (also when it has none)."""
        live = self.schemas.get((tenant, event_type))
        if live is None or live.validator.is_valid(data):
            return None
        error = next(iter(live.validator.iter_errors(data)))
        path = [str(p) for p in error.instance_path]
        missing = getattr(error.kind, "property", None)
        if type(error.kind).__name__ == "Required" and isinstance(missing, str):
            path.append(missing)
        pointer = "/data" + "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)
        keyword = "/" + "/".join(str(p) for p in error.schema_path)
        return Rejection(
            RejectReason.SCHEMA_VIOLATION,
            pointer,
            f"data does not match schema v{live.version} of {event_type!r}: {error.message}"
            f" (at {pointer}, schema keyword {keyword})"[:2000],
        )


EMPTY = SchemaSnapshot()


def compile_snapshot(rows: Iterable[SchemaVersion], previous: SchemaSnapshot = EMPTY) -> SchemaSnapshot:
    """A snapshot of ``rows`` (latest versions); validators of unchanged versions are taken from ``previous``.
    A schema that does not compile is left out (and logged): its subject is then not checked."""
    schemas: dict[tuple[str, str], LiveSchema] = {}
    for row in rows:
        key = (row.tenant, row.event_type)
        held = previous.schemas.get(key)
        if held is not None and held.version == row.version and held.fingerprint == row.fingerprint:
            schemas[key] = held
            continue
        try:
            schemas[key] = LiveSchema(row.version, row.fingerprint, compile_schema(row.schema))
        except (ValueError, TypeError) as exc:
            log.warning("schema skipped", extra={"tenant": row.tenant, "type": row.event_type, "error": str(exc)})
    return SchemaSnapshot(schemas)


class SchemaRegistry:
    """The current `SchemaSnapshot`, replaced by `reload` (``snapshot`` is read without a lock: one assignment)."""

    def __init__(
        self,
        client_factory: Callable[[], Client] | None = None,
        refresh_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.snapshot: SchemaSnapshot = EMPTY
        self._client_factory = client_factory
        self._client: Client | None = None
        self._refresh_s = refresh_s
        self._clock = clock
        self._read_at: float | None = None
        self._reloading = threading.Lock()  # one reload at a time (dataflow workers are threads)
        self.last_error: str | None = None

    @classmethod
    def of(cls, rows: Iterable[SchemaVersion]) -> SchemaRegistry:
        """A registry that never reloads, holding ``rows`` (tests, benchmarks)."""
        registry = cls()
        registry.snapshot = compile_snapshot(rows)
        return registry

    def pinned(self) -> SchemaRegistry:
        """A registry that never reloads, holding the current snapshot: one micro-batch is validated, and its
        versions recorded, against one snapshot even while another worker thread reloads this one."""
        registry = SchemaRegistry()
        registry.snapshot = self.snapshot
        return registry

    def reload(self) -> int:
        """Read the latest versions now (blocking); returns how many subjects have a schema."""
        if self._client_factory is None:
            return len(self.snapshot.schemas)
        if self._client is None:
            self._client = self._client_factory()
        try:
            rows = latest_versions(self._client)
        except Exception:
            self._client = None  # reconnect next time
            raise
        self.snapshot = compile_snapshot(rows, self.snapshot)
        self.last_error = None
        return len(self.snapshot.schemas)

    def refresh_if_due(self) -> None:
        """`reload` when ``refresh_s`` has passed since the last try; a failure is logged, the snapshot kept."""
        now = self._clock()
        if self._client_factory is None or (self._read_at is not None and now - self._read_at < self._refresh_s):
            return
        if not self._reloading.acquire(blocking=False):
            return  # another thread is reloading
        try:
            self._read_at = now
            self.reload()
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("schema registry reload failed; the last one read stays", extra={"error": self.last_error})
        finally:
            self._reloading.release()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
