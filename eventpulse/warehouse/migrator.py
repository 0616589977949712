"""Ordered, checksummed SQL migrations: the only code that creates or changes tables.

Files are ``NNNN_verb_object.sql`` in ``eventpulse/warehouse/migrations/``, append-only. Each
applied file is recorded in ``schema_migrations`` with its SHA-256; applying twice changes
nothing, and a file edited after it was applied is reported as drift and stops the run.
Files may use ``${name}`` placeholders filled from operator settings (never from user input).

With a cluster name (``EVENTPULSE_WAREHOUSE_CLUSTER``) the same files are rendered for a ClickHouse
cluster by `eventpulse.warehouse.cluster` (ON CLUSTER, Replicated tables, Distributed fronts); without
one, the statements run exactly as written.
"""

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from clickhouse_connect.driver.client import Client

from eventpulse.audit import FAILURE, Action, AuditEntry, AuditWriter
from eventpulse.warehouse import cluster as cluster_ddl

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree ORDER BY version
"""


class MigrationError(RuntimeError):
    """A migration could not be applied, or an applied file has changed since."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def statements(self, variables: Mapping[str, object]) -> list[str]:
        """The file's statements (split on ``;`` at a line end), placeholders filled in."""
        sql = Template(self.text).substitute({k: str(v) for k, v in variables.items()})
        lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
        parts = re.split(r";\s*(?:\n|$)", "\n".join(lines))
        return [part.strip() for part in parts if part.strip()]


@dataclass(frozen=True)
class MigrationStatus:
    """Where one migration stands in a database."""

    migration: Migration
    applied: bool
    drifted: bool


def bundled_migrations_dir() -> Path:
    """The folder of migration files shipped with the package."""
    return Path(str(resources.files("eventpulse.warehouse") / "migrations"))


def load_migrations(folder: Path | None = None) -> list[Migration]:
    """All migrations in version order; refuses duplicate versions and badly named files."""
    folder = folder or bundled_migrations_dir()
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_verb_object.sql")
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"two migrations have version {version:04d}")
        found[version] = Migration(version, match["name"], path.read_text())
    return [found[v] for v in sorted(found)]


def ledger_ddl(cluster: str = "") -> str:
    """The ledger's DDL: a local table on one server, a table replicated to every node on a cluster."""
    if not cluster:
        return _LEDGER_DDL
    try:
        return cluster_ddl.ledger_ddl(_LEDGER_DDL, cluster)
    except cluster_ddl.ClusterDDLError as exc:
        raise MigrationError(str(exc)) from exc


def status(client: Client, migrations: list[Migration], cluster: str = "") -> list[MigrationStatus]:
    """Which migrations are applied to the client's database, and whether any drifted."""
    client.command(ledger_ddl(cluster))
    rows = client.query("SELECT version, checksum FROM schema_migrations").result_rows
    applied = {int(version): checksum for version, checksum in rows}
    return [
        MigrationStatus(m, m.version in applied, m.version in applied and applied[m.version] != m.checksum)
        for m in migrations
    ]


def ensure_database(client: Client, database: str, cluster: str = "") -> None:
    """Create the platform's database (the identifier is quoted; it comes from settings)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database):
        raise MigrationError(f"invalid database name {database!r}")
    if cluster:
        client.command(cluster_ddl.database_ddl(database, cluster))
        return
    client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")


def planned_statements(
    migrations: list[Migration],
    variables: Mapping[str, object],
    cluster: str = "",
    database: str = "",
) -> dict[int, list[str]]:
    """The statements each migration runs: as written on one server, rendered for a cluster.

    A cluster rendering needs every migration, applied or not: a later file builds on the tables
    an earlier one declared (``CREATE TABLE x AS y``, ``ALTER TABLE y``).
    """
    if not cluster:
        return {m.version: m.statements(variables) for m in migrations}
    try:
        return cluster_ddl.render_migrations(migrations, variables, cluster, database)
    except cluster_ddl.ClusterDDLError as exc:
        raise MigrationError(f"cluster {cluster!r}: {exc}") from exc


def apply(
    client: Client,
    migrations: list[Migration],
    variables: Mapping[str, object],
    cluster: str = "",
    database: str | None = None,
    audit: AuditWriter | None = None,
) -> list[Migration]:
    """Apply every pending migration in order; return those applied (empty when up to date).

    ``cluster`` (a remote_servers name) renders the files for a cluster; ``database`` names the
    database the Distributed tables point at (default: the client's). With ``audit`` each applied
    (or failed) migration gets an ``audit_log`` row, written before this returns or raises, once
    the table exists (migration 0070 creates it: a fresh database records the run that made it).
    """
    entries: list[AuditEntry] = []
    try:
        return _apply(client, migrations, variables, cluster, database, audit, entries)
    finally:
        if audit is not None and entries and _has_audit_log(client):
            audit.write(entries)


def _has_audit_log(client: Client) -> bool:
    return bool(client.query("EXISTS TABLE audit_log").result_rows[0][0])


def _apply(
    client: Client,
    migrations: list[Migration],
    variables: Mapping[str, object],
    cluster: str,
    database: str | None,
    audit: AuditWriter | None,
    entries: list[AuditEntry],
) -> list[Migration]:
    current = status(client, migrations, cluster)
    drifted = [s.migration for s in current if s.drifted]
    if drifted:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in drifted)
        raise MigrationError(f"applied migrations changed since they ran: {names}")
    plan = planned_statements(migrations, variables, cluster, database or client.database or "")
    done: list[Migration] = []
    for item in current:
        if item.applied:
            continue
        migration = item.migration
        target = f"{migration.version:04d}_{migration.name}"
        parameters = {"checksum": migration.checksum, "database": client.database or "", "cluster": cluster}
        for statement in plan[migration.version]:
            try:
                client.command(statement)
            except Exception as exc:
                if audit is not None:
                    entries.append(
                        audit.entry(
                            Action.MIGRATION_APPLY, target=target, parameters=parameters, result=FAILURE, error=str(exc)
                        )
                    )
                raise MigrationError(f"{target}: {exc}") from exc
        client.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        if audit is not None:
            entries.append(audit.entry(Action.MIGRATION_APPLY, target=target, parameters=parameters))
        done.append(migration)
    return done


def migration_variables(raw_ttl_days: int) -> dict[str, object]:
    """The placeholders migration files may use."""
    return {"raw_ttl_days": raw_ttl_days}
