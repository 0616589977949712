"""Reading ClickHouse SQL the way the engine will: tokens and a syntax tree from sqlglot's dialect.

Checks here never look at raw text: comments, letter case, quoting and whitespace are the
tokenizer's business, so ``/* x */ sElEcT`` and `` `file`( `` are seen for what they are. Whatever
sqlglot cannot parse is refused by the callers that need a tree (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

DIALECT = "clickhouse"

# ClickHouse error codes used in refusals (the text the client sees says which rule applied).
SYNTAX_ERROR = 62
READONLY = 164
ACCESS_DENIED = 497
NAMES = {SYNTAX_ERROR: "SYNTAX_ERROR", READONLY: "READONLY", ACCESS_DENIED: "ACCESS_DENIED"}

HOST_ACCESS_FUNCTIONS = frozenset(
    {
        "file",
        "filecluster",
        "url",
        "urlcluster",
        "s3",
        "s3cluster",
        "gcs",
        "oss",
        "cosn",
        "hdfs",
        "hdfscluster",
        "azureblobstorage",
        "azureblobstoragecluster",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "mysql",
        "postgresql",
        "jdbc",
        "odbc",
        "sqlite",
        "mongodb",
        "redis",
        "executable",
        "python",
        "deltalake",
        "hudi",
        "iceberg",
        "icebergs3",
        "icebergazure",
        "iceberghdfs",
        "iceberglocal",
        "arrowflight",
        "ytsaurus",
        "paimon",
    }
)
"""Functions that reach the warehouse host's files, the network or other servers. Some are also
scalar functions (``file()`` reads a host file into a string), so they are refused wherever they
are called, whoever calls them."""

CROSS_TABLE_FUNCTIONS = frozenset(
    {
        "dictionary",
        "merge",
        "loop",
        "view",
        "viewifpermitted",
        "mergetreeindex",
        "mergetreeanalyzeindexes",
        "mergetreeprojection",
        "fuzzjson",
        "fuzzquery",
        "joinget",
        "joingetornull",
        "dictget",
    }
)
"""Functions that read tables named by a string or a pattern (``merge(db, '^api')``), which no
table-level rule sees: refused for everyone but admin."""

SAFE_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries", "values", "null", "input"}
)
"""Table functions that produce rows from their arguments alone."""


class Refused(Exception):
    """A statement a rule does not allow; ``code`` is the ClickHouse error code to answer with."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.name = NAMES[code]
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Parsed:
    """One statement: its tokens and, if sqlglot could parse it, its tree."""

    tokens: Sequence[Token]
    tree: exp.Expression | None


def tokenize(sql: str) -> list[Token]:
    try:
        return sqlglot.Dialect.get_or_raise(DIALECT).tokenize(sql)
    except TokenError as exc:
        raise Refused(SYNTAX_ERROR, f"Cannot read the statement: {exc}") from None


def check_tokens(tokens: Sequence[Token], refused_functions: Iterable[str] = HOST_ACCESS_FUNCTIONS) -> None:
    """Refuse multi-statements, ``INTO OUTFILE``, ``FROM INFILE``, ``INSERT INTO FUNCTION`` and calls
    of ``refused_functions`` (lower-case names), wherever they are in the statement."""
    refused = frozenset(refused_functions)
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        if token.token_type == TokenType.STRING:
            continue
        word = token.text.lower()
        if token.token_type == TokenType.SEMICOLON and any(t.token_type != TokenType.SEMICOLON for t in tokens[i:]):
            raise Refused(SYNTAX_ERROR, "Multi-statements are not allowed")
        if word in ("outfile", "infile") and token.token_type != TokenType.IDENTIFIER:
            raise Refused(ACCESS_DENIED, f"{word.upper()} reads or writes files on the warehouse host: not allowed")
        if word == "function" and i > 0 and tokens[i - 1].token_type == TokenType.INTO:
            raise Refused(ACCESS_DENIED, "INSERT INTO FUNCTION writes outside the warehouse's tables: not allowed")
        if word in refused and i < last and tokens[i + 1].token_type == TokenType.L_PAREN:
            raise Refused(ACCESS_DENIED, f"The function {token.text}() is not allowed here")


