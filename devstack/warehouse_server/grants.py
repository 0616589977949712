"""What each warehouse user may run, enforced by the server where chDB has no access control.

chDB runs every statement as its one built-in user, so the server classifies each statement
(`eventpulse.access.statements`, sqlglot's ClickHouse dialect) before the engine sees it, with
ClickHouse's codes: ``READONLY`` (164) for a reader's write, ``ACCESS_DENIED`` (497) for the rest.
The reader's connections also run with ``readonly=2``, so the engine itself refuses any write a
classification might miss. Rules (`eventpulse.access.declaration`):

- everyone: no multi-statements, no ``INTO OUTFILE``/``FROM INFILE``/``INSERT INTO FUNCTION``,
  no functions that reach the host or network (``file``, ``url``, ``s3``, ``remote``...);
- reader: statements that only read, never naming a secret table (``api_keys``, ``users``),
  table functions only from a safe list;
- writer: reads (secrets included: the gateway's key cache), ``INSERT`` and partition swaps,
  drops and ``DELETE`` mutations on tables other than keys, users and the migration ledger;
  never DDL;
- admin: anything else.

Verdicts are kept per (role, statement text), so a client that sends the same statement with
other bound parameters (dashboards, the query API, the gateway's key reloads) is not parsed
again: sqlglot costs milliseconds of CPU per statement, more than chDB needs for many queries.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from sqlglot import exp

from devstack.warehouse_server.errors import ClickHouseError
from eventpulse.access.credentials import Role
from eventpulse.access.declaration import ADMIN_ONLY_WRITES, SECRET_TABLES
from eventpulse.access.statements import (
    ACCESS_DENIED,
    CROSS_TABLE_FUNCTIONS,
    HOST_ACCESS_FUNCTIONS,
    MUTATIONS_FOR_WRITERS,
    READONLY,
    SAFE_TABLE_FUNCTIONS,
    SYNTAX_ERROR,
    Refused,
    check_tokens,
    is_read,
    parse,
    referenced,
    table_functions,
    written_tables,
)

_CACHED_TEXT = 16 << 10
"""Longer statements (inserts with inline values) are classified every time, not remembered."""


class Grants:
    """The rules above for one engine, whose table functions it knows (``system.table_functions``);
    the last ``verdicts`` verdicts are remembered."""

    def __init__(self, engine_table_functions: frozenset[str], verdicts: int = 4096) -> None:
        unsafe = engine_table_functions - SAFE_TABLE_FUNCTIONS
        # admin keeps Merge/Dictionary/View (table engines and DDL share those names)
        self._refused: dict[Role, frozenset[str]] = {
            "admin": HOST_ACCESS_FUNCTIONS | (unsafe - CROSS_TABLE_FUNCTIONS),
            "writer": HOST_ACCESS_FUNCTIONS | CROSS_TABLE_FUNCTIONS | unsafe,
            "reader": HOST_ACCESS_FUNCTIONS | CROSS_TABLE_FUNCTIONS | unsafe,
        }
        self._verdicts: OrderedDict[tuple[Role, str], Refused | None] = OrderedDict()
        self._max_verdicts = verdicts
        self._lock = threading.Lock()  # called from the server's engine threads

    def authorize(self, role: Role, user: str, sql: str) -> None:
        """Raise `ClickHouseError` unless ``user`` (of ``role``) may run ``sql`` (the statement
        without inline insert data)."""
        key = (role, sql)
        with self._lock:
            known = key in self._verdicts
            verdict = self._verdicts.get(key)
            if known:
                self._verdicts.move_to_end(key)
        if not known:
            try:
                _authorize(role, sql, self._refused[role])
            except Refused as refusal:
                verdict = refusal
            if len(sql) <= _CACHED_TEXT:
                with self._lock:
                    self._verdicts[key] = verdict
                    while len(self._verdicts) > self._max_verdicts:
                        self._verdicts.popitem(last=False)
        if verdict is not None:
            raise _refusal(verdict, user)


def authorize(role: Role, user: str, sql: str, refused_functions: frozenset[str] = HOST_ACCESS_FUNCTIONS) -> None:
    """Raise `ClickHouseError` unless ``user`` (of ``role``) may run ``sql``.

    ``refused_functions``: lower-case function names this role may not call anywhere.
    """
    try:
        _authorize(role, sql, refused_functions)
    except Refused as refusal:
        raise _refusal(refusal, user) from None


def _refusal(refusal: Refused, user: str) -> ClickHouseError:
    message = refusal.message
    if refusal.code in (ACCESS_DENIED, READONLY):
        message = f"{user}: {message}"
    return ClickHouseError(refusal.code, message, refusal.name)


def _authorize(role: Role, sql: str, refused_functions: frozenset[str]) -> None:
    parsed = parse(sql)
    check_tokens(parsed.tokens, refused_functions)
    if role == "admin":
        return
    if role == "reader" and (name := referenced(parsed, SECRET_TABLES)):
        raise Refused(ACCESS_DENIED, f"Not enough privileges to read {name}")
    tree = parsed.tree
    if tree is None:
        raise Refused(SYNTAX_ERROR, "The server cannot classify this statement, so only admin may run it")
    for name in table_functions(tree):
        if name not in SAFE_TABLE_FUNCTIONS:
            raise Refused(ACCESS_DENIED, f"The table function {name}() is not allowed")
    if is_read(tree):
        return
    if role == "reader":
        raise Refused(READONLY, "Cannot execute query in readonly mode")
    _authorize_write(tree)


def _authorize_write(tree: exp.Expression) -> None:
    if isinstance(tree, exp.Insert):
        pass
    elif isinstance(tree, exp.Alter) and str(tree.args.get("kind", "")).upper() == "TABLE":
        actions = tree.args.get("actions") or []
        if not actions or not all(isinstance(action, MUTATIONS_FOR_WRITERS) for action in actions):
            raise Refused(ACCESS_DENIED, "Not enough privileges: the writer may not change table structure (DDL)")
    else:
        kind = tree.key.upper() if not isinstance(tree, exp.Command) else str(tree.this).upper()
        raise Refused(ACCESS_DENIED, f"Not enough privileges: {kind} needs the admin user (DDL)")
    targets = written_tables(tree)
    if not targets:
        raise Refused(ACCESS_DENIED, "Not enough privileges: cannot tell which table this statement writes")
    for table in targets:
        if table.name.lower() in ADMIN_ONLY_WRITES or table.db.lower() == "system":
            raise Refused(ACCESS_DENIED, f"Not enough privileges to write {table.sql('clickhouse')}: admin only")
