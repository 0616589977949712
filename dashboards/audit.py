"""What people do in the dashboards, recorded in ``audit_log``: SQL console queries (and sign-ins).

The console wraps each run in `console_query` (one call): the query text, the database, the tenant
picked in the sidebar, who ran it (the signed-in user) and from which address, and whether it ran or
was refused. The sign-in page records its outcomes with `eventpulse.audit.record_sign_in` through `writer`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import polars as pl
import streamlit as st

from dashboards import controls
from dashboards.queries import client as query_client
from eventpulse.audit import Action, Actor, AuditQuery, AuditWriter, Role, read_audit
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client

_MAX_SQL = 10_000


@st.cache_resource(show_spinner=False)
def _writer_for(url: str, database: str) -> AuditWriter:
    """Over a writer-credentials client: the reader may not insert (and may not read ``users``,
    which the sign-in page reads through this writer's client)."""
    settings = Settings().warehouse.model_copy(update={"url": url, "database": database})
    return AuditWriter(
        create_client(settings, role="writer", autogenerate_session_id=False), Actor.system("dashboards")
    )


def writer() -> AuditWriter:
    """The process's audit writer (its own client, as the warehouse's writer user)."""
    settings = Settings().warehouse
    return _writer_for(settings.url, settings.database)


def viewer() -> Actor:
    """Who is looking at the page (the signed-in user), and from which address."""
    from dashboards import signin  # signin records through `writer`: imported here, not at the top

    user = signin.current_user()
    name, role = (user.username, user.role) if user else ("anonymous", Role.ANONYMOUS)
    address = getattr(st.context, "ip_address", None)
    return Actor(name, role, source=address if isinstance(address, str) else "")


@contextmanager
def console_query(sql: str) -> Iterator[dict[str, Any]]:
    """Record the block as one console query: success, or failure with the refusal or server error."""
    parameters = {"database": Settings().warehouse.database, "chars": len(sql)}
    with writer().recorded(
        Action.SQL_QUERY,
        actor=viewer(),
        target=sql.strip()[:_MAX_SQL],
        tenant=controls.filters().tenant,
        parameters=parameters,
    ) as recorded:
        yield recorded


@st.cache_data(ttl=query_client.STATUS_TTL, show_spinner=False)
def log_rows(query: AuditQuery) -> pl.DataFrame:
    """The audit page's rows, newest first (parameters as JSON text)."""
    entries = read_audit(query_client.client(), query)
    rows = [
        {**e.__dict__, "parameters": orjson.dumps(e.parameters, option=orjson.OPT_SORT_KEYS).decode()} for e in entries
    ]
    return pl.DataFrame(rows, schema=_SCHEMA) if not rows else pl.DataFrame(rows).select(list(_SCHEMA))


@st.cache_data(ttl=query_client.LIST_TTL, show_spinner=False)
def actors() -> list[str]:
    """Actors seen in the last 90 days (the page's actor filter)."""
    result = query_client.client().query(
        "SELECT DISTINCT actor FROM audit_log WHERE time > now() - INTERVAL 90 DAY ORDER BY actor LIMIT 1000"
    )
    return [actor for (actor,) in result.result_rows]


_SCHEMA: dict[str, Any] = {
    "time": pl.Datetime("us", "UTC"),
    "event_id": pl.String,
    "actor": pl.String,
    "role": pl.String,
    "tenant": pl.String,
    "action": pl.String,
    "target": pl.String,
    "parameters": pl.String,
    "result": pl.String,
    "error": pl.String,
    "request_id": pl.String,
    "source": pl.String,
}
