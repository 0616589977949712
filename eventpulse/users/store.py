"""The ``users`` table: add, remove, list, and check a password (argon2id through argon2-cffi).

argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile: 64 MiB, 3 passes) is the
OWASP-recommended password hash; a slow KDF is right here, unlike for API keys, because people choose
guessable passwords. Verification costs one hash even for an unknown user, so a timing difference does
not tell which names exist.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from clickhouse_connect.driver.client import Client

from eventpulse.audit import Action, AuditWriter, record_sign_in
from eventpulse.users.roles import check_role

MIN_PASSWORD_LENGTH = 12
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,128}$")
_COLUMNS = ("username", "role", "tenant", "password_hash", "removed", "created_at")
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


class UserError(ValueError):
    """A user cannot be added or removed as asked (bad name, role, password; unknown user)."""


@dataclass(frozen=True, slots=True)
class User:
    """One user as stored (the hash is kept for verification, never shown)."""

    username: str
    role: str
    tenant: str
    password_hash: str
    removed: bool = False
    created_at: datetime | None = None


def add_user(client: Client, username: str, role: str, password: str, *, tenant: str = "", audit: AuditWriter) -> User:
    """Store a new user, or a new role/password for an existing one; recorded as ``user.add``."""
    parameters = {"role": role, "existing": False}
    with audit.recorded(Action.USER_ADD, target=username, tenant=tenant, parameters=parameters):
        if not _NAME.match(username):
            raise UserError(f"user names are 1-128 letters, digits or _.@+- (got {username!r})")
        try:
            check_role(role, tenant)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"passwords have at least {MIN_PASSWORD_LENGTH} characters")
        existing = _find(client, username)
        parameters["existing"] = existing is not None
        now = datetime.now(UTC)
        user = User(username, role, tenant, _HASHER.hash(password), False, existing.created_at if existing else now)
        _write(client, user, now)
    return user


def remove_user(client: Client, username: str, *, audit: AuditWriter) -> User:
    """Remove a user (a row with ``removed = 1``); recorded as ``user.remove``. Raises if there is none."""
    with audit.recorded(Action.USER_REMOVE, target=username) as parameters:
        user = _find(client, username)
        if user is None:
            raise UserError(f"no user {username!r}")
        parameters.update(role=user.role, tenant=user.tenant)
        removed = User(user.username, user.role, user.tenant, user.password_hash, True, user.created_at)
        _write(client, removed, datetime.now(UTC))
    return removed


def list_users(client: Client, tenant: str | None = None) -> list[User]:
    """Current users (not removed), by name; only ``tenant``'s when given."""
    where = "WHERE NOT removed" + (" AND tenant = {tenant:String}" if tenant else "")
    result = client.query(
        f"SELECT {', '.join(_COLUMNS)} FROM users FINAL {where} ORDER BY username",
        parameters={"tenant": tenant} if tenant else None,
    )
    return [_user(row) for row in result.result_rows]


def authenticate(
    client: Client, username: str, password: str, *, audit: AuditWriter, source: str = "", method: str = "password"
) -> User | None:
    """The user if ``password`` is theirs, else None; either way an ``auth.sign_in`` row is written."""
    user = _find(client, username)
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        ok = user is not None
    except (VerificationError, InvalidHashError):
        ok = False
    role, tenant = (user.role, user.tenant) if user else ("", "")
    record_sign_in(audit, username, ok=ok, role=role, tenant=tenant, source=source, method=method)
    return user if ok else None


def find_user(client: Client, username: str) -> User | None:
    """The current user named ``username``, or None (for sign-ins an identity provider vouched for)."""
    return _find(client, username)


def ensure_admin(client: Client, username: str, *, audit: AuditWriter) -> str | None:
    """Create platform admin ``username`` with a random password unless a platform admin exists;
    the password when one was created (to be shown once), else None."""
    result = client.query("SELECT count() FROM users FINAL WHERE NOT removed AND role = 'platform_admin'")
    if result.result_rows[0][0]:
        return None
    password = secrets.token_urlsafe(18)
    add_user(client, username, "platform_admin", password, audit=audit)
    return password


def _find(client: Client, username: str) -> User | None:
    result = client.query(
        f"SELECT {', '.join(_COLUMNS)} FROM users FINAL WHERE username = {{name:String}} AND NOT removed",
        parameters={"name": username},
    )
    return _user(result.result_rows[0]) if result.result_rows else None


def _write(client: Client, user: User, now: datetime) -> None:
    client.insert(
        "users",
        [
            [
                user.username,
                user.role,
                user.tenant,
                user.password_hash,
                int(user.removed),
                user.created_at,
                now,
                time.time_ns(),
            ]
        ],
        column_names=[*_COLUMNS, "updated_at", "version"],
    )


def _user(row: Sequence[Any]) -> User:
    username, role, tenant, password_hash, removed, created_at = row
    return User(username, role, tenant, password_hash, bool(removed), created_at)
