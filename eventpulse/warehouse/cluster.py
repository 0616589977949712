"""The migration files rendered for a ClickHouse cluster (``EVENTPULSE_WAREHOUSE_CLUSTER``).

The same ``NNNN_verb_object.sql`` files drive one server and a cluster; only the rendering differs,
and the ledger records the file's checksum either way. On a cluster every MergeTree-family table
``t`` becomes two tables, both created ``ON CLUSTER``:

* ``t_local``: ``Replicated<Engine>('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', ...)``
  on every node. Each shard's replicas share one log in Keeper, and so does insert deduplication:
  a retried block (same ``insert_deduplication_token``) is dropped by whichever replica gets it.
  ``non_replicated_deduplication_window`` becomes ``replicated_deduplication_window``.
* ``t``: ``Distributed(cluster, database, t_local, cityHash64(<sorting key>))`` in front. Readers and
  writers keep using ``t``. The sharding key is a hash of the sorting key because the tables
  deduplicate on it (ReplacingMergeTree, versioned rows): every copy of a row, and every retry of a
  batch, lands on the same shard, where the merge and the dedup log see it. ``rand()`` would
  scatter duplicates over shards, where no merge ever meets them.

Statements are rewritten textually and kept as written but for the table name, ``ON CLUSTER`` and
the engine clause, so the cluster DDL differs from the single-node DDL only where it must. A
statement form this module does not know is refused (`ClusterDDLError`), never passed through
half-rendered. ``python -m eventpulse.warehouse.cluster --cluster NAME`` prints the DDL for review.
"""

import argparse
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

LOCAL_SUFFIX = "_local"
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
"""Keeper path of a sharded table's replicas: one log per (shard, database, table)."""
GLOBAL_PATH = "/clickhouse/tables/all/{database}/{table}"
"""Keeper path of a table copied to every node (the migration ledger): one log for the cluster."""

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_CLUSTER = re.compile(r"[A-Za-z0-9_.{}-]+")
_CREATE_TABLE = re.compile(
    rf"^CREATE\s+TABLE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME})\s*(?P<body>.*)$", re.S | re.I
)
_AS_SOURCE = re.compile(rf"^AS\s+(?P<source>{_NAME})\s*(?P<rest>.*)$", re.S | re.I)
_ENGINE = re.compile(r"^ENGINE\s*=\s*(?P<engine>[A-Za-z]+)\s*", re.I)
_ALTER = re.compile(rf"^ALTER\s+TABLE\s+(?P<name>{_NAME})\s+(?P<commands>.*)$", re.S | re.I)
_COLUMN_COMMAND = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)
_MATERIALIZED_VIEW = re.compile(
    rf"^CREATE\s+MATERIALIZED\s+VIEW\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME})\s+"
    rf"TO\s+(?P<target>{_NAME})\s*(?P<rest>.*)$",
    re.S | re.I,
)
_VIEW = re.compile(
    rf"^CREATE\s+(?P<kind>(?:OR\s+REPLACE\s+)?VIEW)\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME})\s+(?P<rest>AS\s.*)$",
    re.S | re.I,
)
_FUNCTION = re.compile(
    rf"^CREATE\s+(?P<kind>(?:OR\s+REPLACE\s+)?FUNCTION)\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME})\s+(?P<rest>AS\s.*)$",
    re.S | re.I,
)
_DROP = re.compile(rf"^DROP\s+TABLE\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{_NAME})\s*$", re.I)
_TABLE_REFERENCE = re.compile(rf"\b(?P<kw>FROM|JOIN)\s+(?P<name>{_NAME})\b", re.I)


class ClusterDDLError(ValueError):
    """A migration statement cannot be rendered for a cluster (the migrator reports it)."""


class _Statements(Protocol):
    """What this module needs of a migration (`eventpulse.warehouse.migrator.Migration`)."""

    @property
    def version(self) -> int: ...

    def statements(self, variables: Mapping[str, object]) -> list[str]: ...


