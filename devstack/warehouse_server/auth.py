"""Who is asking: ClickHouse's HTTP authentication against the project's warehouse users.

Credentials come as ClickHouse accepts them: HTTP basic auth, the ``X-ClickHouse-User`` and
``X-ClickHouse-Key`` headers, or the ``user`` and ``password`` URL parameters (a request without
any is the ``default`` user with an empty password, which does not exist here). A wrong or
missing password is ``AUTHENTICATION_FAILED`` (516), answered with HTTP 403 as ClickHouse does.

The users file (`eventpulse.access.credentials`) is read again whenever it changes on disk, so
rotating a password takes effect at the next request without a restart.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from devstack.warehouse_server.errors import ClickHouseError
from eventpulse.access.credentials import Credentials, Role, read_users_file

AUTHENTICATION_FAILED = 516


@dataclass(frozen=True)
class Principal:
    """An authenticated user and its role."""

    user: str
    role: Role


def presented_credentials(scope: dict) -> tuple[str, str]:
    """The user and password a request presents (``default`` and ``""`` if none).

    ClickHouse refuses a request that presents credentials in two ways at once; so does this.
    """
    headers = {name.decode("latin-1").lower(): value.decode("utf-8", "replace") for name, value in scope["headers"]}
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    found: list[tuple[str, str]] = []
    authorization = headers.get("authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _failed("default") from None
        found.append((user, password))
    if "x-clickhouse-user" in headers or "x-clickhouse-key" in headers:
        found.append((headers.get("x-clickhouse-user", "default"), headers.get("x-clickhouse-key", "")))
    if "user" in query or "password" in query:
        found.append((query.get("user", "default"), query.get("password", "")))
    if len(found) > 1:
        raise ClickHouseError(
            AUTHENTICATION_FAILED,
            "Credentials were given in more than one way (basic auth, X-ClickHouse headers, URL parameters)",
            "AUTHENTICATION_FAILED",
        )
    return found[0] if found else ("default", "")


def _failed(user: str) -> ClickHouseError:
    return ClickHouseError(
        AUTHENTICATION_FAILED,
        f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
        "AUTHENTICATION_FAILED",
    )


class Authenticator:
    """Checks requests against the users in ``users_file``."""

    def __init__(self, users_file: Path) -> None:
        self.users_file = Path(users_file)
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, Credentials] = {}
        self._reload()

    def _reload(self) -> None:
        stat = os.stat(self.users_file)
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._stamp:
            self._users = {c.user: c for c in read_users_file(self.users_file).values()}
            self._stamp = stamp

    def authenticate(self, scope: dict) -> Principal:
        """The request's user, or `ClickHouseError` ``AUTHENTICATION_FAILED``."""
        user, password = presented_credentials(scope)
        self._reload()
        known = self._users.get(user)
        # compare even for an unknown user, so timing tells nothing about which names exist
        expected = known.password if known is not None else "\0" * 43
        if not hmac.compare_digest(password.encode(), expected.encode()) or known is None:
            raise _failed(user)
        return Principal(user, known.role)
