"""The reader's third wall: the engine's own ``readonly`` setting, on the connections the server
gives every reader statement, and those connections pooled without leaking one request's settings
into the next. Statement verdicts (the second wall) are remembered per role and text."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from devstack.warehouse_server.engine import Engine
from devstack.warehouse_server.errors import ClickHouseError
from devstack.warehouse_server.grants import Grants
from eventpulse.access.scoped_sql import scoped_settings
from eventpulse.config.access import AccessSettings
from tests.support.services import session_auth

WRITES = (
    "INSERT INTO t VALUES (1)",
    "INSERT INTO t SELECT number FROM numbers(3)",
    "CREATE TABLE t2 (a UInt8) ENGINE = Memory",
    "DROP TABLE t",
    "TRUNCATE TABLE t",
    "ALTER TABLE t DELETE WHERE 1",
    "RENAME TABLE t TO t3",
)


def _run(conn, sql: str) -> str:
    return conn.query(sql.encode(), "TabSeparated", {}).data.decode()


@pytest.mark.integration
def test_a_readers_write_is_refused_by_the_engine_not_only_by_the_parsers(chdb_path: Path) -> None:
    """No statement classifier here: a chDB connection prepared as the server prepares a reader's
    (the scoped read path's limits, then ``readonly=2``) is refused every write by chDB itself,
    with READONLY (164). The negative control, the same connection without ``readonly``, writes."""
    engine = Engine(chdb_path)
    database = f"ro_{uuid.uuid4().hex[:10]}"
    admin = engine.connect()
    try:
        _run(admin, f"CREATE DATABASE {database}")
        admin.prepare({}, database)
        _run(admin, "CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a")
        limits = {name: str(value) for name, value in scoped_settings(AccessSettings()).items()}
        reader = engine.connect()
        reader.prepare({**limits, "readonly": "2"}, database)
        assert _run(reader, "SELECT getSetting('readonly'), count() FROM t") == "2\t0\n"
        for write in WRITES:
            with pytest.raises(ClickHouseError) as refused:
                _run(reader, write)
            assert refused.value.code == 164, (write, refused.value.text)
        with pytest.raises(ClickHouseError):  # nor can the connection's settings take readonly back
            reader.prepare({**limits, "readonly": "0"}, database)
        reader.close()
        assert _run(admin, "SELECT count() FROM t") == "0\n"
        control = engine.connect()
        control.prepare(limits, database)
        _run(control, "INSERT INTO t VALUES (1)")
        assert _run(admin, "SELECT count() FROM t") == "1\n"
        control.close()
        _run(admin, f"DROP DATABASE {database}")
    finally:
        admin.close()
        engine.close()


@pytest.mark.integration
def test_reader_connections_are_reused_with_each_requests_own_settings(warehouse_url: str) -> None:
    """Reader statements lease pooled ``readonly=2`` connections: every answer still sees readonly
    and exactly its own request's settings, whatever the connection served before."""
    with httpx.Client(base_url=warehouse_url, timeout=30, auth=session_auth("reader")) as http:
        for i in range(24):
            settings = {"max_result_rows": str(100 + i)} if i % 3 else {}
            response = http.post(
                "/", params=settings, content="SELECT getSetting('readonly'), getSetting('max_result_rows')"
            )
            assert response.status_code == 200, response.text
            assert response.text == f"2\t{settings.get('max_result_rows', 0)}\n", i
        write = http.post("/", content="CREATE TABLE default.never (a UInt8) ENGINE = Memory")
        assert write.headers["x-clickhouse-exception-code"] == "164"


def test_verdicts_are_remembered_per_role_and_statement() -> None:
    grants = Grants(frozenset({"numbers", "file"}))
    insert = "INSERT INTO events (tenant)"
    for _ in range(2):
        grants.authorize("writer", "w", insert)
        with pytest.raises(ClickHouseError) as refused:
            grants.authorize("reader", "r", insert)
        assert refused.value.code == 164 and refused.value.message.startswith("r: ")
        with pytest.raises(ClickHouseError) as other:  # the verdict is the role's; the message names the user
            grants.authorize("reader", "someone", insert)
        assert other.value.message.startswith("someone: ")
        with pytest.raises(ClickHouseError):
            grants.authorize("admin", "a", "SELECT * FROM file('/etc/passwd')")
    assert len(grants._verdicts) == 3
