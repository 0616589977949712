"""The local warehouse requires credentials and enforces each user's grants, over real HTTP.

Everything here talks to the session's warehouse server (a subprocess) with raw HTTP requests
and with clickhouse-connect, as an attacker on the warehouse port would.
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from pathlib import Path

import clickhouse_connect
import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from eventpulse.access.credentials import ensure_users_file, read_users_file, rotate_users_file
from eventpulse.api_keys import create_key, list_keys
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from tests.support.services import free_port, session_auth, start_warehouse, stop


def _code(response: httpx.Response) -> int:
    return int(response.headers.get("X-ClickHouse-Exception-Code", 0))


def _exists(client, table: str) -> bool:
    sql = "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = {t:String}"
    return bool(client.command(sql, parameters={"t": table}))


def _as(role: str, warehouse_url: str, sql: str, database: str | None = None) -> httpx.Response:
    params = {"database": database} if database else {}
    return httpx.post(f"{warehouse_url}/", params=params, content=sql, auth=session_auth(role), timeout=30)


def test_anonymous_and_wrong_passwords_are_refused_in_every_credential_form(warehouse_url: str) -> None:
    user, password = session_auth("reader")
    wrong = password[:-1] + ("x" if password[-1] != "x" else "y")
    attempts = {
        "anonymous": {},
        "basic": {"auth": (user, wrong)},
        "headers": {"headers": {"X-ClickHouse-User": user, "X-ClickHouse-Key": wrong}},
        "url": {"params": {"user": user, "password": wrong}},
        "unknown user": {"auth": ("nobody", password)},
        "default user": {"auth": ("default", "")},
        "empty password": {"auth": (user, "")},
    }
    for name, kwargs in attempts.items():
        response = httpx.post(f"{warehouse_url}/", content="SELECT 1", timeout=30, **kwargs)
        assert response.status_code == 403, name
        assert _code(response) == 516, name
        assert response.text.startswith("Code: 516. DB::Exception: ") and "AUTHENTICATION_FAILED" in response.text
    right = {
        "basic": {"auth": (user, password)},
        "headers": {"headers": {"X-ClickHouse-User": user, "X-ClickHouse-Key": password}},
        "url": {"params": {"user": user, "password": password}},
    }
    for name, kwargs in right.items():
        response = httpx.post(f"{warehouse_url}/", content="SELECT 41 + 1", timeout=30, **kwargs)
        assert (response.status_code, response.text) == (200, "42\n"), name
    # /ping stays open, as ClickHouse's does (health checks carry no credentials)
    assert httpx.get(f"{warehouse_url}/ping", timeout=10).text == "Ok.\n"


def test_clickhouse_connect_needs_the_right_password(warehouse_url: str) -> None:
    port = int(warehouse_url.rsplit(":", 1)[1])
    user, password = session_auth("admin")
    with pytest.raises(DatabaseError, match="516"):
        clickhouse_connect.get_client(host="127.0.0.1", port=port, username=user, password="not-it")
    with pytest.raises(DatabaseError, match="516"):
        clickhouse_connect.get_client(host="127.0.0.1", port=port)  # default user, no password
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, username=user, password=password)
    assert client.command("SELECT currentUser() != ''") in (1, True)
    client.close()


def test_the_reader_only_reads(warehouse: WarehouseSettings, warehouse_url: str) -> None:
    db = warehouse.database
    reader = create_client(warehouse, role="reader")
    assert reader.command("SELECT count() FROM events") == 0
    for sql in (
        "INSERT INTO events (tenant, id) VALUES ('x', 'y')",
        "CREATE TABLE made_by_reader (a UInt8) ENGINE = Memory",
        "DROP TABLE events",
        "ALTER TABLE events DELETE WHERE 1",
        "TRUNCATE TABLE events",
        "/* a comment */ dRoP   TABLE `events`",
        "RENAME TABLE events TO gone",
    ):
        response = _as("reader", warehouse_url, sql, db)
        assert response.status_code != 200 and _code(response) in (164, 497), (sql, response.text)
    with pytest.raises(DatabaseError, match=r"164|497"):
        reader.insert("events", [["x", "y"]], column_names=["tenant", "id"])
    # secrets are not readable by the reader, however the name is spelt
    for sql in ("SELECT * FROM api_keys", f"SELECT * FROM `{db}`.`api_keys`", 'select key_hash from "api_keys"'):
        assert _code(_as("reader", warehouse_url, sql, db)) == 497, sql
    admin = create_client(warehouse, role="admin")
    assert _exists(admin, "events") and not _exists(admin, "made_by_reader")
    reader.close()
    admin.close()


def test_the_writer_writes_data_but_no_ddl_and_no_keys(warehouse: WarehouseSettings, warehouse_url: str) -> None:
    db = warehouse.database
    writer = create_client(warehouse, role="writer")
    writer.insert("late_events", [["t", "e1"]], column_names=["tenant", "id"])  # data: allowed
    writer.command("ALTER TABLE late_events DELETE WHERE id = 'e1'")  # mutation of data: allowed
    assert writer.command("SELECT count() FROM api_keys") == 0  # the gateway's key cache reads keys
    refused_ddl = (
        "CREATE TABLE made_by_writer (a UInt8) ENGINE = Memory",
        "DROP TABLE late_events",
        "ALTER TABLE late_events ADD COLUMN c UInt8",
        "ALTER TABLE late_events DROP COLUMN id",
        "TRUNCATE TABLE late_events",
        "RENAME TABLE late_events TO gone",
        "CREATE USER mallory",
        "GRANT ALL ON *.* TO eventpulse_writer",
        "SYSTEM DROP MARK CACHE",
        "OPTIMIZE TABLE late_events FINAL",
    )
    for sql in refused_ddl:
        response = _as("writer", warehouse_url, sql, db)
        assert _code(response) == 497, (sql, response.text)
    refused_keys = (
        "INSERT INTO api_keys (key_id, tenant, key_hash) VALUES ('k', 'victim', 'h')",
        f"insert into `{db}`.`api_keys` (key_id) values ('k')",
        "INSERT /* x */ INTO API_KEYS (key_id) VALUES ('k')",
        "INSERT INTO api_keys (key_id) SELECT 'k' FROM numbers(1)",
        "ALTER TABLE api_keys DELETE WHERE 1",
        "ALTER TABLE api_keys DROP PARTITION tuple()",
        "INSERT INTO schema_migrations (version) VALUES ('9999')",
        "INSERT INTO system.settings_changes VALUES ('x')",
    )
    for sql in refused_keys:
        response = _as("writer", warehouse_url, sql, db)
        assert _code(response) == 497, (sql, response.text)
    # clickhouse-connect's insert path (FORMAT Native, inline data) is held to the same rule
    with pytest.raises(DatabaseError, match="497"):
        create_key(writer, "victim", ("ingest",))
    admin = create_client(warehouse, role="admin")
    assert list_keys(admin) == []
    assert not _exists(admin, "made_by_writer")
    writer.close()
    admin.close()


def test_host_files_are_out_of_reach_of_every_user(warehouse: WarehouseSettings, tmp_path: Path) -> None:
    target = tmp_path / "written-by-the-warehouse.csv"
    for role in ("admin", "writer", "reader"):
        client = create_client(warehouse, role=role)  # type: ignore[arg-type]
        for sql in (
            f"SELECT 1 INTO OUTFILE '{target}' TRUNCATE",
            f"SELECT 1 INTO OUTFILE '{target}' APPEND",
            f"SELECT 1 /* */ into   outfile '{target}'",
            "SELECT * FROM file('/etc/hostname', 'LineAsString')",
            "SELECT file('/etc/hostname')",
            "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')",
            "SELECT * FROM `file`('/etc/hostname', 'LineAsString')",
            "SELECT * FROM filesystem('/etc')",
            f"INSERT INTO FUNCTION file('{target}', 'CSV') SELECT 1",
        ):
            with pytest.raises(DatabaseError, match=r"497|62"):
                client.command(sql)
        client.close()
    assert not target.exists()


def test_multi_statements_are_refused(warehouse: WarehouseSettings, warehouse_url: str) -> None:
    response = _as("admin", warehouse_url, "SELECT 1; DROP TABLE events", warehouse.database)
    assert _code(response) == 62 and "Multi-statements" in response.text
    assert _exists(create_client(warehouse, role="admin"), "events")


def test_sessions_belong_to_their_user(warehouse_url: str) -> None:
    session = {"session_id": f"s-{uuid.uuid4().hex[:8]}"}
    admin = httpx.Client(base_url=warehouse_url, auth=session_auth("admin"), params=session, timeout=30)
    reader = httpx.Client(base_url=warehouse_url, auth=session_auth("reader"), params=session, timeout=30)
    assert admin.post("/", content="CREATE TEMPORARY TABLE mine (a UInt8)").status_code == 200
    assert admin.post("/", content="SELECT count() FROM mine").text == "0\n"
    assert reader.post("/", content="SELECT count() FROM mine").status_code != 200  # not the admin's session
    admin.close()
    reader.close()


@pytest.mark.integration  # starts its own warehouse server
def test_users_file_is_private_generated_once_and_rotated_live(tmp_path: Path) -> None:
    users_file = tmp_path / "wh-users.json"
    port = free_port()
    proc = start_warehouse(tmp_path / "wh", port, tmp_path / "wh.log", users_file=users_file)
    try:
        assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
        before = read_users_file(users_file)
        assert len({c.password for c in before.values()}) == 3  # three users, three random passwords
        assert ensure_users_file(users_file) == before  # kept, not regenerated
        url = f"http://127.0.0.1:{port}/"
        old = before["reader"]
        assert httpx.post(url, content="SELECT 1", auth=(old.user, old.password), timeout=30).status_code == 200
        time.sleep(0.01)  # a distinct mtime
        after = rotate_users_file(users_file, ("reader",))
        assert stat.S_IMODE(os.stat(users_file).st_mode) == 0o600
        assert after["admin"] == before["admin"] and after["reader"].password != old.password
        stale = httpx.post(url, content="SELECT 1", auth=(old.user, old.password), timeout=30)
        assert _code(stale) == 516
        fresh = httpx.post(url, content="SELECT 1", auth=(old.user, after["reader"].password), timeout=30)
        assert fresh.status_code == 200
    finally:
        stop(proc)
