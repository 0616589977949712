"""Dashboard sessions: a signed token naming a session record, kept in Redis with a TTL when configured.

The token (``<id>.<hmac>``) lives in the browser session's ``st.session_state``; the record
(user, role, tenant, sign-in method) lives in Redis under ``<prefix>dash-session:<id>`` with the
sign-in's TTL, so every dashboard process (and a restarted one) reads the same sessions and a
sign-out or expiry holds everywhere. Without Redis the records are kept in this dashboard process's
memory: correct for one process, and lost when it restarts. The browser keeps the token in a cookie
(`dashboards.signin`), so a reload or a new tab stays signed in. A token whose signature does not
match is refused before any lookup, so guessed or forged ids cost nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass

import orjson
import redis

from eventpulse.cache.client import REDIS_ERRORS
from eventpulse.users.roles import TENANT_ROLES


@dataclass(frozen=True, slots=True)
class SessionUser:
    """Who is signed in: ``tenant`` is set exactly for tenant roles (their only tenant)."""

    username: str
    role: str
    tenant: str
    method: str
    expires: float

    @property
    def tenant_scoped(self) -> bool:
        return self.role in TENANT_ROLES


class SessionStore:
    """Session records by id: in Redis with a TTL, or in ``local`` (one process's memory)."""

    _LOCAL_PRUNE_AT = 1_000  # local records beyond which expired ones are dropped at the next sign-in

    def __init__(
        self,
        client: redis.Redis | None,
        secret: bytes,
        *,
        prefix: str,
        ttl_s: float,
        local: MutableMapping[str, bytes] | None = None,
    ) -> None:
        self._redis = client
        self._secret = secret
        self._prefix = f"{prefix}dash-session:"
        self._ttl_s = ttl_s
        self._local: MutableMapping[str, bytes] = {} if local is None else local

    def create(self, username: str, role: str, tenant: str, method: str) -> tuple[str, SessionUser]:
        """A new session for this user: its token and record."""
        session_id = secrets.token_urlsafe(24)
        user = SessionUser(username, role, tenant, method, time.time() + self._ttl_s)
        record = orjson.dumps(asdict(user))
        if self._redis is not None:
            self._redis.set(self._prefix + session_id, record, px=max(1, int(self._ttl_s * 1000)))
        else:
            if len(self._local) >= self._LOCAL_PRUNE_AT:
                self._prune_local()
            self._local[session_id] = record
        return f"{session_id}.{self._sign(session_id)}", user

    def get(self, token: str) -> SessionUser | None:
        """The token's session, or None (bad signature, expired, signed out, unknown)."""
        session_id = self._verified(token)
        if session_id is None:
            return None
        raw = self._redis.get(self._prefix + session_id) if self._redis is not None else self._local.get(session_id)
        if not raw:
            return None
        user = SessionUser(**orjson.loads(raw))
        return user if user.expires > time.time() else None

    def delete(self, token: str) -> None:
        """Sign out: the record is gone for every process."""
        session_id = self._verified(token)
        if session_id is None:
            return
        if self._redis is not None:
            self._redis.delete(self._prefix + session_id)
        else:
            self._local.pop(session_id, None)

    def _prune_local(self) -> None:
        now = time.time()
        for session_id, raw in list(self._local.items()):
            if orjson.loads(raw)["expires"] <= now:
                self._local.pop(session_id, None)

    def _sign(self, session_id: str) -> str:
        return hmac.new(self._secret, session_id.encode(), hashlib.sha256).hexdigest()

    def _verified(self, token: str) -> str | None:
        session_id, _, signature = token.partition(".")
        return session_id if session_id and hmac.compare_digest(signature, self._sign(session_id)) else None


def shared_secret(client: redis.Redis | None, configured: str, prefix: str) -> bytes:
    """The signing key: the configured one, else one random key per deployment kept in Redis
    (the first process to start sets it), else one per process."""
    if configured:
        return configured.encode()
    fresh = secrets.token_hex(32)
    if client is None:
        return fresh.encode()
    try:
        key = f"{prefix}dash-session-secret"
        client.set(key, fresh, nx=True)
        found = client.get(key)
    except REDIS_ERRORS:
        return fresh.encode()
    return found if isinstance(found, bytes) else fresh.encode()
