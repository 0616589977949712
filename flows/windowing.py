"""Event-time windows in one Bytewax stateful operator over micro-batches.

The window state is split by tenant into ``key_buckets`` keys (so ``-w N`` spreads it over
workers); every source batch is routed to *every* bucket (possibly with no events) so each bucket
sees every partition's progress and computes the same per-partition watermark
(`flows.watermarks`). Bytewax's own ``EventClock`` is not used: its watermark is per worker.

Per bucket, `WindowLogic`:

* adds each micro-batch to a `WindowStore` (columnar, spec-driven), after setting aside events
  whose window is already past its allowed lateness (``late_events``; never dropped silently);
  events for a window that is final but within the lateness update it (a new final version);
* every ``provisional_interval_s`` emits provisional rows (``is_final=0``) for open windows that
  changed, and final rows (``is_final=1``) for windows the watermark has passed;
* forgets a window once the watermark is past its end plus the allowed lateness;
* at the end of input (``tail=False``) closes everything.

Each event counts once, as in the raw table (ReplacingMergeTree on (tenant, timestamp, id)): the
keys of the events the bucket holds are kept per event-time slot (`flows.dedup.SlotKeys`), an event
whose key is held is dropped (``duplicates_dropped``), and a slot is forgotten when the watermark
passes the end of the last window its events belong to plus the allowed lateness, when those windows
are purged (a duplicate later than that is late for all its windows: ``late_events``). Off with
``EVENTPULSE_STREAM_DEDUP=false``.

A bucket that did not get its state from a snapshot seeds each window it first touches from the raw
events already in the warehouse (`flows.seeding`), if a previous process can have written to it: if
the window starts before both this logic's start time + the allowed future clock skew and the
largest event time in the raw table at start (read once, from part metadata). One query per call
for all such windows. The seeded events go into the window's state; their keys, with the number of
the query that first read them, go into a second `SlotKeys`: an event off the topic is then left
out of exactly the seeded windows whose query already read it (the raw sink of this very process
may have written it before this step saw it, so a seed can hold events of this run too). That makes
the result independent of the order of inserts and reads. Off with
``EVENTPULSE_STREAM_SEED_FROM_WAREHOUSE=false``.

Bytewax builds the logic with the resume state only; the bucket's name comes from the state or, on a
fresh start, from the first `Slice` (the router names each one), and labels ``watermark_delay_ms``.

Version scheme: every emission of a bucket carries one version, ``max(previous + 1, now in µs)``;
the previous version is in the snapshot, and a key always lives in the same bucket, so versions
of a window row only grow, also across restarts (as long as the clock does not step back by more
than the time between two emissions). Batch recomputations use versions above
``BATCH_VERSION_BASE`` (2**62), far above any timestamp in µs, so they win.
"""

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
from bytewax.operators import StatefulBatchLogic

from eventpulse.aggregation.spec import WINDOW_ROW_COLUMNS, WindowSpec
from flows.decode import DecodedBatch, Progress
from flows.dedup import SlotKeys, event_keys
from flows.metrics import PipelineMetrics
from flows.seeding import SeedReader
from flows.watermarks import MAX_WATERMARK, PartitionWatermarks
from flows.window_state import Window, WindowStore

AGGREGATE_COLUMNS = WINDOW_ROW_COLUMNS
BOOKKEEPING_COLUMNS = ("is_final", "origin", "version", "emitted_at")
_LATE_SOURCES = {
    "tenant": "tenant",
    "id": "id",
    "ts": "timestamp",
    "type": "type",
    "source": "source",
    "user_id": "user_id",
    "latency_ms": "latency_ms",
    "is_error": "is_error",
    "window_seconds": "window_seconds",
    "slide_seconds": "slide_seconds",
    "wstart": "window_start",
    "wend": "window_end",
    "watermark": "watermark",
    "lateness_ms": "lateness_ms",
    "partition": "topic_partition",
    "offset": "topic_offset",
}
"""Working column -> ``late_events`` column, in table order."""
LATE_COLUMNS = tuple(_LATE_SOURCES.values())
_FRESHNESS_SAMPLE = 512


