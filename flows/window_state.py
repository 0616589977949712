"""The streaming side of the aggregation spec: dense, mergeable state per open window.

`WindowStore` keeps, for every open window of every window family, partial aggregates per
(tenant, type, source) group, derived from `spec.METRICS` (no second list of metrics). Groups get
dense integer ids as they appear, so a window's state is a handful of numpy arrays indexed by group
id:

* scalar partials (``COUNT``, ``COUNT_IF``, ``COUNT_NOT_NULL``, ``SUM``, ``MIN``, ``MAX``): one array
  each, updated with ``bincount`` / ``minimum.at`` / ``maximum.at``;
* exact distinct counts (``DISTINCT``): `distinct.DistinctCounts` of the (group, user hash) pairs,
  updated as pairs arrive; an emission reads the pairs once per window and answers every grouping
  set (and the ``user_hashes`` state) with one sort;
* DDSketch bucket counts (``QUANTILE``): one dense (group x bucket) array per window
  (`sketch.DenseSketches`);
* ratios (``RATIO``) computed when rows are produced.

Events are never copied once per window: a micro-batch is prepared once (`prepare`: group ids,
numpy columns, sketch buckets, distinct keys), sorted by event time, and every window the batch
touches (`touched`) reads its events as a slice of that order. The coarser grouping sets ((tenant,
type), (tenant, source), (tenant)) are derived from the group arrays at emission: sums, minima and
sketches merge, distinct users are the distinct (key, hash) pairs. Rows carry the mergeable states
of `spec.STATES` besides the final values. Nothing here knows about Kafka, Bytewax or watermarks:
the Hypothesis tests drive it (through `flows.windowing.WindowLogic`) against the batch SQL.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from eventpulse.aggregation import sketch
from eventpulse.aggregation.spec import (
    ALL,
    GROUPINGS,
    METRICS,
    STATES,
    WINDOW_ROW_COLUMNS,
    Kind,
    Metric,
    WindowSpec,
    state_columns,
)
from flows.distinct_counts import DistinctCounts, pair_keys, value_hashes

DIMENSIONS = ["tenant", "type", "source"]
_FULL = GROUPINGS[0]
"""The finest grouping set (a group id per (tenant, type, source)); the others are derived from it."""

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Int64(),
    "tenant": pl.String(),
    "type": pl.String(),
    "source": pl.String(),
    "user_id": pl.String(),
    "latency_ms": pl.Float64(),
    "is_error": pl.UInt8(),
}
"""Columns every micro-batch frame carries (more columns are allowed and ignored)."""

_SCALAR_KINDS = (Kind.COUNT, Kind.COUNT_IF, Kind.COUNT_NOT_NULL, Kind.SUM, Kind.MIN, Kind.MAX)
_INITIAL = {Kind.MIN: np.inf, Kind.MAX: -np.inf}
_DTYPE = {Kind.COUNT: np.uint64, Kind.COUNT_IF: np.uint64, Kind.COUNT_NOT_NULL: np.uint64}

_LOOKUP_ROWS = 4096
"""Up to this many events, `WindowStore._group_ids` looks groups up one by one instead of joining."""

Window = tuple[int, int]
"""(family index, window start in epoch ms)."""


@dataclass(slots=True)
class PreparedBatch:
    """A micro-batch in the form every window reads: numpy columns in event-time order."""

    frame: pl.DataFrame  # the micro-batch as it came
    order: np.ndarray  # positions in ``frame``, by event time
    ts: np.ndarray  # event times in that order
    gid: np.ndarray  # group id of each event (same order)
    tid: np.ndarray  # tenant id of each event
    values: dict[str, np.ndarray]  # metric input column -> values (NaN for null), same order
    present: dict[str, np.ndarray]  # column -> not null (and, for distinct columns, not empty)
    buckets: dict[str, np.ndarray]  # quantiled column -> sketch bucket
    keys: dict[str, tuple[np.ndarray, np.ndarray]]  # distinct column -> (group keys, tenant keys)
    unknown: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    """(distinct column, tumbling family) -> which events' (group, value) pairs their window did not
    know before this batch; filled by `WindowStore.add`, read by the families it tiles."""

    def events(self, part: slice) -> pl.DataFrame:
        """The frame's rows of ``part`` (a slice of the event-time order)."""
        return self.frame[self.order[part]]


