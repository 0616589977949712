"""The registry's tables (``event_schemas``, ``event_schema_modes``): register, list, show, check, set modes.

A *subject* is one tenant's event type. Each registration of a different schema adds the next version
(1, 2, ...), after the schema is checked to be valid draft 2020-12 and compatible, under the subject's
mode, with the version(s) before it; registering the latest schema again returns its version. Written by
``eventpulse schemas`` (admin credentials) and ``/api/schemas`` (a key with the ``admin`` scope), every
change in ``audit_log``. Two registrations of one subject racing each other may take the same number: the
later row wins (ReplacingMergeTree); registrations are rare, operator actions.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import orjson
from clickhouse_connect.driver.client import Client

from eventpulse.audit import Action, AuditWriter
from eventpulse.schemas.compat import Mode, canonical, compatible

_COLUMNS = ("tenant", "event_type", "version", "schema", "fingerprint", "created_at", "created_by")
DIALECT = "https://json-schema.org/draft/2020-12/schema"


class SchemaError(ValueError):
    """The schema cannot be registered: not a valid JSON Schema, or not an object's schema."""


class IncompatibleSchema(SchemaError):
    """The schema breaks the subject's compatibility mode; ``reasons`` say how."""

    def __init__(self, tenant: str, event_type: str, mode: Mode, reasons: list[str]) -> None:
        self.mode, self.reasons = mode, reasons
        super().__init__(f"schema for {tenant}/{event_type} is not {mode.value}-compatible: " + "; ".join(reasons[:10]))


@dataclass(frozen=True)
class SchemaVersion:
    """One registered version of a subject's schema."""

    tenant: str
    event_type: str
    version: int
    schema: Any
    fingerprint: str
    created_at: datetime | None = None
    created_by: str = ""


def fingerprint(schema: Any) -> str:
    return hashlib.sha256(canonical(schema)).hexdigest()


def check_schema(schema: Any, max_bytes: int | None = None) -> None:
    """Refuse a schema that is not valid draft 2020-12 (its meta-schema), does not compile, or cannot describe
    ``data`` (an object)."""
    if max_bytes is not None and len(canonical(schema)) > max_bytes:
        raise SchemaError(f"the schema is larger than {max_bytes} bytes")
    if not isinstance(schema, dict | bool):
        raise SchemaError("a JSON Schema is an object (or true/false)")
    declared = schema.get("$schema", DIALECT) if isinstance(schema, dict) else DIALECT
    if not isinstance(declared, str) or declared.rstrip("#") != DIALECT:
        raise SchemaError(f"$schema must be {DIALECT} (draft 2020-12), got {declared!r}")
    try:
        jsonschema_rs.meta.validate(schema)
        compile_schema(schema)
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        raise SchemaError(f"not a valid JSON Schema (draft 2020-12): {str(exc).splitlines()[0]}") from exc
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind is not None and "object" not in ([kind] if isinstance(kind, str) else kind):
        raise SchemaError("the schema describes an event's `data`, which is an object: its type must allow object")


def _no_remote(uri: str) -> Any:
    raise ValueError(f"remote $ref {uri!r}: a registered schema must be self-contained (use $defs)")


def compile_schema(schema: Any) -> Any:
    """A validator for ``schema`` (draft 2020-12, formats not asserted, no remote references fetched)."""
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=False, retriever=_no_remote)


def register_schema(
    client: Client,
    tenant: str,
    event_type: str,
    schema: Any,
    *,
    default_mode: Mode | str,
    max_bytes: int | None = None,
    created_by: str = "",
    audit: AuditWriter | None = None,
) -> tuple[SchemaVersion, bool]:
    """Register ``schema`` as the next version of (``tenant``, ``event_type``); returns it and whether it is new.

    Raises `SchemaError` (invalid) or `IncompatibleSchema` (refused by the mode, with the reasons).
    """
    parameters: dict[str, Any] = {"event_type": event_type, "fingerprint": fingerprint(schema)}
    with _audited(audit, Action.SCHEMA_REGISTER, tenant=tenant, target=event_type, parameters=parameters) as p:
        _check_subject(tenant, event_type)
        check_schema(schema, max_bytes)
        history = list_versions(client, tenant, event_type)
        if history and history[-1].fingerprint == parameters["fingerprint"]:
            p.update(version=history[-1].version, new=False)
            return history[-1], False
        mode = get_mode(client, tenant, event_type, default_mode)
        p["mode"] = mode.value
        reasons = check_compatibility(schema, history, mode)
        if reasons:
            raise IncompatibleSchema(tenant, event_type, mode, reasons)
        row = SchemaVersion(
            tenant,
            event_type,
            (history[-1].version if history else 0) + 1,
            schema,
            parameters["fingerprint"],
            datetime.now(UTC),
            created_by,
        )
        client.insert(
            "event_schemas",
            [
                [
                    tenant,
                    event_type,
                    row.version,
                    canonical(schema).decode(),
                    row.fingerprint,
                    row.created_at,
                    created_by,
                ]
            ],
            column_names=list(_COLUMNS),
        )
        p.update(version=row.version, new=True)
    return row, True