@dataclass(slots=True)
class Slice:
    """The part of one decoded batch that belongs to one bucket, plus every partition's progress."""

    progress: list[Progress]
    events: pl.DataFrame
    bucket: str = ""  # the bucket it was routed to (names a logic built without state)


@dataclass(slots=True)
class Emission:
    """What a bucket emits: window rows (one version) and late events."""

    bucket: str
    version: int
    rows: pa.Table | list  # window_aggregates rows (empty list: none)
    late_rows: pa.Table | list  # late_events rows (empty list: none)
    event_ts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    broker_ts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    incarnations: str = ""  # late rows only: the topic incarnation of each partition they came from


@dataclass(frozen=True)
class WindowConfig:
    """What `WindowLogic` needs from the settings."""

    families: tuple[WindowSpec, ...]
    partitions: tuple[int, ...]
    bound_ms: int
    lateness_ms: int
    idle_timeout_s: float
    interval_s: float
    snapshot_windows: bool = True
    key_buckets: int = 1
    dedup: bool = True
    future_skew_ms: int = 0  # how far ahead of its clock a previous process accepted event times


_TIME_COLUMNS = ("timestamp", "window_start", "window_end", "watermark", "emitted_at")


def _arrow(frame: pl.DataFrame) -> pa.Table:
    """``frame`` as the Arrow table the sink inserts: epoch-ms columns as ``DateTime64(3)``."""
    times = [c for c in _TIME_COLUMNS if c in frame.columns]
    return frame.with_columns(pl.col(times).cast(pl.Datetime("ms", "UTC"))).to_arrow()


class Router:
    """Splits a decoded batch into one `Slice` per bucket (tenant hash, stable across processes)."""

    def __init__(self, buckets: int) -> None:
        self._n = buckets
        self._names = [f"b{i:03d}" for i in range(buckets)]
        self._memo: dict[str, int] = {}

    def bucket_of(self, tenant: str) -> int:
        b = self._memo.get(tenant)
        if b is None:
            b = self._memo[tenant] = zlib.crc32(tenant.encode()) % self._n
        return b

    def route(self, batch: DecodedBatch) -> list[tuple[str, Slice]]:
        events = batch.events
        if self._n == 1:
            return [(self._names[0], Slice(batch.progress, events, self._names[0]))]
        parts: dict[int, pl.DataFrame] = {}
        if events.height:
            mapping = {t: self.bucket_of(t) for t in events["tenant"].unique().to_list()}
            if len(set(mapping.values())) == 1:
                parts = {next(iter(mapping.values())): events}
            else:
                tagged = events.with_columns(_b=pl.col("tenant").replace_strict(mapping, return_dtype=pl.Int32))
                parts = {k[0]: f.drop("_b") for k, f in tagged.partition_by("_b", as_dict=True).items()}
        empty = events.clear()
        return [(name, Slice(batch.progress, parts.get(i, empty), name)) for i, name in enumerate(self._names)]


def bucket_number(name: str) -> int:
    """The index of a bucket named by `Router` (``b003`` -> 3; "" -> 0)."""
    return int(name[1:]) if name else 0


