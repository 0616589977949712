"""The cross-tenant battery: generated attacks by tenant ``acme`` on tenant ``globex``'s rows.

Two tenants share event ids and user ids. Every generated query is run by ``acme`` through the
scoped read path against a database holding both tenants, and must either be refused or return
exactly what the same query returns against a database holding ``acme``'s rows alone: nothing
of ``globex`` can show, not even in a count. The negative control runs the accepted queries with
the rewrite disabled and finds the leak in each of them, so the battery can see one.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from eventpulse.access.scoped_sql import TENANTS_PARAM, Scope, ScopedReader
from eventpulse.access.statements import Refused
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate

ATTACKER, VICTIM = "acme", "globex"
# table -> the column an attack reads besides tenant and id
TABLES = {"events": "user_id", "late_events": "user_id", "dead_letters": "reason"}
REPLACING = {"events"}  # tables whose engine takes FINAL

SHAPES = (
    "SELECT tenant, id, {c} FROM {t}",
    "SELECT tenant, id, {c} FROM {t} WHERE tenant = 'globex'",
    "SELECT count() FROM {t}",
    "SELECT count() FROM {t} WHERE tenant != 'acme'",
    "SELECT id, {c} FROM {t} WHERE id IN ('e3', 'e4', 'e5') ORDER BY id, {c}",
    "SELECT a.id, b.tenant FROM {t} AS a JOIN {t2} AS b ON a.id = b.id",
    "SELECT id, a.tenant, b.tenant FROM {t} AS a INNER JOIN {t} AS b USING (id)",
    "SELECT a.id, b.tenant FROM {t} AS a LEFT JOIN {t} AS b ON a.id = b.id AND b.tenant = 'globex'",
    "SELECT s.tenant, s.id FROM (SELECT tenant, id FROM {t}) AS s WHERE s.tenant = 'globex'",
    "SELECT (SELECT count() FROM {t}) AS n",
    "SELECT id FROM {t} WHERE id IN (SELECT id FROM {t2} WHERE tenant = 'globex')",
    "SELECT tenant, id FROM {t} UNION ALL SELECT tenant, id FROM {t2}",
    "SELECT 'x', 'y' UNION DISTINCT SELECT tenant, id FROM {t}",
    "WITH s AS (SELECT tenant, id FROM {t}) SELECT tenant, id FROM s",
    "WITH s AS (SELECT tenant, id FROM {t}), s2 AS (SELECT tenant, id FROM s WHERE tenant = 'globex') "
    "SELECT tenant, id FROM s2",
    "SELECT tenant, count(), uniqExact({c}) FROM {t} GROUP BY tenant",
    "SELECT groupArray(id) FROM (SELECT id FROM {t} ORDER BY tenant, id)",
    "SELECT id, count() OVER (PARTITION BY tenant) FROM {t}",
    "SELECT a.id, b.id FROM {t} AS a, {t2} AS b WHERE a.tenant != b.tenant",
    "SELECT arrayJoin([id, tenant]) FROM {t}",
    "SELECT tenant FROM {t} GROUP BY tenant HAVING count() > 0",
    "SELECT tenant, id FROM {t} ORDER BY tenant DESC, id LIMIT 1 BY tenant",
    "SELECT tenant, id FROM {t} ORDER BY tenant DESC, id LIMIT 3",
    "SELECT x.tenant FROM (SELECT * FROM (SELECT tenant, id FROM {t}) AS y) AS x",
    "SELECT * FROM (SELECT tenant, id FROM {t} UNION ALL SELECT tenant, id FROM {t2}) WHERE tenant = 'globex'",
    "SELECT count() FROM {t} WHERE tenant IN (SELECT DISTINCT tenant FROM {t2})",
    "SELECT any(tenant), max({c}), min(id) FROM {t} WHERE tenant > 'b'",
    "SELECT arrayFilter(x -> x != 'acme', groupArray(tenant)) FROM {t}",
    "SELECT /* tenant = 'acme' */ tenant -- globex\n, id FROM {t}",
)
FINAL_SHAPES = ("SELECT tenant, id FROM {t} FINAL", "SELECT count() FROM {t} AS f FINAL WHERE f.tenant = 'globex'")


def name_forms(table: str, db: str) -> list[str]:
    """Ways to spell one table: quoting, database qualification, comments, whitespace."""
    return [
        table,
        f"`{table}`",
        f'"{table}"',
        f"{db}.{table}",
        f"`{db}`.`{table}`",
        f"/* {VICTIM} */ {table}",
        f"\n\t {table} \n",
    ]


def keyword_cases(sql: str) -> list[str]:
    tricked = sql
    for word, trick in (("SELECT", "sElEcT"), ("FROM", "fRoM"), ("WHERE", "wHeRe"), ("UNION", "uNiOn")):
        tricked = tricked.replace(word, trick)
    return [sql, tricked]


@dataclass(frozen=True)
class Attack:
    shape: str
    sql_for: dict[str, str]
    """The query per database name (database-qualified forms differ)."""


def generate(full_db: str, alone_db: str) -> list[Attack]:
    attacks = []
    for table, column in TABLES.items():
        others = [t for t in TABLES if t != table][:1]
        shapes = SHAPES + (FINAL_SHAPES if table in REPLACING else ())
        for shape, form, other in itertools.product(shapes, range(len(name_forms(table, full_db))), others):
            for case in (0, 1):
                sql_for = {}
                for db in (full_db, alone_db):
                    t, t2 = name_forms(table, db)[form], name_forms(other, db)[form]
                    if "{t2}" in shape and TABLES[other] != column:
                        t2 = t  # joins and unions line up the same columns
                    sql_for[db] = keyword_cases(shape.format(t=t, t2=t2, c=column))[case]
                attacks.append(Attack(shape, sql_for))
    return attacks


REFUSED = (
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT file('/etc/hostname')",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k', 'CSV')",
    "SELECT * FROM remote('127.0.0.1', {db}.events)",
    "SELECT * FROM remoteSecure('127.0.0.1', {db}, events)",
    "SELECT * FROM cluster('default', {db}.events)",
    "SELECT tenant FROM merge('{db}', '^eve')",
    "SELECT tenant FROM merge({db}, 'events')",
    "SELECT * FROM view(SELECT tenant FROM {db}.events)",
    "SELECT * FROM loop({db}, events) LIMIT 1",
    "SELECT * FROM mysql('127.0.0.1:3306', 'db', 't', 'u', 'p')",
    "SELECT * FROM postgresql('127.0.0.1:5432', 'db', 't', 'u', 'p')",
    "SELECT * FROM executable('cat /etc/passwd', 'LineAsString', 'x String')",
    "SELECT * FROM python(df)",
    "SELECT * FROM filesystem('/etc')",
    "SELECT * FROM mergeTreeIndex({db}, events)",
    "SELECT * FROM input('a String')",
    "SELECT dictGet('d', 'x', 1)",
    "SELECT joinGet('{db}.events', 'tenant', 'e1')",
    "SELECT * FROM system.tables",
    "SELECT * FROM system.columns",
    "SELECT * FROM system.parts",
    "SELECT * FROM system.query_log",
    "SELECT * FROM system.processes",
    "SELECT * FROM system.users",
    "SELECT * FROM `system`.`tables`",
    "SELECT * FROM SYSTEM.tables",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM INFORMATION_SCHEMA.COLUMNS",
    "SELECT * FROM default.events",
    "SELECT * FROM other_db.events",
    "SELECT tenant, id FROM events INTO OUTFILE '/tmp/leak.csv'",
    "SELECT tenant, id FROM events INTO OUTFILE '/tmp/leak.csv' TRUNCATE",
    "SELECT tenant, id FROM events INTO OUTFILE '/tmp/leak.csv' APPEND",
    "select 1 /* x */ into   OutFile '/tmp/leak.csv'",
    "INSERT INTO events (tenant, id) FROM INFILE '/etc/passwd' FORMAT CSV",
    "SELECT tenant FROM events SETTINGS readonly = 0",
    "SELECT tenant FROM events SETTINGS max_memory_usage = 100000000000",
    "SELECT tenant FROM (SELECT tenant FROM events SETTINGS max_result_rows = 0)",
    "SELECT tenant FROM events FORMAT JSON",
    "SELECT 1; SELECT tenant FROM events",
    "SELECT 1;SELECT 2",
    "INSERT INTO events (tenant, id) VALUES ('globex', 'forged')",
    "INSERT INTO events (tenant, id) SELECT 'globex', 'x'",
    "ALTER TABLE events DELETE WHERE tenant = 'globex'",
    "CREATE TABLE stolen ENGINE = Memory AS SELECT * FROM events",
    "DROP TABLE events",
    "TRUNCATE TABLE events",
    "SET readonly = 0",
    "USE default",
    "EXPLAIN SELECT * FROM events",
    "SHOW TABLES",
    "DESCRIBE TABLE events",
    "SELECT * FROM api_keys",
    "SELECT * FROM `api_keys`",
    "SELECT * FROM {db}.api_keys",
    "SELECT key_hash FROM API_KEYS",
    "SELECT * FROM events WHERE id IN (SELECT key_id FROM api_keys)",
    "SELECT secret_encrypted FROM webhook_sources",
    "SELECT * FROM pipeline_metrics",
    "SELECT * FROM schema_migrations",
    "SELECT * FROM topic_incarnations",
    "SELECT * FROM no_such_table",
    "SELECT * FROM EVENTS",
    "WITH events AS (SELECT 'globex' AS tenant) SELECT * FROM events",
    "WITH late_events AS (SELECT * FROM {db}.late_events) SELECT * FROM late_events",
    "SELECT 1 WHERE 'e1' IN events",
    "SELECT tenant FROM events SAMPLE 1 / 2",
    "SELECT currentUser() FROM events e, file('x') f",
    "this is not sql",
)


@pytest.fixture(scope="module")
def tenants_data(warehouse_url: str) -> Iterator[tuple[WarehouseSettings, WarehouseSettings]]:
    """Two migrated databases: ``full`` (both tenants) and ``alone`` (the attacker's rows only)."""
    suffix = uuid.uuid4().hex[:8]
    full = WarehouseSettings(url=warehouse_url, database=f"xt_full_{suffix}")
    alone = WarehouseSettings(url=warehouse_url, database=f"xt_alone_{suffix}")
    base = datetime(2026, 11, 2, 12, tzinfo=UTC)
    for settings, tenants in ((full, (ATTACKER, VICTIM)), (alone, (ATTACKER,))):
        migrate(settings)
        admin = create_client(settings, role="admin")
        for tenant in tenants:
            first = 1 if tenant == ATTACKER else 3  # ids e3..e5 and users u1..u3 belong to both
            ids = [f"e{i}" for i in range(first, first + 5)]
            rows = [
                [tenant, id_, base + timedelta(minutes=n), f"type_{tenant}", "web", f"u{n % 3 + 1}", 1.0, 0, "{}", "{}"]
                for n, id_ in enumerate(ids)
            ]
            columns = ["tenant", "id", "timestamp", "type", "source", "user_id", "latency_ms", "is_error", "data"]
            admin.insert("events", rows, column_names=[*columns, "extra"])
            admin.insert("late_events", [r[:8] for r in rows], column_names=columns[:8])
            dead = [[id_, tenant, "parse", f"reason_{tenant}" if n % 2 else "bad_json"] for n, id_ in enumerate(ids)]
            admin.insert("dead_letters", dead, column_names=["id", "tenant", "stage", "reason"])
        admin.close()
    yield full, alone


def _rows(client: Client, sql: str, params: dict | None = None, settings: dict | None = None) -> list[str]:
    result = client.query(sql, parameters=params or {}, settings=settings or {})
    return sorted(repr(row) for row in result.result_rows)


def test_the_battery_returns_nothing_of_the_other_tenant(tenants_data) -> None:
    full, alone = tenants_data
    attacks = generate(full.database, alone.database)
    reader_full = create_client(full, role="reader")
    reader_alone = create_client(alone, role="reader")
    scoped = ScopedReader(reader_full, full.database)
    scope = Scope.of(ATTACKER)
    accepted = refused = 0
    for attack in attacks:
        sql = attack.sql_for[full.database]
        try:
            query = scoped.scoped(sql, scope)
        except Refused:
            refused += 1
            continue
        got = _rows(reader_full, query.sql, query.params, scoped.settings())
        expected = _rows(reader_alone, attack.sql_for[alone.database])
        assert got == expected, f"{sql}\n-> {query.sql}"
        assert not any(VICTIM in row for row in got), sql
        accepted += 1
    for template in REFUSED:
        sql = template.format(db=full.database)
        with pytest.raises(Refused):
            scoped.scoped(sql, scope)
        refused += 1
    with pytest.raises(Refused, match="reserved"):  # parameter tampering: the tenants are ours to bind
        scoped.scoped("SELECT count() FROM events", scope, {"eventpulse_tenants": [VICTIM]})
    refused += 1
    print(f"cross-tenant battery: {accepted} accepted with 0 rows of {VICTIM}, {refused} refused")
    assert accepted + refused >= 1000 and accepted >= 900
    reader_full.close()
    reader_alone.close()


def test_negative_control_without_the_rewrite_every_accepted_attack_leaks(tenants_data) -> None:
    full, alone = tenants_data
    reader_full = create_client(full, role="reader")
    reader_alone = create_client(alone, role="reader")
    scoped = ScopedReader(reader_full, full.database)
    leaked = checked = 0
    for attack in generate(full.database, alone.database)[::7]:  # one spelling of each shape and table
        sql = attack.sql_for[full.database]
        try:
            scoped.scoped(sql, Scope.of(ATTACKER))
        except Refused:
            continue
        raw = _rows(reader_full, sql)  # the rewrite disabled: the query as the attacker wrote it
        checked += 1
        leaked += raw != _rows(reader_alone, attack.sql_for[alone.database])
    assert checked >= 90 and leaked == checked, (leaked, checked)
    reader_full.close()
    reader_alone.close()


def test_the_server_refuses_the_host_and_secret_attacks_even_unscoped(tenants_data) -> None:
    """The second wall: sent raw as the reader, the attacks that reach past tables still fail."""
    full, _ = tenants_data
    reader = create_client(full, role="reader")
    walls = [
        t
        for t in REFUSED
        if any(w in t.lower() for w in ("file", "url(", "remote", "merge(", "api_keys", "webhook_sources", "outfile"))
    ]
    assert len(walls) >= 12
    for template in walls:
        with pytest.raises(DatabaseError):
            reader.query(template.format(db=full.database))
    reader.close()


def test_a_scope_of_several_tenants_and_the_operator_scope(tenants_data) -> None:
    full, _ = tenants_data
    reader = create_client(full, role="reader")
    scoped = ScopedReader(reader, full.database)
    sql = "SELECT tenant, count() FROM events GROUP BY tenant ORDER BY tenant"
    assert scoped.query(sql, Scope.of([ATTACKER, VICTIM])).result_rows == [(ATTACKER, 5), (VICTIM, 5)]
    assert scoped.query(sql, Scope.everyone()).result_rows == [(ATTACKER, 5), (VICTIM, 5)]
    assert scoped.query(sql, Scope.of(VICTIM)).result_rows == [(VICTIM, 5)]
    with pytest.raises(ValueError):
        Scope.of([])
    reader.close()


def test_scoped_queries_run_with_the_limits(tenants_data) -> None:
    """Scoped queries are read-only (the reader user) and carry the row, memory and time limits."""
    full, _ = tenants_data
    reader = create_client(full, role="reader")
    scoped = ScopedReader(reader, full.database)
    settings = scoped.settings(max_result_rows=2, readonly=0)
    assert "readonly" not in settings and {"max_memory_usage", "max_execution_time", "max_rows_to_read"} <= set(
        settings
    )
    assert scoped.query("SELECT getSetting('readonly')", Scope.of(ATTACKER)).result_rows[0][0] in (1, 2)
    with pytest.raises(DatabaseError, match=r"396|TOO_MANY_ROWS"):
        scoped.query("SELECT number FROM numbers(10)", Scope.of(ATTACKER), max_result_rows=2)
    with pytest.raises(DatabaseError, match=r"241|MEMORY_LIMIT"):
        scoped.query(
            "SELECT groupArray(number) FROM numbers(10000000)", Scope.of(ATTACKER), max_memory_usage=10_000_000
        )
    reader.close()


def test_rewrites_are_remembered_per_text_and_bind_each_callers_tenants(tenants_data) -> None:
    """One parse per SQL text: the remembered rewrite serves every tenant with that tenant's own
    scope, a remembered refusal is refused again, and parameters are checked on every call."""
    full, _ = tenants_data
    reader = create_client(full, role="reader")
    scoped = ScopedReader(reader, full.database)
    sql = "SELECT tenant, count() FROM events GROUP BY tenant ORDER BY tenant"
    assert scoped.query(sql, Scope.of(ATTACKER)).result_rows == [(ATTACKER, 5)]
    assert scoped.query(sql, Scope.of(VICTIM)).result_rows == [(VICTIM, 5)]
    assert (scoped.plan_misses, scoped.plan_hits) == (1, 1)
    known = scoped.scoped_if_known(sql, Scope.of(ATTACKER))
    assert known is not None and known.params == {TENANTS_PARAM: [ATTACKER]}
    assert scoped.query(sql, Scope.everyone()).result_rows == [(ATTACKER, 5), (VICTIM, 5)]  # its own rewrite
    assert scoped.plan_misses == 2
    for _ in range(2):
        with pytest.raises(Refused, match="api_keys"):
            scoped.scoped("SELECT * FROM api_keys", Scope.of(ATTACKER))
    assert scoped.plan_misses == 3
    with pytest.raises(Refused, match="reserved"):
        scoped.scoped_if_known(sql, Scope.of(ATTACKER), {TENANTS_PARAM: [VICTIM]})
    assert scoped.scoped_if_known("SELECT 2", Scope.of(ATTACKER)) is None  # never parsed: not known
    reader.close()
