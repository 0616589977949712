"""The SQL console's cheap first check: one statement, of a kind that only reads.

This is a courtesy (a clear message before the round trip), not the protection: every console
query runs with ``readonly=1`` and execution limits as ClickHouse settings
(`dashboards.queries.sql_console.run_readonly`), so anything this check lets through is still refused or
stopped by the server.
"""

import re

READ_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
_LITERALS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`", re.S)
_COMMENTS = re.compile(r"--[^\n]*|#[^\n]*|/\*.*?\*/", re.S)
_FIRST_WORD = re.compile(r"[A-Za-z]+")


class RefusedStatement(ValueError):
    """The statement is not a single read query."""


def strip_sql(sql: str) -> str:
    """``sql`` without string literals, quoted identifiers and comments (for keyword checks)."""
    return _COMMENTS.sub(" ", _LITERALS.sub("''", sql))


def check_statement(sql: str) -> str:
    """Return the statement's kind (``SELECT``...) or raise `RefusedStatement` saying why."""
    bare = strip_sql(sql).strip().rstrip(";").strip()
    if not bare:
        raise RefusedStatement("Enter a query.")
    if ";" in bare:
        raise RefusedStatement("Run one statement at a time.")
    body = bare.lstrip("( \n\t")
    match = _FIRST_WORD.match(body)
    kind = match.group(0).upper() if match else ""
    if kind not in READ_KINDS:
        allowed = ", ".join(sorted(READ_KINDS))
        raise RefusedStatement(f"{kind or 'This statement'} is not allowed: the console is read-only ({allowed}).")
    return kind
