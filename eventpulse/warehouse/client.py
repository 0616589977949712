"""The one factory for warehouse clients.

Every component connects through `create_client`, whatever the warehouse is: a ClickHouse
server (``http(s)://``), the local warehouse server (also ``http://``), or chDB in-process
(``chdb://PATH``, for one-process jobs and tests).

Every client says which of the three warehouse users it is (``role``): ``admin`` for migrations,
keys and access rules, ``writer`` for the dataflow, gateway and orchestration, ``reader`` for the
dashboards and the query API. The local warehouse server refuses what a role may not do.
"""

from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from eventpulse.access.credentials import Role
from eventpulse.config.warehouse import WarehouseSettings

_DEFAULT = object()


def create_client(
    settings: WarehouseSettings,
    *,
    role: Role,
    database: str | object | None = _DEFAULT,  # _DEFAULT: settings.database
    **kwargs: Any,
) -> Client:
    """A clickhouse-connect client for ``settings.url``, connected as ``role``'s user.

    ``database`` defaults to ``settings.database`` (which must exist: `eventpulse migrate`
    creates it); pass ``None`` to connect without one. Extra keyword arguments go to
    ``clickhouse_connect.get_client`` (e.g. ``settings={...}``, ``compress=False``).
    """
    db = database if database is None or isinstance(database, str) else settings.database
    parts = urlsplit(settings.url)
    if parts.scheme == "chdb":
        path = unquote(parts.netloc + parts.path) or ":memory:"
        return clickhouse_connect.get_client(interface="chdb", path=path, database=db, **kwargs)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"warehouse URL must be http(s):// or chdb://, got {settings.url!r}")
    secure = parts.scheme == "https"
    if secure:
        kwargs.setdefault("verify", settings.verify)
        if settings.ca_cert is not None:
            kwargs.setdefault("ca_cert", str(settings.ca_cert))
    credentials = settings.credentials(role)
    return clickhouse_connect.get_client(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8443 if secure else 8123),
        secure=secure,
        username=unquote(parts.username) if parts.username else credentials.user,
        password=unquote(parts.password) if parts.password else credentials.password,
        database=db,
        connect_timeout=settings.connect_timeout_s,
        send_receive_timeout=settings.query_timeout_s,
        **kwargs,
    )


def scalar_int(client: Client, sql: str, parameters: dict[str, Any] | None = None) -> int:
    """The one integer a query such as ``SELECT count() …`` answers.

    ``Client.command`` is declared to return a string, an int, a list or a summary; this checks
    that the answer is the single value asked for.
    """
    value = client.command(sql, parameters=parameters)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"expected one integer from {sql!r}, got {value!r}")
    return int(value)
