"""`WindowLogic` counts each event once and seeds windows started without state (no broker, no warehouse).

The flows run under Bytewax's ``TestingSource``/``TestingSink``; the warehouse is a `SeedReader` over a
list of events. The end-to-end versions, on the real broker and warehouse, are in
tests/flows/test_exactly_once_windows.py.
"""

import zlib
from collections.abc import Sequence

import bytewax.operators as op
import numpy as np
import polars as pl
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from eventpulse.aggregation.spec import ALL, window_specs
from flows.decode import FRAME_SCHEMA, Progress
from flows.metrics import PipelineMetrics
from flows.seeding import SEED_SCHEMA
from flows.windowing import Emission, Slice, WindowConfig, WindowLogic

T0 = 1_767_225_600_000  # 2026-01-01, a multiple of every window length
FAMILIES = window_specs((10, 60), ((30, 10),))
CONFIG = WindowConfig(FAMILIES, (0,), bound_ms=1000, lateness_ms=20_000, idle_timeout_s=3600, interval_s=3600)

Event = tuple[str, str, int]  # tenant, id, event time (ms)


def _slice(events: Sequence[Event], bucket: str = "b000", partition: int = 0) -> Slice:
    rows = [
        {
            "ts": ts,
            "tenant": tenant,
            "type": "click",
            "source": "web",
            "user_id": f"u{i % 3}",
            "latency_ms": float(i),
            "is_error": 0,
            "id": ident,
            "partition": partition,
            "offset": i,
            "broker_ts": ts,
        }
        for i, (tenant, ident, ts) in enumerate(events)
    ]
    frame = pl.DataFrame(rows, schema=FRAME_SCHEMA)
    return Slice([Progress(partition, 0, 0, max((e[2] for e in events), default=None), 0)], frame, bucket)


class ListSeedReader:
    """A `SeedReader` over events "already in the warehouse"; records the ranges it is asked for."""

    def __init__(self, events: Sequence[Event]) -> None:
        self.stored = list(events)
        self.queries: list[list[tuple[int, int]]] = []

    def max_timestamp(self) -> int | None:
        return max((ts for _, _, ts in self.stored), default=None)

    def events(self, bucket: int, buckets: int, ranges: Sequence[tuple[int, int]]) -> pl.DataFrame:
        self.queries.append(list(ranges))
        picked = [
            e
            for e in self.stored
            if any(s <= e[2] < t for s, t in ranges) and zlib.crc32(e[0].encode()) % buckets == bucket
        ]
        return _slice(picked).events.select(list(SEED_SCHEMA))


def _run(
    items: list[tuple[str, Slice]],
    config: WindowConfig = CONFIG,
    seeder: ListSeedReader | None = None,
    metrics: PipelineMetrics | None = None,
) -> list[Emission]:
    """Run ``items`` (bucket, slice) through the windows step to the end; return the emissions."""
    metrics = metrics or PipelineMetrics(None, 60)
    captured: list[tuple[str, Emission]] = []
    flow = Dataflow("windows_test")
    slices = op.input("in", flow, TestingSource(items))
    emitted = op.stateful_batch("windows", slices, lambda state: WindowLogic(None, config, metrics, state, seeder))
    op.output("out", emitted, TestingSink(captured))
    run_main(flow)
    return [e for _, e in captured]


def _counts(emissions: list[Emission], seconds: int = 10) -> dict[tuple[str, int], int]:
    """Latest event_count per (tenant, window start) of the tenant-wide rows of one tumbling family."""
    latest: dict[tuple[str, int], tuple[int, int]] = {}
    for e in emissions:
        if not len(e.rows):
            continue
        for row in e.rows.to_pylist():
            if (
                row["window_seconds"] != seconds
                or row["slide_seconds"] != seconds
                or (row["type"], row["source"]) != (ALL, ALL)
            ):
                continue
            key = (row["tenant"], int(row["window_start"].timestamp() * 1000))
            if key not in latest or latest[key][0] < row["version"]:
                latest[key] = (row["version"], row["event_count"])
    return {k: n for k, (_, n) in latest.items()}


