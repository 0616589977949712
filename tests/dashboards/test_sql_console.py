"""The SQL console: reads work, scoped to the tenant picked in the sidebar; writes, DDL, files and
setting changes are refused by the scoped read path and again by the warehouse; runaway queries
are stopped by the limits."""

import time

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from dashboards import readonly
from dashboards.queries import sql_console as sql_console_queries
from eventpulse.access.statements import Refused
from eventpulse.warehouse.client import create_client
from tests.dashboards.apptest import ensure_user, open_page
from tests.dashboards.conftest import use_warehouse


def run(at, sql: str):
    at.text_area(key="sql_text").set_value(sql)
    at.button(key="sql_run").click().run()
    assert not at.exception, at.exception
    return at


def test_console_runs_reads_and_cuts_rows(dashboard_env, sql, monkeypatch):
    monkeypatch.setenv("EVENTPULSE_DASHBOARD_SQL_MAX_RESULT_ROWS", "100")
    at = run(open_page("sql_console"), "SELECT type, count() AS n FROM events FINAL GROUP BY type ORDER BY type")
    assert [tuple(r) for r in at.dataframe[0].value.itertuples(index=False)] == sql(
        "SELECT type, count() AS n FROM events FINAL GROUP BY type ORDER BY type"
    )
    at = run(at, "SELECT id FROM events")
    assert len(at.dataframe[0].value) == 100
    assert any("cut at the 100-row limit" in c.value for c in at.caption)


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE events",
        "INSERT INTO events (tenant, id) VALUES ('x', 'y')",
        "ALTER TABLE events DELETE WHERE 1",
        "SELECT 1; DROP TABLE events",
        "OPTIMIZE TABLE events FINAL",
    ],
)
def test_console_refuses_writes_and_ddl(dashboard_env, sql, statement):
    before = sql("SELECT count() FROM events")[0][0]
    at = run(open_page("sql_console"), statement)
    assert at.error and "Refused" in at.error[0].value
    assert sql("SELECT count() FROM events")[0][0] == before


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO events (tenant, id) VALUES ('x', 'y')",
        "CREATE TABLE sneaky (a UInt8) ENGINE = Memory",
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT count() FROM numbers(10) SETTINGS max_execution_time = 1000",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    ],
)
def test_readonly_is_enforced_by_the_server_not_only_the_precheck(monkeypatch, warehouse, warehouse_client, statement):
    use_warehouse(monkeypatch, warehouse)
    monkeypatch.setenv("EVENTPULSE_DASHBOARD_SIGN_IN", "false")  # called outside a session: as the local admin
    with pytest.raises(Refused):  # the first wall: the scoped read path
        sql_console_queries.run_readonly(
            statement, tenant="", max_execution_s=5, max_result_rows=10, max_rows_to_read=10**9
        )
    if "max_execution_time" not in statement:  # a reader may change limits; only the scoped path refuses that
        reader = create_client(warehouse, role="reader")
        with pytest.raises(DatabaseError, match=r"Code: (164|497)\b"):  # the second wall: READONLY/ACCESS_DENIED
            reader.query(statement)
        reader.close()
    assert warehouse_client.query("SELECT count() FROM events").result_rows[0][0] == 0
    sneaky = "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'sneaky'"
    assert not warehouse_client.query(sneaky).result_rows[0][0]


def test_console_honours_the_tenant_selector(dashboard_env, sql):
    tenants = [row[0] for row in sql("SELECT DISTINCT tenant FROM events ORDER BY tenant")]
    assert len(tenants) >= 2
    picked = tenants[1]
    at = open_page("sql_console", tenant=picked)
    # every spelling that tries to reach the other tenants still shows the picked one only
    for query in (
        "SELECT tenant, count() AS n FROM events GROUP BY tenant",
        f"SELECT tenant, count() AS n FROM events WHERE tenant = '{tenants[0]}' GROUP BY tenant",
        "SELECT e.tenant, count() AS n FROM events AS e JOIN window_aggregates AS w ON e.tenant = w.tenant GROUP BY 1",
        "SELECT tenant, 1 AS n FROM dead_letters UNION ALL SELECT tenant, 2 FROM late_events",
    ):
        at = run(at, query)
        shown = set(at.dataframe[0].value["tenant"]) if at.dataframe else set()
        assert shown <= {picked}, (query, shown)
    at = run(at, "SELECT tenant, count() AS n FROM events GROUP BY tenant")
    assert [tuple(r) for r in at.dataframe[0].value.itertuples(index=False)] == sql(
        "SELECT tenant, count() AS n FROM events WHERE tenant = {t:String} GROUP BY tenant", t=picked
    )
    assert any(f"{picked} only" in c.value for c in at.caption)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM events INTO OUTFILE '{target}' TRUNCATE",
        "SELECT * FROM events INTO OUTFILE '{target}' APPEND",
        "select 1 /* */ into OutFile '{target}'",
        "SELECT * FROM api_keys",
        "SELECT * FROM system.tables",
        "SELECT * FROM url('http://127.0.0.1:9/', 'CSV', 'a String')",
    ],
)
def test_console_never_writes_files_nor_reads_secrets(dashboard_env, tmp_path, statement):
    target = tmp_path / "console-out.csv"
    at = run(open_page("sql_console"), statement.format(target=target))
    assert at.error and "Refused" in at.error[0].value
    assert not at.dataframe
    assert not target.exists()


