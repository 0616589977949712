"""The one declaration of the warehouse's roles: who may read and write which tables.

The local warehouse server enforces it directly (`devstack.warehouse_server.grants`); for a
real ClickHouse, `eventpulse.access.provision` renders it as users, roles, grants, quotas and
row policies, applied by ``eventpulse access apply``.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventpulse.access.credentials import Role

SECRET_TABLES = frozenset({"api_keys", "users", "webhook_sources"})
"""Tables holding credentials (``webhook_sources``: encrypted signing secrets): only admin writes them, and
only admin and writer (the gateway's key and source caches) read them. The reader and every tenant-scoped query never see them."""

ADMIN_ONLY_WRITES = SECRET_TABLES | {"schema_migrations"}
"""Tables no one but admin may change: keys and users (a forged key row is a key), the migration ledger."""


@dataclass(frozen=True)
class RoleGrants:
    """What one role may do, in ClickHouse's terms."""

    role: Role
    description: str
    readonly: bool
    ddl: bool
    reads_secrets: bool
    writes_secrets: bool


ROLE_GRANTS: dict[Role, RoleGrants] = {
    "admin": RoleGrants("admin", "migrations, keys, users and access rules", False, True, True, True),
    "writer": RoleGrants("writer", "dataflow, gateway and orchestration", False, False, True, False),
    "reader": RoleGrants("reader", "dashboards and the query API", True, False, False, False),
}
