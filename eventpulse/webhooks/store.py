"""The ``webhook_sources`` table: register, update, list and revoke a tenant's webhook sources.

A source's name is the last segment of its URL (``POST /api/webhooks/<source>``) and names one tenant's
source across the whole platform: the delivery's signature, made with that source's secret, is what
proves which tenant it belongs to (third parties cannot send an API key). Written with the
warehouse's admin credentials (``eventpulse webhooks``), audited like API keys.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from eventpulse.audit import Action, AuditWriter
from eventpulse.webhooks.mapping import Mapping
from eventpulse.webhooks.secrets import SecretBox, new_secret

SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_COLUMNS = ("source", "tenant", "secret_encrypted", "mapping", "description", "created_at", "revoked")


@dataclass(frozen=True)
class WebhookSource:
    """One registered source (its secret encrypted)."""

    source: str
    tenant: str
    secret_encrypted: str
    mapping: dict[str, Any]
    description: str = ""
    created_at: datetime | None = None
    revoked: bool = False


class SourceError(ValueError):
    """The source cannot be registered or changed as asked."""


def register_source(
    client: Client,
    box: SecretBox,
    tenant: str,
    source: str,
    mapping: dict[str, Any],
    *,
    secret: str | None = None,
    description: str = "",
    audit: AuditWriter | None = None,
) -> tuple[WebhookSource, str]:
    """Register ``source`` for ``tenant``; returns the row and the signing secret (``secret``, or a new one).

    A name held by a live source of another tenant is refused; one of the same tenant is replaced
    (mapping and secret), as ``update_source`` would.
    """
    with _audited(audit, Action.WEBHOOK_SOURCE_CREATE, tenant=tenant, target=source):
        if not tenant.strip():
            raise SourceError("tenant must not be empty")
        if not SOURCE_NAME.match(source):
            raise SourceError(
                f"{source!r}: a source name is 1-64 of a-z, 0-9, '-', '_' (starting with a letter or digit)"
            )
        Mapping.parse(mapping)  # refuses an invalid mapping before anything is stored
        held = get_source(client, source)
        if held is not None and not held.revoked and held.tenant != tenant:
            raise SourceError(f"the source name {source!r} is taken; choose another (e.g. '{tenant}-{source}')")
        secret = secret or new_secret()
        row = WebhookSource(source, tenant, box.encrypt(secret), dict(mapping), description, _now())
        _write(client, row)
    return row, secret


def update_source(
    client: Client,
    box: SecretBox,
    tenant: str,
    source: str,
    *,
    mapping: dict[str, Any] | None = None,
    secret: str | None = None,
    rotate: bool = False,
    audit: AuditWriter | None = None,
) -> str | None:
    """Change a live source's mapping and/or secret (``rotate``: a new one); returns the new secret, if any."""
    parameters = {"mapping": mapping is not None, "secret": bool(secret or rotate)}
    with _audited(audit, Action.WEBHOOK_SOURCE_UPDATE, tenant=tenant, target=source, parameters=parameters):
        held = _live(client, tenant, source)
        if mapping is not None:
            Mapping.parse(mapping)
        new = secret or (new_secret() if rotate else None)
        row = WebhookSource(
            source,
            tenant,
            box.encrypt(new) if new else held.secret_encrypted,
            dict(mapping) if mapping is not None else held.mapping,
            held.description,
            held.created_at,
        )
        _write(client, row)
    return new


def revoke_source(client: Client, tenant: str, source: str, *, audit: AuditWriter | None = None) -> None:
    """Revoke a live source of ``tenant`` (gateways refuse its deliveries within seconds)."""
    with _audited(audit, Action.WEBHOOK_SOURCE_REVOKE, tenant=tenant, target=source):
        held = _live(client, tenant, source)
        _write(client, held, revoked=True)


def list_sources(client: Client, tenant: str | None = None) -> list[WebhookSource]:
    """Every source (revoked ones too), latest version of each."""
    where = "WHERE tenant = {tenant:String}" if tenant else ""
    result = client.query(
        f"SELECT {', '.join(_COLUMNS)} FROM webhook_sources FINAL {where} ORDER BY source",
        parameters={"tenant": tenant} if tenant else None,
    )
    return [_row(row) for row in result.result_rows]


def get_source(client: Client, source: str) -> WebhookSource | None:
    result = client.query(
        f"SELECT {', '.join(_COLUMNS)} FROM webhook_sources FINAL WHERE source = {{source:String}}",
        parameters={"source": source},
    )
    return _row(result.result_rows[0]) if result.result_rows else None


def _live(client: Client, tenant: str, source: str) -> WebhookSource:
    held = get_source(client, source)
    if held is None or held.revoked or held.tenant != tenant:
        raise SourceError(f"no live webhook source {source!r} of tenant {tenant!r}")
    return held


def _audited(audit: AuditWriter | None, action: Action, **fields: Any) -> Any:
    return audit.recorded(action, **fields) if audit is not None else contextlib.nullcontext({})


def _write(client: Client, row: WebhookSource, *, revoked: bool = False) -> None:
    client.insert(
        "webhook_sources",
        [
            [
                row.source,
                row.tenant,
                row.secret_encrypted,
                orjson.dumps(row.mapping).decode(),
                row.description,
                row.created_at or _now(),
                int(revoked),
                time.time_ns(),
            ]
        ],
        column_names=[*_COLUMNS, "version"],
    )


def _row(row: Sequence[Any]) -> WebhookSource:
    source, tenant, secret, mapping, description, created_at, revoked = row
    return WebhookSource(source, tenant, secret, orjson.loads(mapping), description, created_at, bool(revoked))


def _now() -> datetime:
    return datetime.now(UTC)