class _WindowState:
    """Partial aggregates of one window, arrays indexed by group id."""

    __slots__ = ("distinct", "scalars", "sketches")

    def __init__(self) -> None:
        self.scalars: dict[str, np.ndarray] = {}
        self.distinct: dict[str, tuple[DistinctCounts, DistinctCounts]] = {}
        self.sketches: dict[str, sketch.DenseSketches] = {}

    def state(self) -> dict:
        return {
            "scalars": {name: values.copy() for name, values in self.scalars.items()},
            "distinct": {c: (g.state(), t.state()) for c, (g, t) in self.distinct.items()},
            "sketches": {c: dense.copy() for c, dense in self.sketches.items()},
        }

    @classmethod
    def restore(cls, state: dict) -> "_WindowState":
        out = cls()
        out.scalars = {name: values.copy() for name, values in state["scalars"].items()}
        out.distinct = {
            c: (DistinctCounts.restore(g), DistinctCounts.restore(t)) for c, (g, t) in state["distinct"].items()
        }
        out.sketches = {c: dense.copy() for c, dense in state["sketches"].items()}
        return out


class WindowStore:
    """Partial aggregates of open windows for ``families`` (index = the ``fam`` column)."""

    def __init__(self, families: Sequence[WindowSpec], metrics: Sequence[Metric] = METRICS) -> None:
        self.families = tuple(families)
        self.metrics = tuple(metrics)
        self._scalar = [m for m in self.metrics if m.kind in _SCALAR_KINDS]
        self._distinct = sorted({m.source for m in self.metrics if m.kind is Kind.DISTINCT})
        self._sketched = sorted({m.source for m in self.metrics if m.kind is Kind.QUANTILE})
        self._inputs = sorted({c for m in self._scalar if (c := m.column)} | set(self._sketched))
        self._parents = [self._parent(i) for i in range(len(self.families))]
        self._windows: dict[Window, _WindowState] = {}
        self._groups: dict[tuple[str, str, str], int] = {}  # (tenant, type, source) -> gid
        self._tenants: dict[str, int] = {}  # tenant -> tid
        self._tenant_of = np.zeros(0, dtype=np.int64)  # gid -> tid
        self._keys: dict[tuple[str, ...], dict[tuple[str, ...], int]] = {d: {} for d in GROUPINGS if d != _FULL}
        self._key_of: dict[tuple[str, ...], np.ndarray] = {d: np.zeros(0, np.int64) for d in self._keys}
        self._names_cache: dict[tuple[str, ...], pl.DataFrame] = {}

    def _parent(self, i: int) -> int | None:
        """The longest earlier tumbling family whose windows tile family ``i``'s windows, if any.

        A pair already known to the tile holding an event is known to every window containing
        that tile (it saw the same events), so such a window only needs to look up the pairs its
        tile did not know: most lookups of the 60 s and 5 min windows are saved.
        """
        fam = self.families[i]
        tiles = [
            j
            for j, p in enumerate(self.families[:i])
            if p.is_tumbling and p.seconds < fam.seconds and fam.slide_seconds % p.seconds == 0
        ]
        return max(tiles, key=lambda j: self.families[j].seconds, default=None)

    # -- input ---------------------------------------------------------------------------------

    def prepare(self, events: pl.DataFrame) -> PreparedBatch:
        """Everything the windows need from a micro-batch frame (see `EVENT_SCHEMA`), computed once.

        Only numpy columns are put in event-time order; the frame itself is not reordered.
        """
        ts = events["ts"].to_numpy()
        order = np.argsort(ts, kind="stable")
        gid = self._group_ids(events)[order]
        tid = self._tenant_of[gid]
        values: dict[str, np.ndarray] = {}
        present: dict[str, np.ndarray] = {}
        buckets: dict[str, np.ndarray] = {}
        keys: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # Arrow and numpy rather than polars expressions here: each polars call costs ~0.1 ms,
        # as much as the work itself for the few hundred events of a steady-state batch.
        for c in self._inputs:  # numeric inputs: null is NaN (no valid input is NaN)
            values[c] = events[c].to_numpy().astype(np.float64, copy=False)[order]
            present[c] = ~np.isnan(values[c])
        for c in self._sketched:
            buckets[c] = sketch.buckets(values[c])
        for c in self._distinct:
            column = events[c]
            filled = pc.fill_null(pc.not_equal(column.to_arrow(), ""), False)
            present[c] = filled.to_numpy(zero_copy_only=False)[order]
            hashes = value_hashes(column)[order]
            keys[c] = (pair_keys(hashes, gid), pair_keys(hashes, tid))
        return PreparedBatch(events, order, ts[order], gid, tid, values, present, buckets, keys)

    def touched(self, batch: PreparedBatch) -> list[tuple[int, int, int, slice]]:
        """Every window holding events of ``batch``: (family, start, end, slice of the batch order)."""
        out: list[tuple[int, int, int, slice]] = []
        ts = batch.ts
        if not len(ts):
            return out
        for i, fam in enumerate(self.families):
            slide, length = fam.slide_seconds * 1000, fam.seconds * 1000
            lasts = np.unique(ts // slide * slide)
            starts = np.unique(np.concatenate([lasts - k * slide for k in range(fam.seconds // fam.slide_seconds)]))
            bounds = np.searchsorted(ts, np.stack([starts, starts + length]))
            for start, lo, hi in zip(starts.tolist(), bounds[0].tolist(), bounds[1].tolist(), strict=True):
                if hi > lo:
                    out.append((i, start, start + length, slice(lo, hi)))
        return out

    def add(self, batch: PreparedBatch, window: Window, part: slice, keep: np.ndarray | None = None) -> None:
        """Add the events ``part`` (a slice of ``batch``'s order) to ``window``; with ``keep`` (a mask
        over ``part``) only those it marks (a window seeded from the warehouse skips the events it
        already read there)."""
        state = self._windows.get(window)
        if state is None:
            state = self._windows[window] = _WindowState()
        if keep is not None:
            part = np.arange(part.start, part.stop)[keep]  # positions, same uses
        n_groups = len(self._groups)
        gid = batch.gid[part]
        inputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # column -> (groups, values) where present
        for m in self._scalar:
            current = state.scalars.get(m.name)
            if current is None or len(current) < n_groups:
                grown = np.full(n_groups, _INITIAL.get(m.kind, 0), dtype=_DTYPE.get(m.kind, np.float64))
                if current is not None:
                    grown[: len(current)] = current
                current = state.scalars[m.name] = grown
            if m.kind is Kind.COUNT:
                current += np.bincount(gid, minlength=n_groups).astype(np.uint64)
                continue
            column = m.source
            if column not in inputs:
                present = batch.present[column][part]
                inputs[column] = (gid[present], batch.values[column][part][present])
            groups, values = inputs[column]
            if m.kind is Kind.COUNT_IF:
                current += np.bincount(groups[values == 1], minlength=n_groups).astype(np.uint64)
            elif m.kind is Kind.COUNT_NOT_NULL:
                current += np.bincount(groups, minlength=n_groups).astype(np.uint64)
            elif m.kind is Kind.SUM:
                current += np.bincount(groups, weights=values, minlength=n_groups)
            elif m.kind is Kind.MIN:
                np.minimum.at(current, groups, values)
            else:
                np.maximum.at(current, groups, values)
        for c in self._distinct:
            counters = state.distinct.get(c)
            if counters is None:
                counters = state.distinct[c] = (DistinctCounts(), DistinctCounts())
            group_keys = batch.keys[c][0]
            check = batch.present[c][part]
            parent = self._parents[window[0]]
            if parent is not None and (c, parent) in batch.unknown:
                check = check & batch.unknown[(c, parent)][part]
            new_group = np.zeros(len(gid), dtype=bool)
            new_group[check] = counters[0].add(group_keys[part][check], gid[check], n_groups)
            if self.families[window[0]].is_tumbling:
                masks = batch.unknown.setdefault((c, window[0]), np.ones(len(batch.ts), bool))
                masks[part] = new_group
        for c in self._sketched:
            dense = state.sketches.get(c)
            if dense is None:
                dense = state.sketches[c] = sketch.DenseSketches()
            present = batch.present[c][part]
            dense.add(gid[present], batch.buckets[c][part][present], np.ones(int(present.sum()), np.uint32))

    def _group_ids(self, events: pl.DataFrame) -> np.ndarray:
        """The group id of every event (new groups get the next ids).

        Small batches (the few hundred events of a steady-state micro-batch) look each event up in
        a dictionary: a join's fixed cost (~0.4 ms) is far more than the lookups there; large ones
        join with the batch's distinct groups, ~8x cheaper per event than the lookups at 20,000.
        """
        if events.height <= _LOOKUP_ROWS:
            combos = list(zip(*(events[d].to_list() for d in DIMENSIONS), strict=True))
            self._register(set(combos))
            get = self._groups.__getitem__
            return np.fromiter(map(get, combos), dtype=np.int64, count=len(combos))
        distinct = events.select(DIMENSIONS).unique()
        self._register(distinct.rows())
        mapping = distinct.with_columns(gid=pl.Series([self._groups[c] for c in distinct.iter_rows()], dtype=pl.Int64))
        return (
            events.select(DIMENSIONS).join(mapping, on=DIMENSIONS, how="left", maintain_order="left")["gid"].to_numpy()
        )

    def _register(self, combos: Iterable[tuple[str, str, str]]) -> None:
        """Give ids to groups (and tenants, and the keys of the coarser grouping sets) not seen before."""
        fresh = [c for c in combos if c not in self._groups]
        for combo in fresh:
            self._groups[combo] = len(self._groups)
            self._tenants.setdefault(combo[0], len(self._tenants))
            for dims, keys in self._keys.items():
                keys.setdefault(_partial(combo, dims), len(keys))
        if fresh:
            self._index_groups()

    def _index_groups(self) -> None:
        """The gid -> tenant id and gid -> coarser key arrays (groups in gid order)."""
        groups = sorted(self._groups, key=self._groups.__getitem__)
        self._tenant_of = np.array([self._tenants[c[0]] for c in groups], dtype=np.int64)
        for dims, keys in self._keys.items():
            self._key_of[dims] = np.array([keys[_partial(c, dims)] for c in groups], dtype=np.int64)

    # -- state ---------------------------------------------------------------------------------

    def drop(self, windows: Iterable[Window]) -> None:
        """Forget ``windows``."""
        for window in windows:
            self._windows.pop(window, None)

    def state(self) -> dict:
        """An immutable picture of the state (for snapshots)."""
        return {
            "windows": {w: s.state() for w, s in self._windows.items()},
            "groups": dict(self._groups),
            "tenants": dict(self._tenants),
        }

    def restore(self, state: dict) -> None:
        self._windows = {w: _WindowState.restore(s) for w, s in state["windows"].items()}
        self._groups = dict(state["groups"])
        self._tenants = dict(state["tenants"])
        self._keys = {d: {} for d in self._keys}
        for combo in sorted(self._groups, key=self._groups.__getitem__):
            for dims, keys in self._keys.items():
                keys.setdefault(_partial(combo, dims), len(keys))
        self._index_groups()

    # -- output --------------------------------------------------------------------------------

    def rows(self, windows: Iterable[Window]) -> pl.DataFrame:
        """``window_aggregates`` rows (without version bookkeeping) for ``windows``.

        Each window answers with numpy columns; one frame per grouping is built from all of them,
        and the dimension names are gathered by key (no join), so an emission costs a few array
        operations per window.
        """
        windows = [w for w in windows if w in self._windows]
        frames = []
        pairs = {w: self._pairs(w) for w in windows}
        for dims in GROUPINGS:
            parts = [self._window_columns(w, dims, pairs[w]) for w in windows]
            parts = [p for p in parts if len(p["key"])]
            if not parts:
                continue
            columns = {name: _concat([p[name] for p in parts]) for name in parts[0]}
            keys = columns.pop("key")
            frame = pl.DataFrame([_series(name, values) for name, values in columns.items()])
            names = self._names(dims)[keys]
            frames.append(pl.concat([frame, names], how="horizontal"))
        if not frames:
            return pl.DataFrame()
        frame = pl.concat(frames, how="vertical")
        for m in self.metrics:
            if m.kind is Kind.RATIO:
                assert m.numerator and m.denominator, f"ratio {m.name} names its two metrics"
                num, den = pl.col(m.numerator), pl.col(m.denominator)
                frame = frame.with_columns(
                    pl.when(den == 0).then(0.0).otherwise(num.cast(pl.Float64) / den.cast(pl.Float64)).alias(m.name)
                )
        states = [c for c in state_columns() if c in frame.columns]
        return frame.select(*WINDOW_ROW_COLUMNS, *(m.name for m in self.metrics), *states)

    def _pairs(self, window: Window) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per distinct column, the window's distinct (group id, value hash) pairs, by hash: sorted once
        here, each grouping set then only needs a stable sort by its key (`_distinct_lists`)."""
        state = self._windows[window]
        out = {}
        for c in self._distinct:
            if c in state.distinct:
                groups, hashes = state.distinct[c][0].pairs()
                order = np.argsort(hashes)
                out[c] = (groups[order], hashes[order])
        return out

    def _window_columns(
        self, window: Window, dims: tuple[str, ...], pairs: dict[str, tuple[np.ndarray, np.ndarray]]
    ) -> dict[str, np.ndarray | pa.Array]:
        """One window's rows for one grouping set as columns (numpy, or Arrow lists for the
        states); ``key`` is the group id (finest set) or the set's key id; NaN stands for null."""
        state = self._windows[window]
        counts = next(state.scalars[m.name] for m in self._scalar if m.kind is Kind.COUNT)
        n = len(counts)
        to_key = None if dims == _FULL else self._key_of[dims][:n]
        n_keys = n if to_key is None else len(self._keys[dims])
        merged: dict[str, np.ndarray] = {}
        for m in self._scalar:
            values = state.scalars[m.name]
            if to_key is None:
                merged[m.name] = values
            elif m.kind in _INITIAL:
                merged[m.name] = np.full(n_keys, _INITIAL[m.kind])
                (np.minimum if m.kind is Kind.MIN else np.maximum).at(merged[m.name], to_key, values)
            else:
                total = np.bincount(to_key, weights=values, minlength=n_keys)
                merged[m.name] = np.rint(total).astype(np.uint64) if m.kind in _DTYPE else total
        holding = np.flatnonzero(merged[next(m.name for m in self._scalar if m.kind is Kind.COUNT)])
        family = self.families[window[0]]
        out: dict[str, np.ndarray | pa.Array] = {
            "key": holding,
            "window_seconds": np.full(len(holding), family.seconds, np.uint32),
            "slide_seconds": np.full(len(holding), family.slide_seconds, np.uint32),
            "window_start": np.full(len(holding), window[1], np.int64),  # epoch ms
            "window_end": np.full(len(holding), window[1] + family.seconds * 1000, np.int64),
        }
        for m in self._scalar:
            values = merged[m.name][holding]
            out[m.name] = np.where(np.isinf(values), np.nan, values) if m.kind in _INITIAL else values
        for c in self._distinct:
            groups, hashes = pairs.get(c, (np.zeros(0, np.int64), np.zeros(0, np.uint64)))
            hash_lists = _distinct_lists(groups if to_key is None else to_key[groups], hashes, n_keys).take(holding)
            distinct = pc.list_value_length(hash_lists).to_numpy(zero_copy_only=False).astype(np.uint64)
            for m in self.metrics:
                if m.kind is Kind.DISTINCT and m.column == c:
                    out[m.name] = distinct
            for st in STATES:
                if st.kind == "hashes" and st.column == c:
                    out[st.name] = hash_lists
        for c in self._sketched:
            levels = {
                m.name: q
                for m in self.metrics
                if m.kind is Kind.QUANTILE and m.column == c and (q := m.quantile) is not None
            }
            dense = state.sketches.get(c)
            full = {name: np.full(n_keys, np.nan) for name in levels}
            lengths = np.zeros(n_keys, np.int64)
            buckets, bucket_counts = np.zeros(0, np.int32), np.zeros(0, np.uint64)
            if dense is not None:
                per_key = dense.merged(to_key)
                keys, answers = dense.quantiles(levels, to_key, per_key)
                for name in levels:
                    full[name][keys] = answers[name]
                keys, offsets, buckets, bucket_counts = dense.states(to_key, per_key)
                lengths[keys] = np.diff(offsets)  # keys ascending: the values are already in key order
            out.update({name: values[holding] for name, values in full.items()})
            offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
            for st in STATES:
                if st.kind == "sketch" and st.column == c:
                    bucket_name, count_name = st.columns
                    out[bucket_name] = pa.ListArray.from_arrays(offsets, buckets).take(holding)
                    out[count_name] = pa.ListArray.from_arrays(offsets, bucket_counts).take(holding)
        return out

    def _names(self, dims: tuple[str, ...]) -> pl.DataFrame:
        """The dimension columns of every key of grouping set ``dims`` (``ALL`` where it does not
        group), row = its id."""
        keys = list(self._groups) if dims == _FULL else list(self._keys[dims])
        cached = self._names_cache.get(dims)
        if cached is None or len(cached) != len(keys):
            present = ["tenant", *dims]
            cached = pl.DataFrame(keys, schema=present, orient="row").with_columns(
                [pl.lit(ALL).alias(d) for d in DIMENSIONS if d not in present]
            )
            self._names_cache[dims] = cached.select(DIMENSIONS)
        return self._names_cache[dims]


def _partial(combo: tuple[str, str, str], dims: tuple[str, ...]) -> tuple[str, ...]:
    """The key of group ``combo`` (tenant, type, source) in grouping set ``dims``."""
    return (combo[0], *(combo[DIMENSIONS.index(d)] for d in dims))


def _distinct_lists(keys: np.ndarray, hashes: np.ndarray, n_keys: int) -> pa.ListArray:
    """Per key ``0..n_keys-1``, its sorted distinct hashes (pairs may repeat across merged groups).

    ``hashes`` come sorted, so a stable sort by key (a radix sort for integers) orders by (key, hash).
    """
    order = np.argsort(keys, kind="stable")
    keys, hashes = keys[order], hashes[order]
    if len(keys):
        new = np.r_[True, (keys[1:] != keys[:-1]) | (hashes[1:] != hashes[:-1])]
        keys, hashes = keys[new], hashes[new]
    offsets = np.r_[0, np.cumsum(np.bincount(keys, minlength=n_keys))].astype(np.int32)
    return pa.ListArray.from_arrays(offsets, hashes.astype(np.uint64))


def _concat(parts: list) -> np.ndarray | pa.Array:
    return pa.concat_arrays(parts) if isinstance(parts[0], pa.Array) else np.concatenate(parts)


def _series(name: str, values: np.ndarray | pa.Array) -> pl.Series:
    if isinstance(values, pa.Array):
        series = pl.from_arrow(values)
        assert isinstance(series, pl.Series)
        return series.alias(name)
    return pl.Series(name, values, nan_to_null=values.dtype.kind == "f")
