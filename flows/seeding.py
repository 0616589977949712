"""Read back the raw events a previous process already counted, for windows started without state.

A flow that starts without window state (a fresh recovery store: a second ``eventpulse up`` on the
same warehouse, a lost recovery directory) would re-emit windows that already hold rows with only
its own events, and its versions are higher, so it would overwrite correct rows. Instead
`flows.windowing.WindowLogic` seeds each window it first touches from ``events FINAL`` (one query
per micro-batch for all newly touched windows of its bucket), through a `SeedReader`:

* `WarehouseSeedReader` reads through clickhouse-connect (the `create_client` factory), with bound
  parameters only; the bucket's tenants are ``CRC32(tenant) % buckets = bucket``, ClickHouse's
  ``CRC32`` being the IEEE CRC-32 that `flows.windowing.Router` computes with ``zlib.crc32``.
* Tests pass any object with the same two methods (e.g. events from a list), so `WindowLogic` runs
  under Bytewax's ``TestingSource`` without a warehouse.
"""

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import polars as pl
from clickhouse_connect.driver.client import Client

from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from flows.window_state import EVENT_SCHEMA

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SEED_SCHEMA: dict[str, pl.DataType] = {**EVENT_SCHEMA, "id": pl.String()}
"""Columns of what a `SeedReader` returns: the aggregation inputs and the id (for the dedup key)."""

_MAX_TS = "SELECT count() AS n, toUnixTimestamp64Milli(max(timestamp)) AS ts FROM events"
# count() and max() of a partition-key column come from part metadata (no scan).

_EVENTS = """
SELECT tenant, toUnixTimestamp64Milli(timestamp) AS ts, id, type, source, user_id, latency_ms, is_error
FROM events FINAL
WHERE timestamp >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC')
  AND timestamp < fromUnixTimestamp64Milli({hi:Int64}, 'UTC')
  AND arrayExists((s, e) -> toUnixTimestamp64Milli(timestamp) >= s AND toUnixTimestamp64Milli(timestamp) < e,
                  {starts:Array(Int64)}, {ends:Array(Int64)})
  AND ({buckets:UInt32} = 1 OR CRC32(tenant) % {buckets:UInt32} = {bucket:UInt32})
"""


class SeedReader(Protocol):
    """What `WindowLogic` needs from the warehouse to seed windows."""

    def max_timestamp(self) -> int | None:
        """The largest event time in the raw table (epoch ms), None when it is empty."""
        ...

    def events(self, bucket: int, buckets: int, ranges: Sequence[tuple[int, int]]) -> pl.DataFrame:
        """Raw events (`SEED_SCHEMA`, each once) of bucket ``bucket`` of ``buckets`` with an event time
        in one of ``ranges`` ([start, end) epoch ms, disjoint)."""
        ...


class WarehouseSeedReader:
    """A `SeedReader` over the warehouse; one client, made on first use, shared by the workers.

    Queries are retried with backoff for up to ``retry_s``: a window cannot be seeded without them,
    and counting it without its earlier events is what seeding exists to prevent.
    """

    def __init__(
        self,
        settings: WarehouseSettings,
        factory: Callable[[WarehouseSettings], Client] | None = None,
        retry_s: float = 60.0,
    ) -> None:
        self._settings, self._retry_s = settings, retry_s
        self._factory = factory or functools.partial(create_client, role="writer")
        self._client: Client | None = None
        self._lock = threading.Lock()  # one clickhouse-connect client runs one query at a time

    def max_timestamp(self) -> int | None:
        (n, ts), *_ = self._query(lambda c: c.query(_MAX_TS).result_rows)
        return int(ts) if n else None

    def events(self, bucket: int, buckets: int, ranges: Sequence[tuple[int, int]]) -> pl.DataFrame:
        if not ranges:
            return pl.DataFrame(schema=SEED_SCHEMA)
        params = {
            "lo": min(s for s, _ in ranges),
            "hi": max(e for _, e in ranges),
            "starts": [s for s, _ in ranges],
            "ends": [e for _, e in ranges],
            "bucket": bucket,
            "buckets": buckets,
        }
        table = self._query(lambda c: c.query_arrow(_EVENTS, parameters=params))
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame.select(pl.col(name).cast(dtype) for name, dtype in SEED_SCHEMA.items())

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _query(self, run: Callable[[Client], _T]) -> _T:
        deadline = time.monotonic() + self._retry_s
        pause = 0.1
        while True:
            try:
                with self._lock:
                    if self._client is None:
                        self._client = self._factory(self._settings)
                    return run(self._client)
            except Exception as exc:
                if time.monotonic() + pause > deadline:
                    raise
                log.warning("seeding query failed (%s), retrying in %.1fs", exc, pause)
                self.close()
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
