"""Cluster migrations: generated from the same files, parsed by the engine, and of the right shape.

Without Keeper and a second server nothing here can run the DDL ON CLUSTER; what it does prove:
the engine the tests run (chDB) parses every generated statement (`EXPLAIN AST`), and the
engine's own canonical form of each (`formatQuerySingleLine`) has the shape a cluster needs: every
MergeTree-family table a Replicated ``<t>_local`` behind a Distributed ``<t>`` sharded by its
sorting key, every ALTER of data on the local table, every statement ON CLUSTER.
"""

import re
from pathlib import Path

import pytest

from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse import cluster, migrator
from eventpulse.warehouse.client import create_client

CLUSTER = "eventpulse"
DATABASE = "eventpulse"
VARIABLES = migrator.migration_variables(30)
_CREATED = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)", re.I)


def bundled_plan(cluster_name: str = CLUSTER) -> dict[int, list[str]]:
    return migrator.planned_statements(migrator.load_migrations(), VARIABLES, cluster_name, DATABASE)


def single_node_tables() -> dict[str, str]:
    """Every table the single-node migrations create, with the statement that creates it."""
    found: dict[str, str] = {}
    for m in migrator.load_migrations():
        for statement in m.statements(VARIABLES):
            match = _CREATED.match(statement)
            if match:
                found[match[1]] = statement
    return found


def all_statements(plan: dict[int, list[str]]) -> list[str]:
    """The database, the ledger and every migration, as `eventpulse migrate` runs them on a cluster."""
    head = [cluster.database_ddl(DATABASE, CLUSTER), migrator.ledger_ddl(CLUSTER)]
    return head + [s for version in sorted(plan) for s in plan[version]]


def shape_problems(canonical: list[str], cluster_name: str = CLUSTER) -> list[str]:
    """What is wrong with a cluster DDL (engine-formatted, one line each); empty when right."""
    problems: list[str] = []
    # As written ('name') or as the engine formats it (name, or `name` where quoting is needed).
    on_cluster = re.compile(rf"ON CLUSTER [`']?{re.escape(cluster_name)}[`']?(\s|$)")
    creates = {}
    for statement in canonical:
        if not statement.startswith("INSERT") and not on_cluster.search(statement):
            problems.append(f"not ON CLUSTER: {statement[:80]}")
        if "non_replicated_deduplication_window" in statement:
            problems.append(f"non-replicated setting left: {statement[:80]}")
        match = re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", statement)
        if match:
            creates[match[1]] = statement
        alter = re.match(r"ALTER TABLE (\w+)", statement)
        if alter and not alter[1].endswith("_local") and "COLUMN" not in statement:
            problems.append(f"data ALTER not on the local table: {statement[:80]}")
    for table, original in single_node_tables().items():
        local, front = creates.get(f"{table}_local"), creates.get(table)
        if local is None or front is None:
            problems.append(f"{table}: missing {table}_local or its front")
            continue
        engine = re.search(r"ENGINE = (\w+)\(", local)
        if not engine or not engine[1].startswith("Replicated"):
            problems.append(f"{table}_local: engine {engine and engine[1]} is not Replicated")
        elif "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'" not in local:
            problems.append(f"{table}_local: Keeper path or replica name missing")
        expected_front = f"ENGINE = Distributed('{cluster_name}', '{DATABASE}', '{table}_local', cityHash64("
        if expected_front not in front:
            problems.append(f"{table}: front is not Distributed over {table}_local: {front[-120:]}")
        order_by = re.search(r"ORDER BY (\([^)]*\)|\w+)", local)
        key = order_by[1].strip("()") if order_by else "?"
        if f"cityHash64({key}))" not in front:
            problems.append(f"{table}: sharding key is not a hash of the sorting key ({key})")
        if "non_replicated_deduplication_window" in original and "replicated_deduplication_window" not in local:
            problems.append(f"{table}_local: lost its deduplication window")
    return problems


# --- unit tier: rendering ------------------------------------------------------------------------


def test_single_node_statements_are_exactly_the_files() -> None:
    """Empty cluster name: the migrator runs the statements as written, byte for byte."""
    migrations = migrator.load_migrations()
    plan = migrator.planned_statements(migrations, VARIABLES, "", DATABASE)
    assert plan == {m.version: m.statements(VARIABLES) for m in migrations}
    assert migrator.ledger_ddl("") == migrator._LEDGER_DDL


