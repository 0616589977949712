"""The access declaration as ClickHouse SQL: users, roles, grants, settings profiles, quotas and
row policies, for a real ClickHouse server (``eventpulse access apply``).

chDB has no access control, so the local warehouse server enforces the same declaration itself
(`devstack.warehouse_server.grants`); on ClickHouse these statements do it. Every statement is
idempotent (``IF NOT EXISTS`` / ``OR REPLACE`` / ``ALTER``), so applying twice changes nothing
and applying after a password rotation sets the new password. Passwords travel as SHA-256
hashes only, so they never reach ClickHouse's query log in clear.

Rows: each tenant gets a role ``eventpulse_tenant_<tenant>`` with ``SELECT`` on the tenant tables
and a row policy ``tenant = '<tenant>'`` on each; the platform's roles get a policy that keeps
every row visible to them (in ClickHouse, once a table has a row policy, a user no policy names
sees no rows of it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from eventpulse.access.credentials import ROLES, Credentials, Role
from eventpulse.access.declaration import ADMIN_ONLY_WRITES, SECRET_TABLES
from eventpulse.config.access import AccessSettings

ROLE_NAMES: dict[Role, str] = {role: f"eventpulse_{role}_role" for role in ROLES}
WRITER_PRIVILEGES = "SELECT, INSERT, ALTER DELETE, ALTER UPDATE"
"""Data, not structure: inserts, mutations and the partition swaps and drops of backfills."""


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def tenant_role(tenant: str) -> str:
    """``eventpulse_tenant_<tenant>``, with anything but letters, digits and ``_`` spelt as hex."""
    safe = re.sub(r"[^A-Za-z0-9_]", lambda m: f"x{ord(m.group(0)):02x}", tenant)
    return f"eventpulse_tenant_{safe}"


@dataclass(frozen=True)
class AccessPlan:
    """What ``eventpulse access apply`` provisions."""

    database: str
    users: Sequence[Credentials]
    tenants: Sequence[str]
    tenant_tables: Sequence[str]
    """Tables with a tenant column (row policies go on these)."""
    tables: Sequence[str]
    """Every table of the database (grants and revokes name some of them)."""
    limits: AccessSettings


def render(plan: AccessPlan) -> list[str]:
    """The plan as ClickHouse statements, in the order they must run."""
    db = quote_identifier(plan.database)
    roles = {role: quote_identifier(name) for role, name in ROLE_NAMES.items()}
    limits = plan.limits
    sql = [f"CREATE ROLE IF NOT EXISTS {name}" for name in roles.values()]
    sql += [
        f"GRANT ALL ON {db}.* TO {roles['admin']} WITH GRANT OPTION",
        f"GRANT ACCESS MANAGEMENT ON *.* TO {roles['admin']}",
        f"GRANT {WRITER_PRIVILEGES} ON {db}.* TO {roles['writer']}",
        f"GRANT SELECT ON {db}.* TO {roles['reader']}",
    ]
    protected = [t for t in plan.tables if t in ADMIN_ONLY_WRITES]
    sql += [
        f"REVOKE INSERT, ALTER DELETE, ALTER UPDATE ON {db}.{quote_identifier(t)} FROM {roles['writer']}"
        for t in protected
    ]
    secret = [t for t in plan.tables if t in SECRET_TABLES]
    sql += [f"REVOKE SELECT ON {db}.{quote_identifier(t)} FROM {roles['reader']}" for t in secret]
    sql.append(
        f"CREATE SETTINGS PROFILE OR REPLACE eventpulse_reader SETTINGS readonly = 2, "
        f"max_memory_usage = {limits.max_memory_bytes} MAX {limits.max_memory_bytes}, "
        f"max_execution_time = {limits.max_execution_s:g} MAX {limits.max_execution_s:g}, "
        f"max_result_rows = {limits.max_result_rows} MAX {limits.max_result_rows}, "
        f"max_rows_to_read = {limits.max_rows_to_read} MAX {limits.max_rows_to_read} TO {roles['reader']}"
    )
    sql.append(
        f"CREATE QUOTA OR REPLACE eventpulse_reader KEYED BY user_name FOR INTERVAL 1 minute "
        f"MAX queries = {limits.quota_queries_per_minute} TO {roles['reader']}"
    )
    tenant_roles = [quote_identifier(tenant_role(t)) for t in plan.tenants]
    for name in tenant_roles:
        sql.append(f"CREATE ROLE IF NOT EXISTS {name}")
        sql += [
            f"GRANT SELECT ON {db}.{quote_identifier(t)} TO {name}"
            for t in plan.tenant_tables
            if t not in SECRET_TABLES
        ]
        sql.append(f"GRANT {roles['reader']} TO {name}")  # the reader's profile and quota: readonly, limits
    for table in plan.tenant_tables:
        target = f"{db}.{quote_identifier(table)}"
        everyone = ", ".join(roles.values())
        sql.append(f"CREATE ROW POLICY OR REPLACE eventpulse_all_tenants ON {target} FOR SELECT USING 1 TO {everyone}")
        for tenant, name in zip(plan.tenants, tenant_roles, strict=True):
            column = quote_identifier(limits.tenant_column)
            sql.append(
                f"CREATE ROW POLICY OR REPLACE {name} ON {target} FOR SELECT "
                f"USING {column} = {quote_string(tenant)} TO {name}"
            )
    for user in plan.users:
        name, hashed = quote_identifier(user.user), hashlib.sha256(user.password.encode()).hexdigest()
        sql += [
            f"CREATE USER IF NOT EXISTS {name} IDENTIFIED WITH sha256_hash BY {quote_string(hashed)}",
            f"ALTER USER {name} IDENTIFIED WITH sha256_hash BY {quote_string(hashed)}",
            f"GRANT {roles[user.role]} TO {name}",
            f"ALTER USER {name} DEFAULT ROLE {roles[user.role]}",
        ]
    return sql


def redact(statements: Iterable[str]) -> list[str]:
    """The statements with password hashes hidden (for ``--dry-run`` output and logs)."""
    return [re.sub(r"(sha256_hash BY )'[0-9a-f]{64}'", r"\1'…'", s) for s in statements]


def plan_for(
    client: Client, database: str, users: Sequence[Credentials], tenants: Sequence[str], limits: AccessSettings
) -> AccessPlan:
    """The plan for ``database`` as it is now (its tables from ``system.columns``)."""
    rows = client.query(
        "SELECT table, has(groupArray(name), {col:String}) FROM system.columns WHERE database = {db:String} "
        "GROUP BY table ORDER BY table",
        parameters={"db": database, "col": limits.tenant_column},
    ).result_rows
    return AccessPlan(
        database=database,
        users=users,
        tenants=sorted(set(tenants)),
        tenant_tables=[table for table, has_tenant in rows if has_tenant],
        tables=[table for table, _ in rows],
        limits=limits,
    )


def known_tenants(client: Client) -> list[str]:
    """Tenants that hold API keys (the default set of tenant roles)."""
    return [row[0] for row in client.query("SELECT DISTINCT tenant FROM api_keys ORDER BY tenant").result_rows]
