"""API keys: their format, their hash, and the ``api_keys`` table that every gateway process reads.

A key looks like ``ep_<key_id>_<secret>``: ``key_id`` (12 hex characters) is public and names the
row; ``secret`` carries 256 random bits. Only ``sha256(key)`` is stored. A fast hash is the norm
for high-entropy API keys (GitHub, Stripe): nothing can be guessed, so a slow KDF would only
slow every request. Verification compares digests with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from eventpulse.audit import Action, AuditWriter

KEY_PREFIX = "ep_"
_ID_CHARS = 12

SCOPE_INGEST = "ingest"
SCOPE_STREAM = "stream"
SCOPE_READ = "read"
SCOPE_SCHEMAS = "schemas"  # the key's tenant's event schemas (/api/schemas...); keys and users stay CLI-only
ALL_SCOPES: tuple[str, ...] = (SCOPE_INGEST, SCOPE_STREAM, SCOPE_READ, SCOPE_SCHEMAS)
DEFAULT_SCOPES: tuple[str, ...] = (SCOPE_INGEST, SCOPE_STREAM)

_COLUMNS = ("key_id", "tenant", "key_hash", "scopes", "rate_per_s", "burst", "description", "created_at", "revoked")


def hash_key(key: str) -> str:
    """Hex SHA-256 of the whole key (what the table stores)."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id inside a key, or None if the text is not shaped like one of our keys."""
    if len(key) < len(KEY_PREFIX) + _ID_CHARS + 2 or not key.startswith(KEY_PREFIX):
        return None
    if key[len(KEY_PREFIX) + _ID_CHARS] != "_":
        return None
    return key[len(KEY_PREFIX) : len(KEY_PREFIX) + _ID_CHARS]


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)``."""
    key_id = secrets.token_hex(_ID_CHARS // 2)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as the gateway knows it (never the key itself, only its hash)."""

    key_id: str
    tenant: str
    key_hash: str
    scopes: frozenset[str]
    rate_per_s: float = 0.0  # 0: the gateway's default
    burst: int = 0  # 0: the gateway's default
    description: str = ""
    created_at: datetime | None = None
    revoked: bool = False

    def matches(self, key: str) -> bool:
        """Constant-time check that ``key`` is this key."""
        return hmac.compare_digest(hash_key(key), self.key_hash)


def create_key(
    client: Client,
    tenant: str,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    *,
    rate_per_s: float = 0.0,
    burst: int = 0,
    description: str = "",
    audit: AuditWriter | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key for ``tenant``; returns the row and the key (shown once, never stored).

    With ``audit`` the creation (or the refusal) is in ``audit_log`` before this returns; every
    operator-facing caller (``eventpulse keys``, ``eventpulse traffic --create-key``) passes one.
    """
    scopes = sorted(set(scopes))
    parameters = {"scopes": scopes, "rate_per_s": rate_per_s, "burst": burst, "description": description}
    key_id, key = new_key()
    with _audited(audit, Action.API_KEY_CREATE, tenant=tenant, target=key_id, parameters=parameters):
        if not tenant.strip():
            raise ValueError("tenant must not be empty")
        unknown = set(scopes) - set(ALL_SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))} (known: {', '.join(ALL_SCOPES)})")
        row = ApiKey(key_id, tenant, hash_key(key), frozenset(scopes), rate_per_s, burst, description, _now())
        _write(client, row, revoked=False)
    return row, key


def list_keys(client: Client, tenant: str | None = None) -> list[ApiKey]:
    """Every key (revoked ones too), latest version of each, oldest first."""
    where = "WHERE tenant = {tenant:String}" if tenant else ""
    result = client.query(
        f"SELECT {', '.join(_COLUMNS)} FROM api_keys FINAL {where} ORDER BY created_at, key_id",
        parameters={"tenant": tenant} if tenant else None,
    )
    return [_row_to_key(row) for row in result.result_rows]


def revoke_key(client: Client, tenant: str, key_id: str, *, audit: AuditWriter | None = None) -> bool:
    """Revoke one key of ``tenant``; False if no such live key (recorded as a failure with ``audit``)."""
    with _audited(audit, Action.API_KEY_REVOKE, tenant=tenant, target=key_id):
        for key in list_keys(client, tenant):
            if key.key_id == key_id and not key.revoked:
                _write(client, key, revoked=True)
                return True
        if audit is not None:
            raise _NoSuchKey(f"no active key of tenant {tenant!r} with id {key_id!r}")
    return False


class _NoSuchKey(LookupError):
    """Internal: turns "nothing to revoke" into a failure row; `revoke_key` still returns False."""


@contextmanager
def _audited(audit: AuditWriter | None, action: Action, **fields: object) -> Iterator[dict[str, object]]:
    if audit is None:
        yield {}
        return
    try:
        with audit.recorded(action, **fields) as parameters:
            yield parameters
    except _NoSuchKey:
        return


def _write(client: Client, key: ApiKey, *, revoked: bool) -> None:
    now = _now()
    client.insert(
        "api_keys",
        [
            [
                key.key_id,
                key.tenant,
                key.key_hash,
                sorted(key.scopes),
                float(key.rate_per_s),
                int(key.burst),
                key.description,
                key.created_at or now,
                int(revoked),
                now if revoked else None,
                time.time_ns(),
            ]
        ],
        column_names=[*_COLUMNS, "revoked_at", "version"],
    )


def _row_to_key(row: Sequence[Any]) -> ApiKey:
    key_id, tenant, key_hash, scopes, rate, burst, description, created_at, revoked = row
    return ApiKey(
        key_id, tenant, key_hash, frozenset(scopes), float(rate), int(burst), description, created_at, bool(revoked)
    )


def _now() -> datetime:
    return datetime.now(UTC)