class WindowLogic(StatefulBatchLogic[Slice, Emission, dict]):
    """Windows of one bucket. See the module docstring.

    ``bucket`` may be None: the name is then taken from the state or the first slice. ``seeder``
    reads raw events back from the warehouse; it is used only when ``state`` is None.
    """

    def __init__(
        self,
        bucket: str | None,
        config: WindowConfig,
        metrics: PipelineMetrics,
        state: dict | None,
        seeder: SeedReader | None = None,
    ) -> None:
        self._cfg, self._metrics = config, metrics
        self._store = WindowStore(config.families)
        fresh = state is None
        state = state or {}
        self._bucket: str | None = bucket if bucket is not None else state.get("bucket")
        self._slot_ms = slot_ms = min(f.slide_seconds for f in config.families) * 1000
        self._seen = SlotKeys(slot_ms, state.get("seen")) if config.dedup else None
        self._seed_keys = SlotKeys(slot_ms, state.get("seed_keys"))  # key -> number of the query that read it
        self._seeded: dict[Window, int] = dict(state.get("seeded", {}))  # window -> its seeding query
        self._seed_seq: int = state.get("seed_seq", 0)
        self._seeder = seeder if fresh else None
        self._horizon = MAX_WATERMARK  # windows starting before it are seeded
        if self._seeder is not None:
            horizon = self._seed_horizon(self._seeder)
            if horizon is None:
                self._seeder = None
            else:
                self._horizon = horizon
        self._marks = PartitionWatermarks(
            config.partitions, config.bound_ms, config.idle_timeout_s, state.get("watermarks")
        )
        if state.get("store"):
            self._store.restore(state["store"])
        self._known: dict[tuple[int, int], int] = dict(state.get("known", {}))  # window -> end (ms)
        self._final: set[tuple[int, int]] = set(state.get("final", ()))
        self._dirty: set[tuple[int, int]] = set(state.get("dirty", ()))
        self._version: int = state.get("version", 0)
        self._fresh: list[tuple[np.ndarray, np.ndarray]] = []  # sampled (event time, broker time)
        self._next = datetime.now(UTC) + timedelta(seconds=config.interval_s)

    # -- Bytewax callbacks ---------------------------------------------------------------------

    def on_batch(self, values: list[Slice]) -> tuple[list[Emission], bool]:
        if self._bucket is None and values:
            self._bucket = values[0].bucket
        for piece in values:
            for part in piece.progress:
                self._marks.observe(part.partition, part.max_ts)
        # All pieces of one call meet the same watermark (the one before this call), so they are
        # added as one batch: the per-batch costs are paid once per call, not once per partition.
        frames = [piece.events for piece in values if piece.events.height]
        late = self._add(pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]) if frames else []
        if frames:
            now_ms = time.time_ns() // 1_000_000
            latencies = [
                now_ms - part.consumed_at_ms for piece in values if piece.events.height for part in piece.progress
            ]
            self._metrics.observe("processing_latency_ms", latencies)
        self._marks.advance()
        if late:
            late_rows = pa.concat_tables(late)
            self._metrics.inc("late_events", late_rows.num_rows)
            # Offsets name a message only within one topic incarnation: the late rows' insert token
            # names the incarnations too, so a recreated topic's late rows never collide with older ones.
            incarnations = ",".join(sorted({f"{p.partition}@{p.incarnation}" for v in values for p in v.progress}))
            return [Emission(self._bucket or "", self._version, [], late_rows, incarnations=incarnations)], self.RETAIN
        return [], self.RETAIN

    def on_notify(self) -> tuple[list[Emission], bool]:
        started = time.perf_counter()
        self._next = datetime.now(UTC) + timedelta(seconds=self._cfg.interval_s)
        emitted = self._emit(self._marks.advance())
        self._metrics.observe("emit_ms", [(time.perf_counter() - started) * 1000])
        return emitted, self.RETAIN

    def on_eof(self) -> tuple[list[Emission], bool]:
        # End of input (tail=False): every window is final. The stored watermark and the state are
        # left as they are, so a later run resuming from the snapshot can go on.
        return self._emit(MAX_WATERMARK, purge=False), self.RETAIN

    def notify_at(self) -> datetime | None:
        return self._next

    def snapshot(self) -> dict | None:  # type: ignore[override]  # None: windows not snapshotted (negative control)
        if not self._cfg.snapshot_windows:
            return None
        return {
            "store": self._store.state(),
            "watermarks": self._marks.state(),
            "known": dict(self._known),
            "final": frozenset(self._final),
            "dirty": frozenset(self._dirty),
            "version": self._version,
            "bucket": self._bucket,
            "seen": self._seen.state() if self._seen is not None else {},
            "seed_keys": self._seed_keys.state(),
            "seeded": dict(self._seeded),
            "seed_seq": self._seed_seq,
        }

    # -- work ----------------------------------------------------------------------------------

    def _seed_horizon(self, seeder: SeedReader) -> int | None:
        """Windows starting at or after this (epoch ms) cannot hold events of an earlier process; None:
        none can (empty raw table). A previous process accepted event times up to its clock + the
        allowed future skew, and its clock was behind this start; the raw table's largest event time
        read now bounds them too (the raw sink of this process has not written yet, and if it has,
        the bound is only looser)."""
        latest = seeder.max_timestamp()
        if latest is None:
            return None
        return min(time.time_ns() // 1_000_000 + self._cfg.future_skew_ms, latest + 1)

    def _add(self, events: pl.DataFrame) -> list[pa.Table]:
        keys = None
        if self._seen is not None or self._seeder is not None or self._seeded:
            keys = event_keys(events)
        if self._seen is not None:
            assert keys is not None
            new = self._seen.add(events["ts"].to_numpy(), keys)
            dropped = len(new) - int(np.count_nonzero(new))
            if dropped:
                self._metrics.inc("duplicates_dropped", dropped)
                events, keys = events.filter(pl.Series(new)), keys[new]
                if not events.height:
                    return []
        batch = self._store.prepare(events)
        watermark, lateness = self._marks.watermark, self._cfg.lateness_ms
        touched = self._store.touched(batch)
        if self._seeder is not None:
            self._seed(
                [
                    (fam, wstart, wend)
                    for fam, wstart, wend, _ in touched
                    if wstart < self._horizon and (fam, wstart) not in self._known and wend + lateness > watermark
                ]
            )
        seen_by = None  # the seeding query that first read each event (MISSING: none)
        if self._seeded and any((fam, wstart) in self._seeded for fam, wstart, _, _ in touched):
            assert keys is not None
            seen_by = self._seed_keys.values(batch.ts, keys[batch.order])
        late: list[pa.Table] = []
        within = 0
        for fam, wstart, wend, part in touched:
            if wend + lateness <= watermark:  # past its allowed lateness: the events go to late_events
                late.append(self._late_rows(batch.events(part), fam, wstart, wend, watermark))
                continue
            window = (fam, wstart)
            keep = None
            query = self._seeded.get(window) if seen_by is not None else None
            if query is not None:
                assert seen_by is not None
                keep = seen_by[part] > query  # not read by this window's seeding query
                if keep.all():
                    keep = None
            if wend <= watermark:
                within += part.stop - part.start if keep is None else int(np.count_nonzero(keep))
            if keep is None or keep.any():
                self._store.add(batch, window, part, keep)
            self._known[window] = wend
            self._dirty.add(window)
        if within:
            self._metrics.inc("late_updates", within)
        step = max(1, events.height // _FRESHNESS_SAMPLE)
        self._fresh.append((batch.ts[::step], events["broker_ts"].to_numpy()[batch.order[::step]]))
        return late

    def _seed(self, windows: list[tuple[int, int, int]]) -> None:
        """Add to each of ``windows`` (new to this bucket) the raw events the warehouse already holds
        for it, in one query; remember their keys with the query's number."""
        if not windows:
            return
        assert self._seeder is not None
        started = time.perf_counter()
        query = self._seed_seq
        self._seed_seq += 1
        ranges = _merged([(wstart, min(wend, self._horizon)) for _, wstart, wend in windows])
        bucket = bucket_number(self._bucket or "")
        frame = self._seeder.events(bucket, self._cfg.key_buckets, ranges)
        wanted = {(fam, wstart): wend for fam, wstart, wend in windows}
        for window, wend in wanted.items():
            self._seeded[window] = query
            self._known[window] = wend
            self._dirty.add(window)
        if frame.height:
            self._seed_keys.add(frame["ts"].to_numpy(), event_keys(frame), query)
            batch = self._store.prepare(frame)
            for fam, wstart, _, part in self._store.touched(batch):
                if (fam, wstart) in wanted:
                    self._store.add(batch, (fam, wstart), part)
        self._metrics.inc("seeded_windows", len(windows))
        self._metrics.inc("seeded_events", frame.height)
        self._metrics.observe("seed_ms", [(time.perf_counter() - started) * 1000])

    def _late_rows(self, events: pl.DataFrame, fam: int, wstart: int, wend: int, watermark: int) -> pa.Table:
        family = self._cfg.families[fam]
        frame = events.with_columns(
            window_seconds=pl.lit(family.seconds, pl.UInt32),
            slide_seconds=pl.lit(family.slide_seconds, pl.UInt32),
            wstart=pl.lit(wstart, pl.Int64),
            wend=pl.lit(wend, pl.Int64),
            watermark=pl.lit(watermark, pl.Int64),
            lateness_ms=pl.lit(watermark - wend, pl.Int64),
        )
        return _arrow(frame.select(list(_LATE_SOURCES)).rename(_LATE_SOURCES))

    def _emit(self, watermark: int, purge: bool = True) -> list[Emission]:
        now_ms = time.time_ns() // 1_000_000
        lag = self._marks.lag_ms(now_ms)
        if lag is not None:
            self._metrics.gauge("watermark_delay_ms", lag, self._bucket or "")
        closing = {
            w for w, end in self._known.items() if end <= watermark and (w in self._dirty or w not in self._final)
        }
        provisional = {w for w in self._dirty if self._known[w] > watermark}
        out: list[Emission] = []
        chosen = closing | provisional
        if chosen:
            self._version = max(self._version + 1, time.time_ns() // 1000)
            rows = self._store.rows(sorted(chosen)).with_columns(
                is_final=(pl.col("window_end") <= watermark).cast(pl.UInt8),
                origin=pl.lit("stream"),
                version=pl.lit(self._version, pl.UInt64),
                emitted_at=pl.lit(now_ms, pl.Int64),
            )
            fresh_ts = np.concatenate([t for t, _ in self._fresh]) if self._fresh else np.empty(0, np.int64)
            fresh_broker = np.concatenate([b for _, b in self._fresh]) if self._fresh else np.empty(0, np.int64)
            out.append(
                Emission(
                    self._bucket or "",
                    self._version,
                    _arrow(rows),
                    [],
                    fresh_ts,
                    fresh_broker,
                )
            )
            self._final |= closing
            self._dirty.clear()
            self._fresh = []
        if purge:
            self._purge(watermark)
        return out

    def _purge(self, watermark: int) -> None:
        lateness = self._cfg.lateness_ms
        gone = [w for w, end in self._known.items() if end + lateness <= watermark]
        for w in gone:
            del self._known[w]
            self._final.discard(w)
            self._dirty.discard(w)
            self._seeded.pop(w, None)
        self._store.drop(gone)
        for keys in (self._seen, self._seed_keys):
            if keys is not None:
                keys.drop([s for s in keys.slots() if self._slot_expiry(s) + lateness <= watermark])

    def _slot_expiry(self, slot: int) -> int:
        """The end of the last window an event of ``slot`` can belong to (epoch ms)."""
        last = slot + self._slot_ms - 1
        return max(
            last // (f.slide_seconds * 1000) * f.slide_seconds * 1000 + f.seconds * 1000 for f in self._cfg.families
        )


def _merged(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching [start, end) ranges joined; empty ones left out; sorted."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
