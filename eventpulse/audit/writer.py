"""`AuditWriter`: the one way rows get into ``audit_log``.

An admin action is recorded with one synchronous insert (ClickHouse answers an insert once its part
is written; no ``async_insert``), so by the time the command reports success its row is stored. A
writer that cannot write raises: an admin action that cannot be audited is not reported as done.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import uuid_utils
from clickhouse_connect.driver.client import Client

from eventpulse.access.credentials import Role
from eventpulse.audit.model import COLUMNS, FAILURE, SUCCESS, Action, Actor, AuditEntry, redact
from eventpulse.config.warehouse import WarehouseSettings

TABLE = "audit_log"


class AuditWriter:
    """Writes audit rows for ``actor`` (each call may name another actor) through ``client``.

    Example:
        >>> writer = AuditWriter(client, Actor.local_cli())  # doctest: +SKIP
        >>> with writer.recorded(Action.API_KEY_REVOKE, target=key_id, tenant="acme"):  # doctest: +SKIP
        ...     revoke(...)  # a raised exception is recorded as result=failure, then re-raised
    """

    def __init__(self, client: Client, actor: Actor, *, owns_client: bool = False) -> None:
        self.client = client
        self.actor = actor
        self._owns_client = owns_client

    def entry(
        self,
        action: Action | str,
        *,
        target: str = "",
        tenant: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        result: str = SUCCESS,
        error: str = "",
        request_id: str = "",
        actor: Actor | None = None,
    ) -> AuditEntry:
        """An entry stamped now, for ``actor`` (default: the writer's); nothing is written."""
        who = actor or self.actor
        return AuditEntry(
            time=datetime.now(UTC),
            event_id=str(uuid_utils.uuid7()),
            actor=who.name,
            role=str(who.role),
            tenant=who.tenant if tenant is None else tenant,
            action=str(action),
            target=target,
            parameters=redact(dict(parameters or {})),
            result=result,
            error=error[:4000],
            request_id=request_id or str(uuid_utils.uuid7()),
            source=who.source,
        )

    def record(self, action: Action | str, **fields: Any) -> AuditEntry:
        """Write one row now (see `entry` for the fields) and return it."""
        entry = self.entry(action, **fields)
        self.write([entry])
        return entry

    def write(self, entries: Sequence[AuditEntry]) -> None:
        """Insert ``entries`` in one synchronous insert (a batch is one part, stored before this returns)."""
        if not entries:
            return
        rows = [
            [
                e.time,
                e.event_id,
                e.actor,
                e.role,
                e.tenant,
                e.action,
                e.target,
                orjson.dumps(e.parameters, default=str, option=orjson.OPT_SORT_KEYS).decode(),
                e.result,
                e.error,
                e.request_id,
                e.source,
            ]
            for e in entries
        ]
        self.client.insert(TABLE, rows, column_names=list(COLUMNS), settings={"async_insert": 0})

    @contextmanager
    def recorded(self, action: Action | str, **fields: Any) -> Iterator[dict[str, Any]]:
        """Record the block as one action: success when it returns, failure (with the error) when it raises.

        Yields the row's ``parameters`` dict: what the block adds to it (an id it created, a count)
        is recorded too. The exception is re-raised after its row is written.
        """
        parameters: dict[str, Any] = dict(fields.pop("parameters", None) or {})
        try:
            yield parameters
        except BaseException as exc:
            self.record(action, parameters=parameters, result=FAILURE, error=_describe(exc), **fields)
            raise
        self.record(action, parameters=parameters, **fields)

    def close(self) -> None:
        """Close the client if this writer created it (`create_audit_writer`)."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def create_audit_writer(settings: WarehouseSettings, actor: Actor, role: Role = "writer") -> AuditWriter:
    """A writer with its own client for ``settings`` (closed by `AuditWriter.close`), connected as
    ``role`` (the writer user may insert into ``audit_log``; the reader may not)."""
    from eventpulse.warehouse.client import create_client

    return AuditWriter(create_client(settings, role=role, autogenerate_session_id=False), actor, owns_client=True)


def record_sign_in(
    writer: AuditWriter,
    user: str,
    *,
    ok: bool,
    role: str = "",
    tenant: str = "",
    source: str = "",
    method: str = "password",
    error: str = "",
) -> AuditEntry:
    """Record a sign-in or a failed one (`eventpulse.users.authenticate` calls it; so will the dashboards'
    sign-in page, which does not exist yet).

    A failed attempt names the user that was tried; it is recorded with the anonymous role.
    """
    actor = Actor(user, role if ok and role else "anonymous", source=source)
    return writer.record(
        Action.SIGN_IN,
        actor=actor,
        target=user,
        tenant=tenant if ok else "",
        parameters={"method": method},
        result=SUCCESS if ok else FAILURE,
        error="" if ok else (error or "bad credentials"),
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
