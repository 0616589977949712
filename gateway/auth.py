"""Who is calling: the API key from the request, checked against an in-memory copy of ``api_keys``.

The copy is reloaded from the warehouse every ``key_refresh_s`` (≤ 2 s), so a key created or
revoked by ``eventpulse keys`` takes effect in every gateway process within seconds. If the
warehouse cannot be read, the last copy keeps serving for ``key_max_stale_s``; after that the
gateway refuses requests (503) rather than trusting keys it can no longer check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from eventpulse.api_keys import ApiKey, key_id_of, list_keys
from gateway.periodic import WarehouseMirror

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why a request was refused: ``status`` 401 (no or wrong key), 403 (scope) or 503 (keys stale)."""

    status: int
    error: str
    detail: str


MISSING = AuthFailure(401, "unauthorized", "send an API key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
INVALID = AuthFailure(401, "unauthorized", "the API key is not valid (unknown or revoked)")
STALE = AuthFailure(503, "keys_unavailable", "API keys cannot be verified right now; retry later")


def forbidden(scope: str) -> AuthFailure:
    return AuthFailure(403, "forbidden", f"this API key does not have the '{scope}' scope")


def key_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key in ``Authorization: Bearer …`` or ``X-API-Key`` (raw ASGI headers, lower-case names)."""
    for name, value in headers:
        if name == b"x-api-key":
            return value.decode("latin-1").strip() or None
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class KeyCache(WarehouseMirror):
    """Live (non-revoked) keys by id, reloaded in the background from the warehouse."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        refresh_s: float,
        max_stale_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("api-key", client_factory, refresh_s, max_stale_s, clock)
        # (live keys by id, keys presented and verified since that load by their text). The second
        # saves hashing every request's key (~0.5 µs); it starts empty at each reload, so a revoked
        # key stops working just as before. One tuple, swapped whole by the reloading thread.
        # A presented text is compared only with keys that already proved themselves, and by its
        # hash (SipHash, seeded per process) first.
        self._live: tuple[dict[str, ApiKey], dict[str, ApiKey]] = ({}, {})

    def authenticate(self, key: str | None, scope: str) -> ApiKey | AuthFailure:
        """The key's row if ``key`` is live and has ``scope``; else why not."""
        if key is None:
            return MISSING
        if not self.fresh:
            return STALE
        keys, verified = self._live
        found = verified.get(key)
        if found is None:
            key_id = key_id_of(key)
            found = keys.get(key_id) if key_id else None
            if found is None or not found.matches(key):
                return INVALID
            verified[key] = found
        if scope not in found.scopes:
            return forbidden(scope)
        return found

    def reload(self) -> int:
        """Read every key now (blocking); returns how many are live."""
        live = {k.key_id: k for k in self._read(list_keys) if not k.revoked}
        self._live = (live, {})
        self._loaded()
        return len(live)
