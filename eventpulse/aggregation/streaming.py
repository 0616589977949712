"""The streaming side of the aggregation spec: columnar, mergeable window state.

`WindowStore` keeps, for every open window of every window family, partial aggregates per
(tenant, type, source), derived from `spec.METRICS` (no second list of metrics):

* scalar partials (``COUNT``, ``COUNT_IF``, ``COUNT_NOT_NULL``, ``SUM``, ``MIN``, ``MAX``), merged
  by sum / min / max;
* exact distinct sets (``DISTINCT``) as unique (key, value) rows;
* DDSketch buckets (``QUANTILE``) as (key, bucket, n) rows, one sketch per quantiled column
  (`eventpulse.aggregation.sketch`);
* ratios (``RATIO``) computed when rows are produced.

Micro-batches arrive as polars frames with the raw-event columns (``ts`` in epoch ms, tenant,
type, source, user_id, latency_ms, is_error). `explode` assigns each event to every window of
every family containing it; `add` aggregates the result and appends it; state is compacted
(``group_by`` merge) lazily. `rows` produces ``window_aggregates`` rows for both groupings of
the spec. Nothing here knows about Kafka, Bytewax or watermarks: the Hypothesis tests drive it
directly against the batch SQL.
"""

from collections.abc import Sequence

import numpy as np
import polars as pl

from eventpulse.aggregation import sketch
from eventpulse.aggregation.spec import ALL, GROUPINGS, METRICS, WINDOW_ROW_COLUMNS, Kind, Metric, WindowSpec

WINDOW = ["fam", "wstart"]
KEYS = [*WINDOW, "gid"]
"""State is keyed by window and an integer group id: numeric keys sort and join fast."""
DIMENSIONS = ["tenant", "type", "source"]

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


def _partial(m: Metric) -> pl.Expr:
    col = pl.col(m.column) if m.column else None
    match m.kind:
        case Kind.COUNT:
            expr = pl.len().cast(pl.UInt64)
        case Kind.COUNT_IF:
            expr = (col == 1).sum().cast(pl.UInt64)
        case Kind.COUNT_NOT_NULL:
            expr = col.count().cast(pl.UInt64)
        case Kind.SUM:
            expr = col.cast(pl.Float64).sum()
        case Kind.MIN:
            expr = col.min()
        case Kind.MAX:
            expr = col.max()
        case _:
            raise ValueError(m.kind)
    return expr.alias(m.name)


def _merge(m: Metric) -> pl.Expr:
    col = pl.col(m.name)
    match m.kind:
        case Kind.MIN:
            return col.min()
        case Kind.MAX:
            return col.max()
        case _:
            return col.sum()


def empty_events() -> pl.DataFrame:
    """A micro-batch with no events."""
    return pl.DataFrame(schema=EVENT_SCHEMA)