def registration_check(
    client: Client,
    tenant: str,
    event_type: str,
    schema: Any,
    *,
    default_mode: Mode | str,
    max_bytes: int | None = None,
) -> tuple[Mode, list[str], int]:
    """Whether ``schema`` could be registered now: the subject's mode, the reasons it could not (empty: it
    could) and the latest version (0: none). Raises `SchemaError` for a schema that is not valid."""
    check_schema(schema, max_bytes)
    history = list_versions(client, tenant, event_type)
    mode = get_mode(client, tenant, event_type, default_mode)
    return mode, check_compatibility(schema, history, mode), history[-1].version if history else 0


def check_compatibility(schema: Any, history: Sequence[SchemaVersion], mode: Mode) -> list[str]:
    """Why ``schema`` may not follow ``history`` (oldest first) under ``mode``; empty when it may."""
    against = history if mode.transitive else history[-1:]
    reasons = []
    for earlier in reversed(against):
        reasons += [f"v{earlier.version} {why}" for why in compatible(schema, earlier.schema, mode)]
    return reasons


def set_mode(
    client: Client, tenant: str, event_type: str, mode: Mode | str, *, audit: AuditWriter | None = None
) -> Mode:
    """Set the subject's compatibility mode (checked at its next registration, not against what is there)."""
    chosen = Mode(mode)
    with _audited(audit, Action.SCHEMA_MODE_CHANGE, tenant=tenant, target=event_type, parameters={"mode": chosen}):
        _check_subject(tenant, event_type)
        now = datetime.now(UTC)
        client.insert(
            "event_schema_modes",
            [[tenant, event_type, chosen.value, now, int(now.timestamp() * 1e9)]],
            column_names=["tenant", "event_type", "mode", "updated_at", "version"],
        )
    return chosen


def get_mode(client: Client, tenant: str, event_type: str, default: Mode | str) -> Mode:
    result = client.query(
        "SELECT mode FROM event_schema_modes FINAL WHERE tenant = {tenant:String} AND event_type = {type:String}",
        parameters={"tenant": tenant, "type": event_type},
    )
    return Mode(result.result_rows[0][0]) if result.result_rows else Mode(default)


def list_versions(client: Client, tenant: str, event_type: str) -> list[SchemaVersion]:
    """Every version of one subject, oldest first."""
    return _select(client, "WHERE tenant = {tenant:String} AND event_type = {type:String}", tenant, event_type)


def latest_versions(client: Client, tenant: str | None = None) -> list[SchemaVersion]:
    """The latest version of every subject (of ``tenant``, or of every tenant): what validation applies."""
    where = "WHERE tenant = {tenant:String}" if tenant else ""
    result = client.query(
        f"SELECT {', '.join(_COLUMNS)} FROM event_schemas FINAL {where}"
        " ORDER BY tenant, event_type, version DESC LIMIT 1 BY tenant, event_type",
        parameters={"tenant": tenant} if tenant else None,
    )
    return [_row(row) for row in result.result_rows]


def list_modes(client: Client, tenant: str | None = None) -> dict[tuple[str, str], Mode]:
    where = "WHERE tenant = {tenant:String}" if tenant else ""
    result = client.query(
        f"SELECT tenant, event_type, mode FROM event_schema_modes FINAL {where}",
        parameters={"tenant": tenant} if tenant else None,
    )
    return {(t, e): Mode(m) for t, e, m in result.result_rows}


def _select(client: Client, where: str, tenant: str, event_type: str) -> list[SchemaVersion]:
    result = client.query(
        f"SELECT {', '.join(_COLUMNS)} FROM event_schemas FINAL {where} ORDER BY version",
        parameters={"tenant": tenant, "type": event_type},
    )
    return [_row(row) for row in result.result_rows]


def _check_subject(tenant: str, event_type: str) -> None:
    if not tenant.strip() or not event_type.strip():
        raise SchemaError("tenant and event type must not be empty")
    if not (tenant + event_type).isprintable():
        raise SchemaError("tenant and event type must be printable")


def _audited(audit: AuditWriter | None, action: Action, **fields: Any) -> Any:
    return audit.recorded(action, **fields) if audit is not None else contextlib.nullcontext({})


def _row(row: Sequence[Any]) -> SchemaVersion:
    tenant, event_type, version, schema, digest, created_at, created_by = row
    return SchemaVersion(tenant, event_type, int(version), orjson.loads(schema), digest, created_at, created_by)
