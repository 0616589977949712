"""The one read path for tenant-facing queries: SQL scoped to the caller's tenants, or refused.

Every tenant-facing read (dashboard pages, event search, downloads, the SQL console, the query
API, the live stream) passes its SQL through `scope_sql` before it reaches the warehouse, as
PostHog's HogQL printer adds a mandatory team filter to every table it prints. The statement is
parsed with sqlglot's ClickHouse dialect and every table reference is replaced by a filtered
subquery with the same name::

    FROM events AS e          ->  FROM (SELECT * FROM `db`.`events` WHERE `tenant` IN {eventpulse_tenants:Array(String)}) AS e
    JOIN alerts FINAL         ->  JOIN (SELECT * FROM `db`.`alerts` FINAL WHERE ...) AS alerts

whatever the nesting (joins, subqueries, UNION, CTEs, ``IN (SELECT ...)``). Anything the rewrite
cannot vouch for is refused (`Refused`): statements other than one query; ``INTO OUTFILE``,
``FORMAT`` and ``SETTINGS`` clauses; table functions other than pure generators (``numbers``);
functions that reach the host or other tables by name (``file``, ``url``, ``merge``...);
``system`` tables outside an allow-list; other databases; tables without a tenant column; the
secret tables (``api_keys``, ``users``); unknown tables; CTE names that shadow a table. The
scoped query runs as the warehouse's read-only reader with memory, row and time limits
(`ScopedReader`), so the server is the second wall.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.query import QueryResult
from sqlglot import exp

from eventpulse.access.declaration import SECRET_TABLES
from eventpulse.access.statements import (
    ACCESS_DENIED,
    CROSS_TABLE_FUNCTIONS,
    DIALECT,
    HOST_ACCESS_FUNCTIONS,
    SAFE_TABLE_FUNCTIONS,
    SYNTAX_ERROR,
    Refused,
    check_tokens,
    is_read,
    parse,
    referenced,
    table_function_name,
)
from eventpulse.config.access import AccessSettings

TENANTS_PARAM = "eventpulse_tenants"
"""The bound parameter carrying the caller's tenants (callers' own parameters may not use the prefix)."""
_RESERVED_PREFIX = "eventpulse_"
_GENERATORS = SAFE_TABLE_FUNCTIONS - {"input"}


@dataclass(frozen=True)
class Scope:
    """Whose rows a caller may read: a tuple of tenants, or every tenant (``tenants=None``).

    Every tenant is the operator's scope (and the dashboards' until sign-in exists); it still
    passes every other rule of this module.
    """

    tenants: tuple[str, ...] | None

    @classmethod
    def of(cls, tenants: str | Iterable[str]) -> Scope:
        values = (tenants,) if isinstance(tenants, str) else tuple(tenants)
        if not values or any(not t for t in values):
            raise ValueError("a tenant scope names at least one non-empty tenant")
        return cls(tuple(dict.fromkeys(values)))

    @classmethod
    def everyone(cls) -> Scope:
        return cls(None)


@dataclass(frozen=True)
class Schema:
    """The tables of the tenant database and their columns (from ``system.columns``)."""

    database: str
    tables: Mapping[str, frozenset[str]]

    @classmethod
    def load(cls, client: Client, database: str) -> Schema:
        rows = client.query(
            "SELECT table, groupArray(name) FROM system.columns WHERE database = {db:String} GROUP BY table",
            parameters={"db": database},
        ).result_rows
        return cls(database, {table: frozenset(columns) for table, columns in rows})


@dataclass(frozen=True)
class ScopedQuery:
    """The rewritten statement and the parameters it binds (the caller's plus the tenants)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    tables: tuple[str, ...] = ()
    """The tenant tables the query reads (each one filtered)."""


def scope_sql(
    sql: str,
    scope: Scope,
    schema: Schema,
    *,
    params: Mapping[str, Any] | None = None,
    system_tables: Iterable[str] = AccessSettings().system_tables,
    tenant_column: str = "tenant",
) -> ScopedQuery:
    """``sql`` rewritten so that it reads only ``scope``'s rows of ``schema``, or `Refused`."""
    params = _caller_params(params)
    parsed = parse(sql.strip().rstrip(";"))
    check_tokens(parsed.tokens, HOST_ACCESS_FUNCTIONS | CROSS_TABLE_FUNCTIONS)
    if name := referenced(parsed, SECRET_TABLES):
        raise Refused(ACCESS_DENIED, f"{name} holds credentials: not readable here")
    tree = parsed.tree
    if tree is None:
        raise Refused(SYNTAX_ERROR, "This query cannot be parsed, so it cannot be scoped to your tenants")
    if not isinstance(tree, exp.Query) or not is_read(tree):
        raise Refused(ACCESS_DENIED, "Only one SELECT query (with UNION, WITH, subqueries...) is allowed here")
    _refuse_clauses(tree)
    rewriter = _Rewriter(schema, frozenset(system_tables), tenant_column, scope)
    scoped = rewriter.rewrite(tree)
    if scope.tenants is not None:
        params[TENANTS_PARAM] = list(scope.tenants)
    return ScopedQuery(scoped.sql(dialect=DIALECT), params, tuple(sorted(rewriter.filtered)))


def _bind(plan: ScopedQuery | Refused, scope: Scope, params: dict[str, Any]) -> ScopedQuery:
    """A remembered rewrite with this call's parameters and tenants (or its refusal, raised)."""
    if isinstance(plan, Refused):
        raise Refused(plan.code, plan.message)
    if scope.tenants is not None:
        params[TENANTS_PARAM] = list(scope.tenants)
    return ScopedQuery(plan.sql, params, plan.tables)


def _caller_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of the caller's parameters; names with the reserved prefix are refused."""
    params = dict(params or {})
    if reserved := [name for name in params if name.startswith(_RESERVED_PREFIX)]:
        raise Refused(ACCESS_DENIED, f"Parameter names starting with {_RESERVED_PREFIX!r} are reserved: {reserved}")
    return params


def _refuse_clauses(tree: exp.Expression) -> None:
    for node in tree.walk():
        if node.args.get("settings"):
            raise Refused(ACCESS_DENIED, "SETTINGS clauses are not allowed: the limits are fixed")
        if node.args.get("format") is not None:
            raise Refused(ACCESS_DENIED, "FORMAT clauses are not allowed here")
        if isinstance(node, exp.In) and isinstance(node.args.get("field"), exp.Column | exp.Table):
            raise Refused(ACCESS_DENIED, "IN <table> is not allowed: write IN (SELECT ... FROM <table>)")


class _Rewriter:
    def __init__(self, schema: Schema, system_tables: frozenset[str], tenant_column: str, scope: Scope) -> None:
        self.schema = schema
        self.system_tables = system_tables
        self.tenant_column = tenant_column
        self.scope = scope
        self.filtered: set[str] = set()

    def rewrite(self, tree: exp.Expression) -> exp.Expression:
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        shadowing = ctes & ({t.lower() for t in self.schema.tables} | {"system"})
        if shadowing:
            raise Refused(ACCESS_DENIED, f"A CTE may not take the name of a table: {sorted(shadowing)}")
        for table in list(tree.find_all(exp.Table)):
            replacement = self._replacement(table, ctes)
            if replacement is None:
                continue
            target = table.parent if isinstance(table.parent, exp.Final) else table
            if target is tree:
                raise Refused(SYNTAX_ERROR, "Unexpected table at the top of the query")
            target.replace(replacement)
        return tree

    def _replacement(self, table: exp.Table, ctes: set[str]) -> exp.Expression | None:
        function = table_function_name(table)
        if function is not None:
            if function not in _GENERATORS:
                raise Refused(ACCESS_DENIED, f"The table function {function}() is not allowed here")
            return None
        unexpected = {k for k, v in table.args.items() if v and k not in ("this", "db", "alias")}
        if unexpected:
            raise Refused(ACCESS_DENIED, f"Unsupported table clause: {sorted(unexpected)}")
        name, db = table.name, table.db
        if db.lower() == "system":
            if name not in self.system_tables:
                raise Refused(ACCESS_DENIED, f"system.{name} is not readable here")
            return None
        if db and db != self.schema.database:
            raise Refused(ACCESS_DENIED, f"Only the tables of {self.schema.database} are readable here, not {db}")
        if not db and name.lower() in ctes:
            return None
        columns = self.schema.tables.get(name)
        if columns is None:
            raise Refused(ACCESS_DENIED, f"Unknown table {name}")
        if self.tenant_column not in columns:
            raise Refused(ACCESS_DENIED, f"{name} has no {self.tenant_column} column: not readable here")
        self.filtered.add(name)
        return self._filtered(table, name)

    def _filtered(self, table: exp.Table, name: str) -> exp.Expression:
        source: exp.Expression = exp.Table(
            this=exp.to_identifier(name, quoted=True), db=exp.to_identifier(self.schema.database, quoted=True)
        )
        if isinstance(table.parent, exp.Final):
            source = exp.Final(this=source)
        query = exp.select("*").from_(source)
        if self.scope.tenants is not None:
            placeholder = exp.Placeholder(this=TENANTS_PARAM, kind=exp.DataType.build("Array(String)", dialect=DIALECT))
            column = exp.column(exp.to_identifier(self.tenant_column, quoted=True))
            query = query.where(exp.In(this=column, field=placeholder))
        alias = table.alias or name
        return exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))