def test_the_cluster_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_CLUSTER", "prod")
    assert WarehouseSettings().cluster == "prod"
    monkeypatch.delenv("EVENTPULSE_WAREHOUSE_CLUSTER")
    assert WarehouseSettings().cluster == ""
    with pytest.raises(ValueError):
        WarehouseSettings(cluster="a'b")


def test_every_table_gets_a_replicated_local_table_and_a_distributed_front() -> None:
    plan = bundled_plan()
    # Text-level check; the engine-level one is below. Both use the same rules.
    assert shape_problems([" ".join(s.split()) for s in all_statements(plan)]) == []
    assert {"events", "dead_letters", "window_aggregates", "rollup_daily_staging", "api_keys"} <= set(
        single_node_tables()
    )


def test_shape_check_fails_on_the_single_node_ddl() -> None:
    """Negative control: the shape check is not vacuous."""
    plan = migrator.planned_statements(migrator.load_migrations(), VARIABLES, "", DATABASE)
    flat = [" ".join(s.split()) for v in sorted(plan) for s in plan[v]]
    problems = shape_problems(flat)
    assert any("not ON CLUSTER" in p for p in problems)
    assert any("missing events_local" in p for p in problems)


def test_a_rand_sharding_key_is_caught_by_the_shape_check() -> None:
    """Negative control: a front sharded by rand() (duplicates on different shards) is refused."""
    canonical = [" ".join(s.split()) for s in all_statements(bundled_plan())]
    broken = [re.sub(r"cityHash64\(tenant, timestamp, id\)\)$", "rand())", s) for s in canonical]
    assert broken != canonical
    assert any("events: sharding key" in p for p in shape_problems(broken))


def write(folder: Path, files: dict[str, str]) -> list[migrator.Migration]:
    for name, text in files.items():
        (folder / name).write_text(text)
    return migrator.load_migrations(folder)


BASE = {
    "0001_create_src.sql": "CREATE TABLE IF NOT EXISTS src (k String, v UInt64) ENGINE = MergeTree ORDER BY k;",
    "0002_create_dst.sql": (
        "CREATE TABLE IF NOT EXISTS dst (k String, n UInt64) ENGINE = SummingMergeTree(n) ORDER BY k;"
    ),
}


def test_materialized_views_read_and_write_the_local_tables(tmp_path: Path) -> None:
    mv = "CREATE MATERIALIZED VIEW IF NOT EXISTS mv TO dst AS SELECT k, count() AS n FROM src GROUP BY k;"
    migrations = write(tmp_path, {**BASE, "0003_create_mv.sql": mv})
    (statement,) = migrator.planned_statements(migrations, {}, CLUSTER, DATABASE)[3]
    assert statement.startswith(f"CREATE MATERIALIZED VIEW IF NOT EXISTS mv ON CLUSTER '{CLUSTER}' TO dst_local")
    assert "FROM src_local GROUP BY k" in statement


def test_a_materialized_view_without_to_is_refused(tmp_path: Path) -> None:
    mv = "CREATE MATERIALIZED VIEW mv ENGINE = MergeTree ORDER BY k AS SELECT k FROM src;"
    migrations = write(tmp_path, {**BASE, "0003_create_mv.sql": mv})
    with pytest.raises(migrator.MigrationError, match="TO <table>"):
        migrator.planned_statements(migrations, {}, CLUSTER, DATABASE)


def test_column_changes_reach_the_front_and_the_local_table_in_a_safe_order(tmp_path: Path) -> None:
    files = {
        **BASE,
        "0003_add_column.sql": "ALTER TABLE src ADD COLUMN IF NOT EXISTS w String;",
        "0004_drop_column.sql": "ALTER TABLE src DROP COLUMN IF EXISTS w;",
        "0005_add_index.sql": "ALTER TABLE src ADD INDEX i v TYPE minmax;",
    }
    plan = migrator.planned_statements(write(tmp_path, files), {}, CLUSTER, DATABASE)
    on = f"ON CLUSTER '{CLUSTER}'"
    assert plan[3] == [
        f"ALTER TABLE src_local {on} ADD COLUMN IF NOT EXISTS w String",
        f"ALTER TABLE src {on} ADD COLUMN IF NOT EXISTS w String",
    ]
    assert plan[4] == [
        f"ALTER TABLE src {on} DROP COLUMN IF EXISTS w",
        f"ALTER TABLE src_local {on} DROP COLUMN IF EXISTS w",
    ]
    assert plan[5] == [f"ALTER TABLE src_local {on} ADD INDEX i v TYPE minmax"]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("ALTER TABLE src ADD COLUMN w String, ADD INDEX i v TYPE minmax;", "separate statements"),
        ("ALTER TABLE nowhere ADD INDEX i v TYPE minmax;", "not a table declared"),
        ("CREATE TABLE IF NOT EXISTS t (k String) ENGINE = Log;", "not a non-replicated MergeTree"),
        ("CREATE TABLE IF NOT EXISTS t (k String) ENGINE = MergeTree ORDER BY tuple();", "sorting key"),
        ("RENAME TABLE src TO other;", "no cluster rendering"),
        ("CREATE TABLE IF NOT EXISTS t AS nowhere;", "no earlier migration declared"),
    ],
)
def test_statements_a_cluster_cannot_take_are_refused(tmp_path: Path, sql: str, message: str) -> None:
    migrations = write(tmp_path, {**BASE, "0003_change_things.sql": sql})
    with pytest.raises(migrator.MigrationError, match=message):
        migrator.planned_statements(migrations, {}, CLUSTER, DATABASE)
    assert migrator.planned_statements(migrations, {}, "", DATABASE)[3]  # one server runs it as written