def parse(sql: str) -> Parsed:
    """Tokens and tree of one statement (tree ``None`` if sqlglot cannot parse it)."""
    tokens = tokenize(sql)
    try:
        trees = [tree for tree in sqlglot.parse(sql, read=DIALECT) if tree is not None]
    except (ParseError, TokenError, ValueError, RecursionError):  # what sqlglot cannot read, nobody vouches for
        return Parsed(tokens, None)
    if len(trees) > 1:
        raise Refused(SYNTAX_ERROR, "Multi-statements are not allowed")
    return Parsed(tokens, cast("exp.Expression", trees[0]) if trees else None)


def mentioned(tokens: Sequence[Token], names: Iterable[str]) -> str | None:
    """The first identifier token naming one of ``names`` (compared in lower case), if any."""
    wanted = {name.lower() for name in names}
    for token in tokens:
        if token.token_type != TokenType.STRING and token.text.lower() in wanted:
            return token.text
    return None


def referenced(parsed: Parsed, names: Iterable[str]) -> str | None:
    """The first reference to a table in ``names`` (lower case): ``FROM t``, ``JOIN db.t``, ``IN t``.

    With a tree, only table positions count (a column alias ``users`` is not the table); without
    one (statements sqlglot keeps as text, e.g. ``SHOW``/``EXPLAIN``), any identifier token does.
    """
    wanted = {name.lower() for name in names}
    if parsed.tree is None or isinstance(parsed.tree, exp.Command):
        return mentioned(parsed.tokens, wanted)
    for table in parsed.tree.find_all(exp.Table):
        if table_function_name(table) is None and table.name.lower() in wanted:
            return table.name
    for node in parsed.tree.find_all(exp.In):
        field = node.args.get("field")
        if isinstance(field, exp.Column | exp.Table) and field.name.lower() in wanted:
            return field.name
    return None


def table_function_name(table: exp.Table) -> str | None:
    """``numbers`` for ``FROM numbers(3)``; ``None`` for a table reference."""
    if isinstance(table.this, exp.Func):
        func = table.this
        return (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
    return None


def table_functions(tree: exp.Expression) -> list[str]:
    return [name for table in tree.find_all(exp.Table) if (name := table_function_name(table))]


def written_tables(tree: exp.Expression) -> list[exp.Table]:
    """The tables an INSERT, ALTER, DELETE, UPDATE or TRUNCATE changes."""
    target = tree.this if isinstance(tree, exp.Insert | exp.Alter | exp.Delete | exp.Update) else None
    if isinstance(tree, exp.TruncateTable):
        return list(tree.expressions)
    if isinstance(target, exp.Schema):
        target = target.this
    return [target] if isinstance(target, exp.Table) else []


READ_TREES = (exp.Query, exp.Describe, exp.Set, exp.Use)
READ_COMMANDS = frozenset({"SHOW", "EXPLAIN", "EXISTS", "DESC", "DESCRIBE"})
MUTATIONS_FOR_WRITERS = (exp.DropPartition, exp.ReplacePartition, exp.Delete)
"""ALTER TABLE actions that change data, not structure (backfills swap and drop partitions)."""


def is_read(tree: exp.Expression) -> bool:
    """A statement that changes nothing (SELECT, UNION, DESCRIBE, SET, USE, SHOW, EXPLAIN, EXISTS)."""
    if isinstance(tree, exp.Command):
        return str(tree.this).upper() in READ_COMMANDS
    if isinstance(tree, exp.Query):
        return not any(isinstance(node, exp.Insert | exp.Create) for node in tree.walk())
    return isinstance(tree, READ_TREES)
