"""`eventpulse access apply` for a real ClickHouse: the rendered SQL parses in the engine and says
what the declaration says (chDB has no access control, so the semantics are the server layer's,
tested in tests/eventpulse/warehouse/test_auth.py)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from clickhouse_connect.driver.exceptions import DatabaseError

from cli.main import cli
from eventpulse.access.credentials import generate_users
from eventpulse.access.provision import plan_for, redact, render, tenant_role
from eventpulse.api_keys import create_key
from eventpulse.config.access import AccessSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client

TENANTS = ["acme", "globex", "o'brien; DROP TABLE x --"]


@pytest.fixture
def statements(chdb_warehouse: WarehouseSettings) -> list[str]:
    client = create_client(chdb_warehouse, role="admin")
    users = list(generate_users().values())
    plan = plan_for(client, chdb_warehouse.database, users, TENANTS, AccessSettings())
    yield render(plan)
    client.close()


def test_the_engine_parses_every_statement(chdb_warehouse: WarehouseSettings, statements: list[str]) -> None:
    client = create_client(chdb_warehouse, role="admin")
    kinds = set()
    for statement in statements:
        tree = "\n".join(row[0] for row in client.query(f"EXPLAIN AST {statement}").result_rows)
        kinds.add(tree.split()[0])
    assert {
        "CreateRoleQuery",
        "GrantQuery",
        "CreateUserQuery",
        "CreateQuotaQuery",
        "CreateSettingsProfileQuery",
    } <= kinds
    assert any(s.startswith("CREATE ROW POLICY") for s in statements)
    # negative control: the same check rejects a statement cut short
    with pytest.raises(DatabaseError, match="SYNTAX_ERROR"):
        client.query(f"EXPLAIN AST {statements[-4].rsplit(' BY ', 1)[0]} BY")
    client.close()


def test_the_statements_say_what_the_declaration_says(chdb_warehouse: WarehouseSettings, statements: list[str]) -> None:
    db = f"`{chdb_warehouse.database}`"
    text = "\n".join(statements)
    assert f"REVOKE SELECT ON {db}.`api_keys` FROM `eventpulse_reader_role`" in statements
    assert f"REVOKE INSERT, ALTER DELETE, ALTER UPDATE ON {db}.`api_keys` FROM `eventpulse_writer_role`" in statements
    assert (
        f"REVOKE INSERT, ALTER DELETE, ALTER UPDATE ON {db}.`schema_migrations` FROM `eventpulse_writer_role`"
        in statements
    )
    assert "readonly = 2" in text and "max_memory_usage" in text and "CREATE QUOTA" in text
    # no DDL for the writer, no writes for the reader
    assert not any("eventpulse_writer_role" in s and re.search(r"GRANT .*(CREATE|DROP|ALL)", s) for s in statements)
    assert not any("eventpulse_reader_role" in s and "INSERT" in s and s.startswith("GRANT") for s in statements)
    # every tenant table has one policy per tenant, with the tenant as a quoted literal
    for table in ("events", "window_aggregates", "dead_letters", "alerts"):
        for tenant in TENANTS:
            role = f"`{tenant_role(tenant)}`"
            literal = "'" + tenant.replace("'", "\\'") + "'"
            policy = (
                f"CREATE ROW POLICY OR REPLACE {role} ON {db}.`{table}` FOR SELECT USING `tenant` = {literal} TO {role}"
            )
            assert policy in statements
    assert not any("pipeline_metrics" in s and "ROW POLICY" in s for s in statements)  # no tenant column
    assert re.fullmatch(r"eventpulse_tenant_[A-Za-z0-9_]+", tenant_role(TENANTS[2]))
    # passwords appear only as SHA-256 hashes, and the dry run hides even those
    for user in generate_users().values():
        assert user.password not in text
    assert all("sha256_hash BY '…'" in s for s in redact(statements) if "IDENTIFIED" in s)
    assert render_is_idempotent(statements)


def render_is_idempotent(statements: list[str]) -> bool:
    creates = [s for s in statements if s.startswith("CREATE")]
    return all(" IF NOT EXISTS " in s or " OR REPLACE " in s for s in creates)


def test_access_apply_dry_run_reads_the_tenants_from_the_keys(
    warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = create_client(warehouse, role="admin")
    create_key(admin, "initech")
    admin.close()
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_URL", warehouse.url)
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_DATABASE", warehouse.database)
    result = CliRunner().invoke(cli, ["access", "apply", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "`eventpulse_tenant_initech`" in result.output and "eventpulse_writer" in result.output
    assert "sha256_hash BY '…'" in result.output