@dataclass(frozen=True)
class TableDef:
    """A MergeTree-family table as its migration declared it (single-node form)."""

    name: str
    engine: str
    engine_args: str
    storage: str
    """Everything after the engine: PARTITION BY, ORDER BY, TTL, SETTINGS, as written."""

    @property
    def sorting_key(self) -> list[str]:
        """The ORDER BY expressions (the key ReplacingMergeTree deduplicates on)."""
        match = re.search(r"\bORDER\s+BY\s+", self.storage, re.I)
        if not match:
            raise ClusterDDLError(f"{self.name}: a cluster table needs ORDER BY to shard by")
        rest = self.storage[match.end() :]
        if rest.startswith("("):
            inner = rest[1 : _closing(rest, 0)]
            keys = _split_top_level(inner)
        else:
            keys = [re.split(r"\s", rest, maxsplit=1)[0]]
        if not keys or keys == ["tuple()"]:
            raise ClusterDDLError(f"{self.name}: a cluster table needs a sorting key to shard by")
        return keys

    @property
    def sharding_key(self) -> str:
        return f"cityHash64({', '.join(self.sorting_key)})"


def _closing(text: str, start: int) -> int:
    """Index of the parenthesis closing the one at ``text[start]`` (quotes and backticks skipped)."""
    depth = 0
    quote = ""
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ClusterDDLError(f"unbalanced parentheses in {text[:60]!r}")


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    parts: list[str] = []
    depth, quote = 0, ""
    current: list[str] = []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _parse_engine(name: str, text: str) -> TableDef:
    """``ENGINE = X[(args)] storage...`` into a TableDef."""
    match = _ENGINE.match(text)
    if not match:
        raise ClusterDDLError(f"{name}: CREATE TABLE without ENGINE = ... cannot be rendered for a cluster")
    engine, rest = match["engine"], text[match.end() :]
    args = ""
    if rest.startswith("("):
        end = _closing(rest, 0)
        args, rest = rest[1:end].strip(), rest[end + 1 :]
    if not engine.endswith("MergeTree") or engine.startswith("Replicated"):
        raise ClusterDDLError(f"{name}: engine {engine} is not a non-replicated MergeTree-family engine")
    return TableDef(name, engine, args, rest.strip())