def test_drop_table_drops_front_and_local(tmp_path: Path) -> None:
    migrations = write(tmp_path, {**BASE, "0003_drop_src.sql": "DROP TABLE IF EXISTS src;"})
    plan = migrator.planned_statements(migrations, {}, CLUSTER, DATABASE)
    assert plan[3] == [
        f"DROP TABLE IF EXISTS src ON CLUSTER '{CLUSTER}' SYNC",
        f"DROP TABLE IF EXISTS src_local ON CLUSTER '{CLUSTER}' SYNC",
    ]


def test_partition_commands_run_on_the_local_tables() -> None:
    """The day swap and retention, as orchestration/ issues them, for a cluster."""
    swap = "ALTER TABLE window_aggregates REPLACE PARTITION '2026-11-02' FROM window_aggregates_staging"
    assert cluster.partition_command(swap, "") == swap
    assert cluster.partition_command(swap, CLUSTER) == (
        f"ALTER TABLE window_aggregates_local ON CLUSTER '{CLUSTER}' REPLACE PARTITION '2026-11-02' "
        "FROM window_aggregates_staging_local"
    )
    drop = "ALTER TABLE events DROP PARTITION '2026-11-02'"
    assert cluster.partition_command(drop, CLUSTER) == (
        f"ALTER TABLE events_local ON CLUSTER '{CLUSTER}' DROP PARTITION '2026-11-02'"
    )
    with pytest.raises(cluster.ClusterDDLError):
        cluster.partition_command("SELECT 1", CLUSTER)


def test_invalid_cluster_names_are_refused() -> None:
    with pytest.raises(migrator.MigrationError, match="invalid cluster"):
        bundled_plan("x' OR 1")


# --- the engine parses every generated statement ------------------------------------------------


def test_the_engine_parses_every_cluster_statement(chdb_warehouse: WarehouseSettings) -> None:
    client = create_client(chdb_warehouse, role="admin")
    statements = all_statements(bundled_plan())
    swap = "ALTER TABLE window_aggregates REPLACE PARTITION '2026-11-02' FROM window_aggregates_staging"
    statements.append(cluster.partition_command(swap, CLUSTER))
    canonical: list[str] = []
    for statement in statements:
        tree = client.query(f"EXPLAIN AST {statement}").result_rows
        assert tree, statement
        formatted = client.query("SELECT formatQuerySingleLine({q:String})", parameters={"q": statement})
        canonical.append(formatted.result_rows[0][0])
    assert shape_problems(canonical) == []
    # The parsed trees name the engines we meant (not only the text).
    events_tree = "\n".join(r[0] for r in client.query(f"EXPLAIN AST {bundled_plan()[1][0]}").result_rows)
    assert "Function ReplicatedReplacingMergeTree" in events_tree
    front_tree = "\n".join(r[0] for r in client.query(f"EXPLAIN AST {bundled_plan()[1][1]}").result_rows)
    assert "Function Distributed" in front_tree and "Function cityHash64" in front_tree


def test_the_parse_check_catches_a_broken_rendering(chdb_warehouse: WarehouseSettings) -> None:
    """Negative control: a statement the renderer got wrong (engine argument list cut) does not parse."""
    client = create_client(chdb_warehouse, role="admin")
    good = bundled_plan()[1][0]
    broken = good.replace("'{replica}', ingested_at)", "'{replica}', ingested_at")
    assert broken != good
    with pytest.raises(Exception, match=r"SYNTAX_ERROR|Syntax error"):
        client.query(f"EXPLAIN AST {broken}")
