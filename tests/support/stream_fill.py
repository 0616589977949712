"""Fill a warehouse the way the pipeline does, without a broker: raw events plus the stream's window rows.

The window rows come from the stream's own windowing code (`flows.windowing.WindowLogic` over
`flows.window_state.WindowStore`, watermarks and emissions included), fed in micro-batches per
partition as the dataflow feeds it, and closed at the end of input; every emission is inserted, so
superseded versions are in the table too (readers must use FINAL or the views).
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from eventpulse.aggregation.spec import WindowSpec
from eventpulse.events import RAW_EVENT_COLUMNS
from flows.decode import FRAME_SCHEMA, Progress
from flows.metrics import PipelineMetrics
from flows.windowing import Slice, WindowConfig, WindowLogic

PARTITIONS = (0, 1, 2, 3)


def stream_emissions(events: Sequence[dict], families: Sequence[WindowSpec], batch: int = 2000) -> list[pa.Table]:
    """Every window-row emission of the stream for ``events`` (dicts of `FRAME_SCHEMA`, in arrival order)."""
    config = WindowConfig(tuple(families), PARTITIONS, 3000, 3_600_000, 3600, 1.0)
    logic = WindowLogic("b000", config, PipelineMetrics(None, 60), None)
    emitted = []
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        for p in PARTITIONS:
            part = [e for e in chunk if e["partition"] == p]
            frame = pl.DataFrame(part, schema=FRAME_SCHEMA)
            progress = Progress(p, 0, 0, max((e["ts"] for e in part), default=None), 0)
            logic.on_batch([Slice([progress], frame)])
        emitted += logic.on_notify()[0]
    emitted += logic.on_eof()[0]
    return [e.rows for e in emitted if isinstance(e.rows, pa.Table) and e.rows.num_rows]


def raw_rows(events: Sequence[dict]) -> list[tuple]:
    """``events`` rows (column order `RAW_EVENT_COLUMNS`) for the same events."""

    def dt(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC)

    return [
        (
            e["tenant"],
            e["id"],
            dt(e["ts"]),
            e["type"],
            e["source"],
            e["user_id"],
            e["latency_ms"],
            e["is_error"],
            "{}",
            "{}",
            1,
            dt(e["ts"]),
            e["partition"],
            e["offset"],
        )
        for e in events
    ]


def fill(client: Client, events: Sequence[dict], families: Sequence[WindowSpec]) -> int:
    """Insert ``events`` as raw events and the stream's window rows for them; returns the rows inserted."""
    client.insert("events", raw_rows(events), column_names=list(RAW_EVENT_COLUMNS))
    rows = 0
    for table in stream_emissions(events, families):
        client.insert_arrow("window_aggregates", table)
        rows += table.num_rows
    return rows
