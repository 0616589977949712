"""A per-tenant fingerprint of a day of raw events, computed the same way in ClickHouse and in Python.

The checksum is ``sum(halfMD5(id))`` modulo 2**64: order-independent, so it compares a set of
rows however they were read. ``halfMD5`` of one string is the first 8 bytes of its MD5 read as a
big-endian integer, which Python's hashlib reproduces exactly.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from clickhouse_connect.driver.client import Client

_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class DayStats:
    """Rows and checksum of one tenant's events of one day."""

    rows: int
    checksum: int

    def as_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "id_checksum": self.checksum}


def id_checksum(ids: Iterable[str]) -> int:
    """``sum(halfMD5(id))`` modulo 2**64, as ClickHouse computes it."""
    total = 0
    for value in ids:
        total += int.from_bytes(hashlib.md5(value.encode()).digest()[:8], "big")
    return total & _MASK


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """``[00:00, next 00:00)`` of ``day`` in UTC."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def warehouse_day_stats(client: Client, day: date, table: str = "events") -> dict[str, DayStats]:
    """``{tenant: DayStats}`` of ``day`` in the warehouse (deduplicated with FINAL)."""
    if table not in ("events", "events_replay_staging"):
        raise ValueError(table)
    start, end = day_bounds(day)
    result = client.query(
        f"SELECT tenant, count(), sum(halfMD5(id)) FROM {table} FINAL "
        "WHERE timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')} "
        "GROUP BY tenant ORDER BY tenant",
        parameters={"start": start, "end": end},
    )
    return {tenant: DayStats(int(rows), int(checksum) & _MASK) for tenant, rows, checksum in result.result_rows}


def total(stats: dict[str, DayStats]) -> DayStats:
    """The whole day's rows and checksum (the checksum is additive)."""
    return DayStats(sum(s.rows for s in stats.values()), sum(s.checksum for s in stats.values()) & _MASK)
