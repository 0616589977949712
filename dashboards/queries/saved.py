"""The SQL console's saved queries (``saved_queries``): each signed-in user's own, by name.

Kept in the warehouse (not a local file) so every dashboard process, and a restarted one, sees the
same list. Read and written with the writer's client (`dashboards.signin.users_client`): the table has
no tenant column, so the reader's scoped path would refuse it, and nobody reads another user's queries
through the console. The user is always the signed-in one (`owner`), never a widget or the URL.
Never cached: a save shows at once.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from dashboards import signin

MAX_NAME = 200
MAX_SQL = 100_000


@dataclass(frozen=True)
class SavedQuery:
    name: str
    sql: str
    saved_at: datetime


def owner() -> str:
    """Whose queries these are: the signed-in user's name (``local`` with sign-in off)."""
    user = signin.current_user()
    if user is None:
        raise signin.ScopeError("nobody is signed in")
    return user.username


def saved_queries() -> list[SavedQuery]:
    """The signed-in user's saved queries, by name."""
    rows = (
        signin.users_client()
        .query(
            """SELECT name, sql, saved_at FROM saved_queries FINAL
               WHERE username = {user:String} AND removed = 0 ORDER BY name""",
            parameters={"user": owner()},
        )
        .result_rows
    )
    return [SavedQuery(name, sql, saved_at) for name, sql, saved_at in rows]


def save_query(name: str, sql: str) -> SavedQuery:
    """Save ``sql`` as ``name`` for the signed-in user (replacing a query of that name)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"A saved query needs a name of 1 to {MAX_NAME} characters.")
    if not sql.strip() or len(sql) > MAX_SQL:
        raise ValueError(f"A saved query holds 1 to {MAX_SQL:,} characters of SQL.")
    saved = SavedQuery(name, sql, datetime.now(tz=UTC))
    _write(name, sql, removed=0, at=saved.saved_at)
    return saved


def remove_query(name: str) -> None:
    """Forget the signed-in user's query ``name``."""
    _write(name, "", removed=1, at=datetime.now(tz=UTC))


def _write(name: str, sql: str, *, removed: int, at: datetime) -> None:
    signin.users_client().insert(
        "saved_queries",
        [[owner(), name, sql, removed, at, time.time_ns()]],
        column_names=["username", "name", "sql", "removed", "saved_at", "version"],
    )
