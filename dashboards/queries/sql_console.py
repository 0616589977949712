"""The SQL console's runner: a user's query, scoped to the tenant and run under read-only limits."""

import time
from dataclasses import dataclass
from typing import Any

import polars as pl

from dashboards.queries.client import scope_for, scoped_reader


@dataclass(frozen=True)
class ConsoleResult:
    """A console query's rows (at most ``limit``) and whether more were cut off."""

    rows: pl.DataFrame
    truncated: bool
    elapsed_s: float


def readonly_settings(max_execution_s: float, max_result_rows: int, max_rows_to_read: int) -> dict[str, Any]:
    """The console's limits as ClickHouse settings (on top of the scoped path's memory limit).

    Read-only is the reader user's (the warehouse refuses its writes, DDL and ``SET`` of
    ``readonly``); the scoped path refuses ``SETTINGS`` clauses that would loosen these limits.
    """
    return {
        "max_execution_time": max_execution_s,
        "timeout_overflow_mode": "throw",
        "max_rows_to_read": max_rows_to_read,
        "read_overflow_mode": "throw",
        "max_result_rows": max_result_rows,
        "result_overflow_mode": "break",
    }


def run_readonly(
    sql: str, *, tenant: str, max_execution_s: float, max_result_rows: int, max_rows_to_read: int
) -> ConsoleResult:
    """Run a user's query scoped to ``tenant`` ("" = every tenant) under `readonly_settings`.

    Never cached: each run is explicit. Raises `eventpulse.access.statements.Refused` for a
    query the scoped path will not run (other tenants' data, files, system tables...).
    """
    started = time.perf_counter()
    reader = scoped_reader()
    scoped = reader.scoped(sql, scope_for(tenant))
    settings = reader.settings(**readonly_settings(max_execution_s, max_result_rows, max_rows_to_read))
    table = reader.client.query_arrow(scoped.sql, parameters=scoped.params, settings=settings)
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    # `break` stops at a block boundary, so a few more rows than the limit may arrive.
    return ConsoleResult(df.head(max_result_rows), df.height >= max_result_rows, time.perf_counter() - started)