class WindowStore:
    """Partial aggregates of open windows for ``families`` (index = the ``fam`` column)."""

    def __init__(self, families: Sequence[WindowSpec], metrics: Sequence[Metric] = METRICS) -> None:
        self.families = tuple(families)
        self.metrics = tuple(metrics)
        self._scalar = [m for m in self.metrics if m.kind in _SCALAR_KINDS]
        self._distinct = sorted({m.column for m in self.metrics if m.kind is Kind.DISTINCT})
        self._sketched = sorted({m.column for m in self.metrics if m.kind is Kind.QUANTILE})
        self._frames: dict[str, pl.DataFrame | None] = dict.fromkeys(self._parts(), None)
        self._pending: dict[str, list[pl.DataFrame]] = {name: [] for name in self._parts()}
        self._groups: dict[tuple[str, str, str], int] = {}  # (tenant, type, source) -> gid
        self._tenants: dict[str, int] = {}  # tenant -> tid
        # column -> window (fam, wstart) -> one sketch per gid (dense: see `sketch.DenseSketches`)
        self._sketches: dict[str, dict[tuple[int, int], sketch.DenseSketches]] = {c: {} for c in self._sketched}

    def _group_ids(self, events: pl.DataFrame) -> pl.DataFrame:
        combos = events.select(DIMENSIONS).unique().rows()
        for combo in combos:
            if combo not in self._groups:
                self._groups[combo] = len(self._groups)
                self._tenants.setdefault(combo[0], len(self._tenants))
        mapping = pl.DataFrame(
            [(*c, self._groups[c]) for c in combos],
            schema={"tenant": pl.String, "type": pl.String, "source": pl.String, "gid": pl.UInt32},
            orient="row",
        )
        return events.join(mapping, on=DIMENSIONS, how="left")

    def _dimension_frame(self, dims: tuple[str, ...]) -> pl.DataFrame:
        """``key`` -> dimension columns for one grouping (gid for the full one, tid for tenants)."""
        if dims:
            rows = [(gid, *combo) for combo, gid in self._groups.items()]
            return pl.DataFrame(
                rows,
                schema={"key": pl.UInt32, "tenant": pl.String, "type": pl.String, "source": pl.String},
                orient="row",
            )
        rows = [(tid, tenant) for tenant, tid in self._tenants.items()]
        return pl.DataFrame(rows, schema={"key": pl.UInt32, "tenant": pl.String}, orient="row")

    def _key_expr(self, dims: tuple[str, ...]) -> pl.Expr:
        if dims:
            return pl.col("gid").alias("key")
        to_tenant = {gid: self._tenants[combo[0]] for combo, gid in self._groups.items()}
        return pl.col("gid").replace_strict(to_tenant, return_dtype=pl.UInt32).alias("key")

    def _parts(self) -> list[str]:
        return ["scalar", *(f"distinct:{c}" for c in self._distinct)]

    # -- input ---------------------------------------------------------------------------------

    def explode(self, events: pl.DataFrame) -> pl.DataFrame:
        """One row per (event, window containing it) with ``fam``, ``wstart`` and ``wend`` (ms)."""
        parts = []
        events = self._group_ids(events) if events.height else events.with_columns(gid=pl.lit(None, pl.UInt32))
        for i, fam in enumerate(self.families):
            slide, length = fam.slide_seconds * 1000, fam.seconds * 1000
            hops = fam.seconds // fam.slide_seconds
            frame = events.with_columns(fam=pl.lit(i, pl.UInt8), wstart=pl.col("ts") // slide * slide)
            if hops > 1:
                frame = frame.with_columns(_hop=pl.int_ranges(0, hops, dtype=pl.Int64)).explode("_hop")
                frame = frame.with_columns(wstart=pl.col("wstart") - pl.col("_hop") * slide).drop("_hop")
            parts.append(frame.with_columns(wend=pl.col("wstart") + length))
        return pl.concat(parts, how="vertical") if parts else events

    def add(self, exploded: pl.DataFrame) -> None:
        """Aggregate rows of `explode` (possibly filtered) into the state."""
        if exploded.height == 0:
            return
        exploded = exploded.select([*KEYS, *self._inputs()])
        self._pending["scalar"].append(exploded.group_by(KEYS).agg([_partial(m) for m in self._scalar]))
        for c in self._distinct:
            values = exploded.filter(pl.col(c).is_not_null() & (pl.col(c) != "")).select([*KEYS, c]).unique()
            self._pending[f"distinct:{c}"].append(values)
        for c in self._sketched:
            buckets = (
                exploded.filter(pl.col(c).is_not_null())
                .group_by([*KEYS, sketch.bucket_expr(c).alias("bucket")])
                .agg(n=pl.len().cast(pl.UInt64))
            )
            windows = self._sketches[c]
            for (fam, wstart), part in buckets.partition_by(WINDOW, as_dict=True).items():
                dense = windows.get((fam, wstart))
                if dense is None:
                    dense = windows[(fam, wstart)] = sketch.DenseSketches()
                dense.add(part["gid"].to_numpy(), part["bucket"].to_numpy(), part["n"].to_numpy())

    def _inputs(self) -> list[str]:
        return sorted({m.column for m in self.metrics if m.column})

    # -- state ---------------------------------------------------------------------------------

    def compact(self) -> None:
        """Merge appended partials into one frame per part."""
        for name, pending in self._pending.items():
            if not pending:
                continue
            current = self._frames[name]
            frames = ([current] if current is not None else []) + pending
            merged = pl.concat(frames, how="vertical")
            if name == "scalar":
                merged = merged.group_by(KEYS).agg([_merge(m) for m in self._scalar])
            elif name.startswith("distinct:"):
                merged = merged.unique()
            else:
                merged = merged.group_by([*KEYS, "bucket"]).agg(pl.col("n").sum())
            self._frames[name] = merged
            self._pending[name] = []

    def windows(self) -> pl.DataFrame:
        """Distinct (fam, wstart) present in the state."""
        self.compact()
        frame = self._frames["scalar"]
        return frame.select(WINDOW).unique() if frame is not None else pl.DataFrame(schema=self._window_schema())

    @staticmethod
    def _window_schema() -> dict[str, pl.DataType]:
        return {"fam": pl.UInt8(), "wstart": pl.Int64()}

    def drop(self, keep: pl.Expr) -> None:
        """Keep only state rows for which ``keep`` (over ``fam``/``wstart``) holds."""
        self.compact()
        for name, frame in self._frames.items():
            if frame is not None:
                self._frames[name] = frame.filter(keep)
        for windows in self._sketches.values():
            if not windows:
                continue
            keys = pl.DataFrame(list(windows), schema=self._window_schema(), orient="row")
            for fam, wstart in keys.filter(~keep).iter_rows():
                del windows[(fam, wstart)]

    def state(self) -> dict:
        """An immutable picture of the state (for snapshots)."""
        self.compact()
        sketches = {c: {w: dense.copy() for w, dense in windows.items()} for c, windows in self._sketches.items()}
        return {
            "frames": dict(self._frames),
            "sketches": sketches,
            "groups": dict(self._groups),
            "tenants": dict(self._tenants),
        }

    def restore(self, state: dict) -> None:
        self._frames.update(state["frames"])
        for c, windows in state["sketches"].items():
            self._sketches[c] = {w: dense.copy() for w, dense in windows.items()}
        self._groups.update(state["groups"])
        self._tenants.update(state["tenants"])

    # -- output --------------------------------------------------------------------------------

    def rows(self, windows: pl.DataFrame) -> pl.DataFrame:
        """``window_aggregates`` rows (without version bookkeeping) for ``windows`` (fam, wstart)."""
        self.compact()
        windows = windows.select(pl.col("fam").cast(pl.UInt8), pl.col("wstart").cast(pl.Int64))
        out = [self._grouping_rows(windows, dims) for dims in GROUPINGS]
        frame = (
            pl.concat([f for f in out if f is not None], how="vertical") if any(f is not None for f in out) else None
        )
        if frame is None:
            return pl.DataFrame()
        lengths = {i: f.seconds for i, f in enumerate(self.families)}
        slides = {i: f.slide_seconds for i, f in enumerate(self.families)}
        frame = frame.with_columns(
            window_seconds=pl.col("fam").replace_strict(lengths, return_dtype=pl.UInt32),
            slide_seconds=pl.col("fam").replace_strict(slides, return_dtype=pl.UInt32),
        ).with_columns(window_end=pl.col("wstart") + pl.col("window_seconds").cast(pl.Int64) * 1000)
        for m in self.metrics:
            if m.kind is Kind.RATIO:
                num, den = pl.col(m.numerator), pl.col(m.denominator)
                frame = frame.with_columns(
                    pl.when(den == 0).then(0.0).otherwise(num.cast(pl.Float64) / den.cast(pl.Float64)).alias(m.name)
                )
        return frame.rename({"wstart": "window_start"}).select(*WINDOW_ROW_COLUMNS, *(m.name for m in self.metrics))

    def _quantile_frame(
        self, column: str, windows: pl.DataFrame, levels: dict[str, float], dims: tuple[str, ...]
    ) -> pl.DataFrame:
        """(fam, wstart, key, one column per level) for ``windows``, from the dense sketches."""
        to_key = None
        if not dims:
            to_key = np.zeros(len(self._groups), dtype=np.int64)
            for combo, gid in self._groups.items():
                to_key[gid] = self._tenants[combo[0]]
        parts = []
        sketches = self._sketches[column]
        for fam, wstart in windows.iter_rows():
            dense = sketches.get((fam, wstart))
            if dense is None:
                continue
            keys, values = dense.quantiles(levels, to_key)
            parts.append(
                pl.DataFrame(
                    {"fam": np.full(len(keys), fam), "wstart": np.full(len(keys), wstart), "key": keys, **values},
                    schema={**self._window_schema(), "key": pl.UInt32, **dict.fromkeys(levels, pl.Float64)},
                )
            )
        if not parts:
            schema = {**self._window_schema(), "key": pl.UInt32, **dict.fromkeys(levels, pl.Float64)}
            return pl.DataFrame(schema=schema)
        return pl.concat(parts, how="vertical")

    def _grouping_rows(self, windows: pl.DataFrame, dims: tuple[str, ...]) -> pl.DataFrame | None:
        scalar = self._frames["scalar"]
        if scalar is None:
            return None
        keys = [*WINDOW, "key"]
        key = self._key_expr(dims)

        def select(frame: pl.DataFrame) -> pl.DataFrame:
            return frame.join(windows, on=WINDOW, how="semi").with_columns(key)

        frame = select(scalar).group_by(keys).agg([_merge(m) for m in self._scalar])
        for c in self._distinct:
            names = [m.name for m in self.metrics if m.kind is Kind.DISTINCT and m.column == c]
            values = self._frames[f"distinct:{c}"]
            if values is None:
                frame = frame.with_columns([pl.lit(0, pl.UInt64).alias(n) for n in names])
                continue
            counts = select(values).group_by(keys).agg(pl.col(c).n_unique().cast(pl.UInt64).alias(names[0]))
            frame = frame.join(counts, on=keys, how="left").with_columns(pl.col(names[0]).fill_null(0))
            frame = frame.with_columns([pl.col(names[0]).alias(n) for n in names[1:]])
        for c in self._sketched:
            levels = {m.name: m.quantile for m in self.metrics if m.kind is Kind.QUANTILE and m.column == c}
            frame = frame.join(self._quantile_frame(c, windows, levels, dims), on=keys, how="left")
        frame = frame.join(self._dimension_frame(dims), on="key", how="left")
        if "type" not in dims:
            frame = frame.with_columns(type=pl.lit(ALL))
        if "source" not in dims:
            frame = frame.with_columns(source=pl.lit(ALL))
        return frame.select([*WINDOW, *DIMENSIONS, *(m.name for m in self.metrics if m.kind is not Kind.RATIO)])