class ClusterRenderer:
    """Renders statements in migration order; remembers the tables declared so far."""

    def __init__(self, cluster: str, database: str) -> None:
        if not _CLUSTER.fullmatch(cluster):
            raise ClusterDDLError(f"invalid cluster name {cluster!r}")
        if not re.fullmatch(_NAME, database):
            raise ClusterDDLError(f"invalid database name {database!r}")
        self.cluster = cluster
        self.database = database
        self.tables: dict[str, TableDef] = {}

    @property
    def on_cluster(self) -> str:
        return f"ON CLUSTER '{self.cluster}'"

    def replicated_engine(self, table: TableDef, path: str = REPLICA_PATH, replica: str = "{replica}") -> str:
        """``ENGINE = Replicated<Engine>(path, replica[, args]) <storage>`` for ``table``."""
        args = ", ".join([f"'{path}'", f"'{replica}'", *([table.engine_args] if table.engine_args else [])])
        storage = re.sub(r"\bnon_replicated_deduplication_window\b", "replicated_deduplication_window", table.storage)
        return f"ENGINE = Replicated{table.engine}({args})\n{storage}".rstrip()

    def distributed_front(self, table: TableDef) -> str:
        local = table.name + LOCAL_SUFFIX
        return (
            f"CREATE TABLE IF NOT EXISTS {table.name} {self.on_cluster} AS {local}\n"
            f"ENGINE = Distributed('{self.cluster}', '{self.database}', '{local}', {table.sharding_key})"
        )

    def render(self, statement: str) -> list[str]:
        """The cluster statements for one single-node statement, in the order they must run."""
        handlers = (self._create_table, self._alter, self._materialized_view, self._view, self._function, self._drop)
        for handler in handlers:
            rendered = handler(statement)
            if rendered is not None:
                return rendered
        if re.match(r"^INSERT\s+INTO\s", statement, re.I):
            return [statement]  # through the Distributed front, once for the cluster
        first = statement.strip().splitlines()[0]
        raise ClusterDDLError(f"no cluster rendering for this statement: {first[:80]!r}")

    def _create_table(self, statement: str) -> list[str] | None:
        match = _CREATE_TABLE.match(statement)
        if not match:
            return None
        name, body = match["name"], match["body"].strip()
        if name in self.tables:
            return []  # IF NOT EXISTS of a table already declared: nothing to do twice
        source = _AS_SOURCE.match(body)
        if source:
            base = self.tables.get(source["source"])
            if base is None:
                raise ClusterDDLError(f"{name}: AS {source['source']}, which no earlier migration declared")
            table = _parse_engine(name, source["rest"]) if source["rest"] else replace(base, name=name)
            columns = f"AS {base.name}{LOCAL_SUFFIX}"
        else:
            if not body.startswith("("):
                raise ClusterDDLError(f"{name}: expected a column list or AS <table>")
            end = _closing(body, 0)
            columns = body[: end + 1]
            table = _parse_engine(name, body[end + 1 :].strip())
        self.tables[name] = table
        _ = table.sharding_key  # refuse a table without a key before any DDL runs
        local = (
            f"CREATE TABLE IF NOT EXISTS {name}{LOCAL_SUFFIX} {self.on_cluster}\n{columns}\n"
            + self.replicated_engine(table)
        )
        return [local, self.distributed_front(table)]

    def _alter(self, statement: str) -> list[str] | None:
        match = _ALTER.match(statement)
        if not match:
            return None
        name, commands = match["name"], match["commands"].strip()
        if name not in self.tables:
            raise ClusterDDLError(f"ALTER TABLE {name}: not a table declared by an earlier migration")
        kinds = {bool(_COLUMN_COMMAND.match(command)) for command in _split_top_level(commands)}
        local = f"ALTER TABLE {name}{LOCAL_SUFFIX} {self.on_cluster} {commands}"
        if kinds == {False}:
            return [local]  # indexes, TTL, settings, partitions, mutations: the data lives in _local
        if kinds == {True}:
            front = f"ALTER TABLE {name} {self.on_cluster} {commands}"
            # The front must never name a column its local table lacks.
            dropping = all(re.match(r"^(DROP|RENAME)\b", c, re.I) for c in _split_top_level(commands))
            return [front, local] if dropping else [local, front]
        raise ClusterDDLError(f"ALTER TABLE {name}: put column changes and other commands in separate statements")

    def _localize(self, select: str) -> str:
        """FROM/JOIN of declared tables read the shard's own local table."""

        def swap(m: re.Match[str]) -> str:
            table = m["name"]
            return f"{m['kw']} {table}{LOCAL_SUFFIX}" if table in self.tables else m[0]

        return _TABLE_REFERENCE.sub(swap, select)

    def _materialized_view(self, statement: str) -> list[str] | None:
        match = _MATERIALIZED_VIEW.match(statement)
        if not match:
            if re.match(r"^CREATE\s+MATERIALIZED\s+VIEW\s", statement, re.I):
                raise ClusterDDLError("a materialized view on a cluster needs TO <table> (a declared table)")
            return None
        target = match["target"]
        if target not in self.tables:
            raise ClusterDDLError(f"materialized view {match['name']}: TO {target}, not a declared table")
        # Each shard's view sees the inserts into its own local source and writes its own local target.
        ine = "IF NOT EXISTS " if match["ine"] else ""
        return [
            f"CREATE MATERIALIZED VIEW {ine}{match['name']} {self.on_cluster} TO {target}{LOCAL_SUFFIX}\n"
            + self._localize(match["rest"])
        ]

    def _view(self, statement: str) -> list[str] | None:
        match = _VIEW.match(statement)
        if not match:
            return None
        ine = "IF NOT EXISTS " if match["ine"] else ""
        return [f"CREATE {match['kind']} {ine}{match['name']} {self.on_cluster} {match['rest']}"]

    def _function(self, statement: str) -> list[str] | None:
        """A SQL function is server-wide: created on every node."""
        match = _FUNCTION.match(statement)
        if not match:
            return None
        ine = "IF NOT EXISTS " if match["ine"] else ""
        return [f"CREATE {match['kind']} {ine}{match['name']} {self.on_cluster} {match['rest']}"]

    def _drop(self, statement: str) -> list[str] | None:
        match = _DROP.match(statement)
        if not match:
            return None
        name = match["name"]
        if name not in self.tables:
            raise ClusterDDLError(f"DROP TABLE {name}: not a table declared by an earlier migration")
        del self.tables[name]
        return [
            f"DROP TABLE IF EXISTS {name} {self.on_cluster} SYNC",
            f"DROP TABLE IF EXISTS {name}{LOCAL_SUFFIX} {self.on_cluster} SYNC",
        ]