def _expected(events: Sequence[Event], seconds: int = 10) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for tenant, _, ts in set(events):
        key = (tenant, ts // (seconds * 1000) * seconds * 1000)
        out[key] = out.get(key, 0) + 1
    return out


def test_duplicates_within_and_across_batches_count_once() -> None:
    first = [("acme", f"e{i}", T0 + i * 700) for i in range(20)]
    second = [*first[:8], ("acme", "e-new", T0 + 3_000), *first[3:5]]  # retries, one new event, twice
    metrics = PipelineMetrics(None, 60)
    emissions = _run([("b000", _slice(first + first[:2])), ("b000", _slice(second))], metrics=metrics)
    everything = first + second
    assert _counts(emissions) == _expected(everything)
    assert _counts(emissions, 60) == _expected(everything, 60)
    assert metrics._counters[("duplicates_dropped", "")] == 2 + 8 + 2

    # Negative control: without the dedup every copy counts.
    control = _run([("b000", _slice(first + first[:2])), ("b000", _slice(second))], CONFIG_NO_DEDUP)
    assert sum(_counts(control).values()) == len(first) + 2 + len(second)


CONFIG_NO_DEDUP = WindowConfig(**{**CONFIG.__dict__, "dedup": False})


def test_a_duplicate_after_the_allowed_lateness_is_a_late_event_and_its_slot_is_gone() -> None:
    config = WindowConfig(
        window_specs((10,), ()), (0,), bound_ms=0, lateness_ms=5_000, idle_timeout_s=3600, interval_s=1
    )
    logic = WindowLogic("b000", config, PipelineMetrics(None, 60), None)
    original = ("acme", "x", T0 + 1_000)
    logic.on_batch([_slice([original])])
    logic.on_batch([_slice([original])])  # within the lateness: dropped
    logic.on_batch([_slice([("acme", "later", T0 + 40_000)])])  # watermark past window end + lateness
    emitted, _ = logic.on_notify()
    assert _counts(emitted) == {("acme", T0): 1, ("acme", T0 + 40_000): 1}
    assert logic._seen is not None and T0 not in logic._seen.slots()  # forgotten with its window
    late, _ = logic.on_batch([_slice([original])])
    assert [r["id"] for e in late for r in e.late_rows.to_pylist()] == ["x"]
    assert not any(len(e.rows) for e in late)


def test_a_stateless_start_seeds_the_windows_a_previous_run_wrote() -> None:
    previous = [("acme", f"p{i}", T0 + i * 1_000) for i in range(30)]  # 0-30 s, counted by an earlier run
    # This run: new events in the same windows, a retry of a previous event, and one event its own
    # raw sink already wrote to the warehouse before this step saw it.
    ahead = ("acme", "n-ahead", T0 + 25_500)
    now = [("acme", f"n{i}", T0 + 20_000 + i * 500) for i in range(10)] + [previous[-1], ahead]
    reader = ListSeedReader([*previous, ahead])
    emissions = _run([("b000", _slice(now[:6])), ("b000", _slice(now[6:]))], seeder=reader)
    assert _counts(emissions) == {k: v for k, v in _expected(previous + now).items() if k[1] >= T0 + 20_000}
    assert _counts(emissions, 60) == _expected(previous + now, 60)
    assert len(reader.queries) == 1  # one query for every window the first batch touched, none after
    horizon = T0 + 29_001  # the largest event time in the warehouse + 1
    assert all(end <= horizon for ranges in reader.queries for _, end in ranges)

    # Negative control: no seeding -> the windows count this run's events only.
    control = _run([("b000", _slice(now[:6])), ("b000", _slice(now[6:]))])
    assert _counts(control, 60) == _expected(now, 60)


def test_windows_after_the_warehouse_horizon_are_never_queried() -> None:
    reader = ListSeedReader([("acme", "old", T0)])
    later = [("acme", f"n{i}", T0 + 600_000 + i) for i in range(5)]
    emissions = _run([("b000", _slice(later))], seeder=reader)
    assert reader.queries == []
    assert _counts(emissions) == _expected(later)


def test_seeding_reads_only_the_buckets_tenants() -> None:
    tenants = ["acme", "bravo", "charlie", "delta"]
    buckets = {t: f"b{zlib.crc32(t.encode()) % 2:03d}" for t in tenants}
    assert len(set(buckets.values())) == 2
    previous = [(t, f"p-{t}-{i}", T0 + i * 100) for t in tenants for i in range(5)]
    now = [(t, f"n-{t}", T0 + 4_000) for t in tenants]
    reader = ListSeedReader(previous)
    config = WindowConfig(**{**CONFIG.__dict__, "key_buckets": 2})
    items = [(b, _slice([e for e in now if buckets[e[0]] == b], b)) for b in sorted(set(buckets.values()))]
    assert _counts(_run(items, config, reader)) == _expected(previous + now)


def test_the_watermark_gauge_is_labelled_with_the_bucket() -> None:
    metrics = PipelineMetrics(None, 60)
    items = [("b000", _slice([("acme", "a", T0)], "b000")), ("b001", _slice([("bravo", "b", T0 + 5)], "b001"))]
    emissions = _run(items, metrics=metrics)
    labels = {label for metric, label in metrics._gauges if metric == "watermark_delay_ms"}
    assert labels == {"b000", "b001"}
    assert {e.bucket for e in emissions} == {"b000", "b001"}


def test_a_logic_resumed_from_its_snapshot_keeps_its_keys_and_never_seeds() -> None:
    metrics = PipelineMetrics(None, 60)
    events = [("acme", f"e{i}", T0 + i * 100) for i in range(10)]
    first = WindowLogic(None, CONFIG, metrics, None)
    first.on_batch([_slice(events)])
    state = first.snapshot()
    assert state is not None and state["bucket"] == "b000"
    reader = ListSeedReader(events)
    resumed = WindowLogic(None, CONFIG, metrics, state, reader)
    resumed.on_batch([_slice([*events[:4], ("acme", "e-new", T0 + 50)])])
    assert reader.queries == []
    emitted, _ = resumed.on_eof()
    assert _counts(emitted) == {("acme", T0): 11}
    assert metrics._counters[("duplicates_dropped", "")] == 4


def test_dedup_memory_is_about_8_bytes_a_key() -> None:
    logic = WindowLogic("b000", CONFIG, PipelineMetrics(None, 60), None)
    n = 20_000
    ts = T0 + np.arange(n) // 4
    logic.on_batch([_slice([("acme", f"id-{i}", int(t)) for i, t in enumerate(ts)])])
    assert logic._seen is not None and len(logic._seen) == n
    assert logic._seen.nbytes == 8 * n