def scoped_settings(limits: AccessSettings, **overrides: Any) -> dict[str, Any]:
    """The ClickHouse settings every scoped query runs with: the memory, row and time limits.

    Read-only comes from the user, not from a setting: the reader is ``readonly`` at the server
    (the local server runs its statements with ``readonly=2``; on ClickHouse its settings profile
    says so), and clickhouse-connect will not send ``readonly`` to a user who cannot change it.
    With ``SETTINGS`` clauses refused by `scope_sql`, a scoped query cannot change any setting,
    which is what ``readonly=1`` adds over ``readonly=2``.
    """
    settings: dict[str, Any] = {
        "max_execution_time": limits.max_execution_s,
        "timeout_overflow_mode": "throw",
        "max_result_rows": limits.max_result_rows,
        "result_overflow_mode": "throw",
        "max_rows_to_read": limits.max_rows_to_read,
        "read_overflow_mode": "throw",
        "max_memory_usage": limits.max_memory_bytes,
    }
    settings.update(overrides)
    settings.pop("readonly", None)
    return settings


class ScopedReader:
    """Runs tenant-facing SQL through `scope_sql` on a reader client, with the access limits.

    The schema (which tables carry a tenant column) is read from ``system.columns`` and kept
    for ``schema_ttl_s`` seconds, so tables added by later migrations are picked up.

    Rewrites are kept per SQL text (``plans`` of them, least recently used dropped first, all
    dropped when the schema is read again): parsing and printing with sqlglot costs ~5-30 ms of
    CPU per statement, more than the warehouse needs for a dashboard query, and the query API
    and the dashboards send the same few texts with different bound parameters. A rewrite does
    not depend on which tenants the scope names (they are a bound parameter), only on whether
    it names any; refusals are kept too, so a repeated refused statement is not parsed again.
    """

    def __init__(
        self,
        client: Client,
        database: str,
        limits: AccessSettings | None = None,
        *,
        schema_ttl_s: float = 60.0,
        plans: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.database = database
        self.limits = limits or AccessSettings()
        self._ttl = schema_ttl_s
        self._clock = clock
        self._schema: tuple[float, Schema] | None = None
        self._lock = threading.Lock()
        self._plans: OrderedDict[tuple[str, bool], ScopedQuery | Refused] = OrderedDict()
        self._max_plans = plans
        self.plan_hits = self.plan_misses = 0

    def schema(self) -> Schema:
        with self._lock:
            now = self._clock()
            if self._schema is None or now - self._schema[0] > self._ttl:
                self._schema = (now, Schema.load(self.client, self.database))
                self._plans.clear()
            return self._schema[1]

    def scoped_if_known(self, sql: str, scope: Scope, params: Mapping[str, Any] | None = None) -> ScopedQuery | None:
        """`scoped` if its rewrite is remembered and the schema is current, else None: never
        parses nor reads the schema, so an event loop may call it."""
        params = _caller_params(params)
        with self._lock:
            if self._schema is None or self._clock() - self._schema[0] > self._ttl:
                return None
            plan = self._plan((sql, scope.tenants is None))
        return None if plan is None else _bind(plan, scope, params)

    def _plan(self, key: tuple[str, bool]) -> ScopedQuery | Refused | None:
        plan = self._plans.get(key)
        if plan is not None:
            self._plans.move_to_end(key)
            self.plan_hits += 1
        return plan

    def scoped(self, sql: str, scope: Scope, params: Mapping[str, Any] | None = None) -> ScopedQuery:
        """``sql`` rewritten for ``scope`` (or `Refused`), without running it."""
        params = _caller_params(params)
        schema = self.schema()
        key = (sql, scope.tenants is None)
        with self._lock:
            plan = self._plan(key)
        if plan is None:
            try:
                plan = scope_sql(
                    sql,
                    scope,
                    schema,
                    system_tables=self.limits.system_tables,
                    tenant_column=self.limits.tenant_column,
                )
            except Refused as refusal:
                plan = refusal
            with self._lock:
                self.plan_misses += 1
                if self._schema is not None and self._schema[1] is schema:  # not read again meanwhile
                    self._plans[key] = plan
                    while len(self._plans) > self._max_plans:
                        self._plans.popitem(last=False)
        return _bind(plan, scope, params)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return scoped_settings(self.limits, **overrides)

    def query(self, sql: str, scope: Scope, params: Mapping[str, Any] | None = None, **limits: Any) -> QueryResult:
        """Run ``sql`` scoped to ``scope``; ``limits`` override settings (never ``readonly``)."""
        scoped = self.scoped(sql, scope, params)
        return self.client.query(scoped.sql, parameters=scoped.params, settings=self.settings(**limits))

    def query_arrow(self, sql: str, scope: Scope, params: Mapping[str, Any] | None = None, **limits: Any) -> pa.Table:
        scoped = self.scoped(sql, scope, params)
        return self.client.query_arrow(scoped.sql, parameters=scoped.params, settings=self.settings(**limits))