def test_runaway_query_is_stopped_by_the_time_limit(dashboard_env, monkeypatch):
    monkeypatch.setenv("EVENTPULSE_DASHBOARD_SQL_MAX_EXECUTION_S", "1")
    started = time.monotonic()
    at = run(
        open_page("sql_console"),
        "SELECT count() FROM numbers(200000) AS a, numbers(200000) AS b WHERE (a.number * b.number) % 7 = 3",
    )
    assert time.monotonic() - started < 8
    assert at.error and "longer than the 1 s limit" in at.error[0].value


def test_query_reading_too_many_rows_is_stopped(dashboard_env, monkeypatch):
    monkeypatch.setenv("EVENTPULSE_DASHBOARD_SQL_MAX_ROWS_TO_READ", "1000")
    at = run(open_page("sql_console"), "SELECT count() FROM events WHERE type != ''")
    assert at.error and "more than 1,000 rows" in at.error[0].value


def test_precheck_kinds():
    assert readonly.check_statement("  -- note\n (SELECT 1)") == "SELECT"
    assert readonly.check_statement("WITH 1 AS x SELECT x;") == "WITH"
    assert readonly.check_statement("SELECT ';' AS semicolon") == "SELECT"
    for bad in (
        "",
        "DELETE FROM events WHERE 1",
        "SYSTEM DROP DNS CACHE",
        "SELECT 1; SELECT 2",
        "/* SELECT */ DROP TABLE x",
    ):
        with pytest.raises(readonly.RefusedStatement):
            readonly.check_statement(bad)


def saved_names(at) -> list[str]:
    return list(at.selectbox(key="sql_saved").options)


def test_saved_queries_are_kept_per_user_and_come_back_in_a_new_session(dashboard_env, sql):
    tenant = sql("SELECT min(tenant) FROM events")[0][0]
    mine, theirs = ensure_user("saver-admin"), ensure_user("saver-analyst", "tenant_analyst", tenant)
    query = "SELECT type, count() AS n FROM events GROUP BY type ORDER BY n DESC"
    at = open_page("sql_console", user=mine)
    assert saved_names(at) == []
    at.text_area(key="sql_text").set_value(query)
    at.text_input(key="sql_name").input("events per type")
    at.button(key="sql_save").click().run()
    assert not at.exception, at.exception
    assert any("Saved “events per type”" in s.value for s in at.success)
    at.text_input(key="sql_name").input("")  # a nameless save is refused and saves nothing
    at.button(key="sql_save").click().run()
    assert at.error and "needs a name" in at.error[0].value
    assert sql("SELECT name, sql FROM saved_queries FINAL WHERE username = {u:String}", u=mine) == [
        ("events per type", query)
    ]

    again = open_page("sql_console", user=mine)  # a new browser session: the query is still there
    assert saved_names(again) == ["events per type"]
    assert again.text_area(key="sql_text").value != query
    again.selectbox(key="sql_saved").select("events per type").run()
    assert again.text_area(key="sql_text").value == query
    again = run(again, again.text_area(key="sql_text").value)
    assert len(again.dataframe[0].value) == sql("SELECT uniqExact(type) FROM events")[0][0]

    other = open_page("sql_console", user=theirs)  # someone else's list is their own
    assert saved_names(other) == []
    other = run(other, "SELECT * FROM saved_queries")  # and the console cannot read the table
    assert other.error and "Refused" in other.error[0].value

    again.button(key="sql_remove").click().run()
    assert saved_names(again) == []
    assert saved_names(open_page("sql_console", user=mine)) == []
