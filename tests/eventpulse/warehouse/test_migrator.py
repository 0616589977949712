"""Migrations: ordered, checksummed, idempotent, and they build the tables the platform uses."""

from pathlib import Path

import pytest

from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse import migrator
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate


def test_bundled_files_are_ordered_and_well_named() -> None:
    migrations = migrator.load_migrations()
    versions = [m.version for m in migrations]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert {"create_events", "create_dead_letters", "create_window_aggregates"} <= {m.name for m in migrations}


def test_migrate_creates_tables_and_second_run_changes_nothing(warehouse: WarehouseSettings) -> None:
    client = create_client(warehouse, role="admin")
    tables = {row[0] for row in client.query("SHOW TABLES").result_rows}
    assert {"events", "dead_letters", "window_aggregates", "schema_migrations"} <= tables
    applied_before = client.query("SELECT version, checksum FROM schema_migrations ORDER BY version").result_rows
    assert migrate(warehouse) == []
    applied_after = client.query("SELECT version, checksum FROM schema_migrations ORDER BY version").result_rows
    assert applied_after == applied_before
    assert len(applied_before) == len(migrator.load_migrations())


def test_raw_events_table_has_day_partitions_ordering_and_ttl(warehouse: WarehouseSettings) -> None:
    client = create_client(warehouse, role="admin")
    engine = client.command(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = 'events'",
        parameters={"db": warehouse.database},
    )
    assert "ReplacingMergeTree" in engine
    assert "PARTITION BY toDate(timestamp)" in engine
    assert "ORDER BY (tenant, timestamp, id)" in engine
    assert f"toIntervalDay({warehouse.raw_ttl_days})" in engine


def test_drifted_migration_is_refused(warehouse: WarehouseSettings, tmp_path: Path) -> None:
    for m in migrator.load_migrations():
        (tmp_path / f"{m.version:04d}_{m.name}.sql").write_text(m.text)
    first = sorted(tmp_path.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after it ran\n")
    client = create_client(warehouse, role="admin")
    statuses = migrator.status(client, migrator.load_migrations(tmp_path))
    assert [s.drifted for s in statuses].count(True) == 1
    with pytest.raises(migrator.MigrationError, match="changed since they ran"):
        migrator.apply(client, migrator.load_migrations(tmp_path), {"raw_ttl_days": 1})


def test_bad_file_names_and_duplicate_versions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_create.sql").write_text("SELECT 1")
    with pytest.raises(migrator.MigrationError, match="NNNN_verb_object"):
        migrator.load_migrations(tmp_path)
    (tmp_path / "1_create.sql").unlink()
    (tmp_path / "0001_create_a.sql").write_text("SELECT 1")
    (tmp_path / "0001_create_b.sql").write_text("SELECT 1")
    with pytest.raises(migrator.MigrationError, match="two migrations"):
        migrator.load_migrations(tmp_path)


def test_statements_split_and_placeholders_fill() -> None:
    m = migrator.Migration(1, "x", "-- comment; here\nCREATE TABLE a (x UInt8) TTL ${days};\nSELECT ';'\n;\n")
    assert m.statements({"days": 3}) == ["CREATE TABLE a (x UInt8) TTL 3", "SELECT ';'"]


def test_invalid_database_name_is_refused(warehouse: WarehouseSettings) -> None:
    client = create_client(warehouse, role="admin")
    with pytest.raises(migrator.MigrationError):
        migrator.ensure_database(client, "x`; DROP DATABASE y")