_PARTITION_COMMAND = re.compile(
    rf"^ALTER\s+TABLE\s+(?P<table>{_NAME})\s+(?P<verb>(?:REPLACE|DROP|ATTACH|DETACH)\s+PARTITION)\s+"
    rf"(?P<partition>.+?)(?:\s+FROM\s+(?P<source>{_NAME}))?\s*$",
    re.S | re.I,
)


def partition_command(statement: str, cluster: str) -> str:
    """A single-node partition command (day swap, retention) for the cluster's local tables.

    Partitions live in each shard's ``<t>_local``; a Distributed table has none. Since every
    table of a pair (target and staging) is sharded by the same key, swapping a day shard by shard
    swaps the whole day. ``ALTER TABLE t REPLACE PARTITION p FROM s`` becomes
    ``ALTER TABLE t_local ON CLUSTER 'c' REPLACE PARTITION p FROM s_local`` (run once; each shard's
    replicas replicate it). Without a cluster the statement is returned as it is.
    """
    if not cluster:
        return statement
    match = _PARTITION_COMMAND.match(statement.strip())
    if not match:
        raise ClusterDDLError(f"not a partition command: {statement[:80]!r}")
    on = ClusterRenderer(cluster, "unused").on_cluster
    source = f" FROM {match['source']}{LOCAL_SUFFIX}" if match["source"] else ""
    return f"ALTER TABLE {match['table']}{LOCAL_SUFFIX} {on} {match['verb']} {match['partition']}{source}"


def render_migrations(
    migrations: Iterable[_Statements], variables: Mapping[str, object], cluster: str, database: str
) -> dict[int, list[str]]:
    """Every migration's cluster statements by version (all of them: later files build on earlier ones)."""
    renderer = ClusterRenderer(cluster, database)
    return {m.version: [out for s in m.statements(variables) for out in renderer.render(s)] for m in migrations}


def ledger_ddl(single_node_ddl: str, cluster: str) -> str:
    """The migration ledger on a cluster: one replicated table, the same rows on every node.

    Its Keeper path has no ``{shard}``, so all nodes are replicas of one log; the replica name is
    ``{shard}-{replica}``, unique across the cluster. `eventpulse migrate` run against any node
    then sees what any other node applied.
    """
    renderer = ClusterRenderer(cluster, "unused")
    match = _CREATE_TABLE.match(single_node_ddl.strip())
    if not match:
        raise ClusterDDLError("the ledger DDL is not a CREATE TABLE")
    body = match["body"].strip()
    end = _closing(body, 0)
    table = _parse_engine(match["name"], body[end + 1 :].strip())
    engine = renderer.replicated_engine(table, GLOBAL_PATH, "{shard}-{replica}")
    return f"CREATE TABLE IF NOT EXISTS {match['name']} {renderer.on_cluster}\n{body[: end + 1]}\n{engine}"


def database_ddl(database: str, cluster: str) -> str:
    """``CREATE DATABASE`` on every node of the cluster."""
    renderer = ClusterRenderer(cluster, database)
    return f"CREATE DATABASE IF NOT EXISTS `{database}` {renderer.on_cluster}"


def main(argv: list[str] | None = None) -> None:
    """Print the cluster DDL of the bundled migrations (review it before `eventpulse migrate`)."""
    from eventpulse.warehouse import migrator

    parser = argparse.ArgumentParser(prog="python -m eventpulse.warehouse.cluster", description=main.__doc__)
    parser.add_argument("--cluster", required=True, help="remote_servers cluster name")
    parser.add_argument("--database", default="eventpulse")
    parser.add_argument("--raw-ttl-days", type=int, default=365)
    args = parser.parse_args(argv)
    migrations = migrator.load_migrations()
    print(database_ddl(args.database, args.cluster) + ";\n")
    print(migrator.ledger_ddl(args.cluster) + ";\n")
    rendered = render_migrations(
        migrations, migrator.migration_variables(args.raw_ttl_days), args.cluster, args.database
    )
    for m in migrations:
        print(f"-- {m.version:04d}_{m.name}")
        for statement in rendered[m.version]:
            print(statement + ";\n")


if __name__ == "__main__":
    main()
