"""Bring a warehouse database up to date: the work behind `eventpulse migrate`."""

from clickhouse_connect.driver.client import Client

from eventpulse.audit import Actor, AuditWriter
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse import migrator
from eventpulse.warehouse.client import create_client


def migrate(
    settings: WarehouseSettings, database: str | None = None, *, actor: Actor | None = None
) -> list[migrator.Migration]:
    """Create the database if needed and apply pending migrations; return what was applied.

    Each applied migration is recorded in ``audit_log`` for ``actor`` (default: the migrator as a
    platform process).
    """
    db = database or settings.database
    admin = create_client(settings, role="admin", database=None)
    try:
        migrator.ensure_database(admin, db, settings.cluster)
    finally:
        admin.close()
    client = create_client(settings, role="admin", database=db)
    try:
        return apply_all(client, settings, actor=actor)
    finally:
        client.close()


def apply_all(client: Client, settings: WarehouseSettings, *, actor: Actor | None = None) -> list[migrator.Migration]:
    """Apply the bundled migrations through an existing client (recorded in ``audit_log``)."""
    variables = migrator.migration_variables(settings.raw_ttl_days)
    audit = AuditWriter(client, actor or Actor.system("migrator"))
    return migrator.apply(client, migrator.load_migrations(), variables, cluster=settings.cluster, audit=audit)
