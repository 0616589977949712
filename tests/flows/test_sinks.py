"""The warehouse sink's insert thread: coalescing, flush on snapshot, delay bound (real warehouse)."""

import time

import pyarrow as pa
import pytest

from eventpulse.events.arrow import DEAD_LETTER_SCHEMA
from flows.sinks import WarehouseSink

pytestmark = pytest.mark.integration


def _rows(first: int, n: int) -> tuple[pa.Table, str]:
    rows = [
        {
            "id": f"t:0:{i}",
            "tenant": "acme",
            "stage": "flow",
            "reason": "malformed_json",
            "field": "",
            "detail": "",
            "payload": "{",
            "topic": "t",
            "topic_partition": 0,
            "topic_offset": i,
            "received_at": 1_767_225_600_000 + i,
        }
        for i in range(first, first + n)
    ]
    return pa.Table.from_pylist(rows, schema=DEAD_LETTER_SCHEMA), f"t:0:{first}-{first + n - 1}"


def _count(client) -> int:
    return client.query("SELECT count() FROM dead_letters").result_rows[0][0]


def _parts(client) -> int:
    return client.query(
        "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'dead_letters'"
    ).result_rows[0][0]


def test_held_rows_go_in_as_one_insert_at_the_snapshot(warehouse, warehouse_client) -> None:
    writes: list[int] = []
    sink = WarehouseSink(
        warehouse,
        "dead_letters",
        lambda item: item,
        min_rows=1_000,
        max_delay_s=30,
        max_pending=4,
        after_write=lambda items, rows: writes.append(rows),
    )
    part = sink.build_part("step", WarehouseSink.PART, None)
    try:
        for first in range(0, 50, 10):
            part.write_batch([_rows(first, 10)])
        time.sleep(0.5)
        assert _count(warehouse_client) == 0, "rows below min_rows are held until the delay or a snapshot"
        part.snapshot()
        assert _count(warehouse_client) == 50
        assert writes == [50]
        assert _parts(warehouse_client) == 1
    finally:
        part.close()


def test_rows_go_in_once_min_rows_are_together(warehouse, warehouse_client) -> None:
    sink = WarehouseSink(warehouse, "dead_letters", lambda item: item, min_rows=20, max_delay_s=30, max_pending=4)
    part = sink.build_part("step", WarehouseSink.PART, None)
    try:
        part.write_batch([_rows(0, 10)])
        part.write_batch([_rows(10, 15)])
        deadline = time.monotonic() + 10
        while _count(warehouse_client) < 25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count(warehouse_client) == 25
    finally:
        part.close()


def test_held_rows_go_in_after_the_delay_without_a_snapshot(warehouse, warehouse_client) -> None:
    sink = WarehouseSink(warehouse, "dead_letters", lambda item: item, min_rows=10_000, max_delay_s=0.3)
    part = sink.build_part("step", WarehouseSink.PART, None)
    try:
        started = time.monotonic()
        part.write_batch([_rows(0, 5)])
        while _count(warehouse_client) < 5 and time.monotonic() - started < 10:
            time.sleep(0.05)
        assert _count(warehouse_client) == 5
        assert time.monotonic() - started >= 0.3
    finally:
        part.close()


def test_close_writes_what_is_held(warehouse, warehouse_client) -> None:
    sink = WarehouseSink(warehouse, "dead_letters", lambda item: item, min_rows=10_000, max_delay_s=60)
    part = sink.build_part("step", WarehouseSink.PART, None)
    part.write_batch([_rows(0, 7)])
    part.close()
    assert _count(warehouse_client) == 7


def test_write_blocks_while_max_pending_rows_wait(warehouse, warehouse_client) -> None:
    """Backpressure counts rows: a batch that would pass ``max_pending_rows`` waits for the insert."""
    sink = WarehouseSink(
        warehouse, "dead_letters", lambda item: item, min_rows=10_000, max_delay_s=0.5, max_pending_rows=15
    )
    part = sink.build_part("step", WarehouseSink.PART, None)
    try:
        part.write_batch([_rows(0, 10)])
        started = time.monotonic()
        part.write_batch([_rows(10, 10)])  # 20 > 15 rows: returns once the first 10 are written
        assert time.monotonic() - started >= 0.4
        assert _count(warehouse_client) >= 10
        part.snapshot()
        assert _count(warehouse_client) == 20
    finally:
        part.close()
