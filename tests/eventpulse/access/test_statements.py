"""Classifying statements: what each warehouse user may run (no server needed)."""

from __future__ import annotations

import pytest

from devstack.warehouse_server.errors import ClickHouseError
from devstack.warehouse_server.grants import Grants
from eventpulse.access.credentials import ensure_users_file, read_users_file
from eventpulse.config.warehouse import WarehouseSettings

ENGINE_TABLE_FUNCTIONS = frozenset({"numbers", "file", "url", "merge", "filesystem", "eval", "values", "input"})
grants = Grants(ENGINE_TABLE_FUNCTIONS)


def code(role: str, sql: str) -> int:
    try:
        grants.authorize(role, f"eventpulse_{role}", sql)  # type: ignore[arg-type]
    except ClickHouseError as exc:
        return exc.code
    return 0


@pytest.mark.parametrize(
    ("sql", "admin", "writer", "reader"),
    [
        ("SELECT 1", 0, 0, 0),
        ("/* x */ sElEcT count() FROM events FINAL", 0, 0, 0),
        ("SELECT sum(distinct_users) AS users FROM window_aggregates", 0, 0, 0),  # an alias is not the table
        ("SELECT * FROM api_keys", 0, 0, 497),
        ("SELECT * FROM `db`.`API_KEYS`", 0, 0, 497),
        ("SELECT 1 WHERE 'k' IN api_keys", 0, 0, 497),
        ("INSERT INTO events (tenant)", 0, 0, 164),
        ("INSERT INTO api_keys (key_id)", 0, 497, 497),
        ("INSERT INTO db.schema_migrations (version)", 0, 497, 164),
        ("INSERT INTO events SELECT * FROM file('x')", 497, 497, 497),
        ("CREATE TABLE t (a UInt8) ENGINE = Memory", 0, 497, 164),
        ("CREATE TABLE m AS events ENGINE = Merge(currentDatabase(), '^e')", 0, 497, 497),
        ("DROP TABLE events", 0, 497, 164),
        ("ALTER TABLE events DROP PARTITION '2026-11-02'", 0, 0, 164),
        ("ALTER TABLE events REPLACE PARTITION '2026-11-02' FROM staging", 0, 0, 164),
        ("ALTER TABLE events ADD COLUMN c UInt8", 0, 497, 164),
        ("ALTER TABLE api_keys DELETE WHERE 1", 0, 497, 497),
        ("TRUNCATE TABLE events", 0, 497, 164),
        ("SELECT 1 INTO OUTFILE 'x'", 497, 497, 497),
        ("SELECT 1; SELECT 2", 62, 62, 62),
        ("SELECT 1;", 0, 0, 0),
        ("SELECT * FROM numbers(3)", 0, 0, 0),
        ("SELECT * FROM merge('db', '^api')", 0, 497, 497),
        ("SELECT * FROM eval('1')", 497, 497, 497),
        ("SELECT file('/etc/passwd')", 497, 497, 497),
        ("SET max_threads = 1", 0, 0, 0),
        ("SHOW TABLES", 0, 0, 0),
        ("GRANT ALL ON *.* TO x", 0, 497, 164),
        ("this is not sql", 0, 497, 164),
    ],
)
def test_each_user_may_run_what_its_role_allows(sql: str, admin: int, writer: int, reader: int) -> None:
    assert (code("admin", sql), code("writer", sql), code("reader", sql)) == (admin, writer, reader)


def test_users_file_is_generated_once_with_mode_0600(tmp_path) -> None:
    path = tmp_path / "wh-users.json"
    users = ensure_users_file(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert ensure_users_file(path) == users == read_users_file(path)
    assert {c.user for c in users.values()} == {"eventpulse_admin", "eventpulse_writer", "eventpulse_reader"}


def test_credentials_resolution_order(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE", raising=False)
    path = tmp_path / "wh-users.json"
    users = ensure_users_file(path)
    from_file = WarehouseSettings(credentials_file=path)
    assert from_file.credentials("writer") == users["writer"]
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_WRITER_PASSWORD", "from-env")
    explicit = WarehouseSettings(credentials_file=path)
    assert (explicit.credentials("writer").user, explicit.credentials("writer").password) == (
        "eventpulse_writer",
        "from-env",
    )
    assert explicit.credentials("reader") == users["reader"]
    bare = WarehouseSettings(credentials_file=tmp_path / "missing.json", user="default", password="pw")
    assert (bare.credentials("reader").user, bare.credentials("reader").password) == ("default", "pw")
    env = WarehouseSettings(credentials_file=path).environment()
    assert env["EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE"] == str(path)
    assert env["EVENTPULSE_WAREHOUSE_WRITER_PASSWORD"] == "from-env"
