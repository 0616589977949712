"""Which events a bucket's windows already hold: 64-bit event keys grouped by event-time slot.

The raw table ``events`` is a ReplacingMergeTree on (tenant, timestamp, id): an event produced
twice (a gateway retry, a replay) is one row. The windows must count it once too, so
`flows.windowing.WindowLogic` drops every event whose key it already holds (`SlotKeys.add`).

Keys: `event_keys` hashes (tenant, timestamp, id) with polars' ``hash_rows`` and a fixed seed
(stable across processes of one polars version, as `flows.distinct_counts` assumes),
one vectorised call per micro-batch. Two different events collide only if they fall into the
same slot *and* share a 64-bit key: for ``n`` events held in one slot the probability that any
two collide is below n² / 2⁶⁵ (birthday bound): 3·10⁻⁸ for a million events in a slot (a 10 s
slot at 100,000 events/s), 7·10⁻⁹ for half a million. A collision undercounts by one event.

Slots: keys are kept per event-time slot (the finest slide of the window families, 10 s by
default), so a slot is forgotten as a whole when the watermark passes the end of the last window
its events belong to plus the allowed lateness: exactly when those windows are purged. A
duplicate that arrives later than that is late for every one of its windows (it goes to
``late_events``, never into a window).

Layout: each slot holds a few sorted ``uint64`` runs (a binary-counter merge keeps O(log n) runs
and copies each key O(log n) times over its life), optionally with a ``uint32`` value per key.
Lookups are ``searchsorted`` per run; runs are never modified, only replaced by merged copies,
so `SlotKeys.state` hands the recovery snapshot the same arrays without copying them. Memory:
8 bytes a key (12 with values) plus a few arrays per slot; see flows/README.md for the figure
measured with ``tracemalloc``.
"""

from collections.abc import Iterable

import numpy as np
import polars as pl

_SEED = 0x5EED_D1D5
MISSING = np.uint32(0xFFFF_FFFF)
"""`SlotKeys.values` for a key not held (above every value a caller stores)."""

_KEY_SCHEMA = pl.Schema({"tenant": pl.String(), "ts": pl.Int64(), "id": pl.String()})
Run = tuple[np.ndarray, np.ndarray | None]  # sorted uint64 keys, their uint32 values (or None)


def event_keys(frame: pl.DataFrame) -> np.ndarray:
    """The 64-bit key of each event of ``frame`` (columns ``tenant``, ``ts`` in epoch ms, ``id``).

    The columns are cast to one set of types first: ``hash_rows`` depends on them, and keys of
    events read back from the warehouse must equal those of the same events off the topic.
    """
    columns = frame.select("tenant", "ts", "id")
    if columns.schema != _KEY_SCHEMA:
        columns = columns.cast(_KEY_SCHEMA)
    return columns.hash_rows(seed=_SEED).to_numpy()


def _by_slot(slots: np.ndarray) -> list[tuple[int, np.ndarray | None]]:
    """(slot, positions) for every slot in ``slots``; positions None: all of them."""
    if not len(slots):
        return []
    lo, hi = int(slots.min()), int(slots.max())
    if lo == hi:
        return [(lo, None)]
    order = np.argsort(slots, kind="stable")
    ordered = slots[order]
    cuts = (np.flatnonzero(np.diff(ordered)) + 1).tolist()
    return [(int(ordered[a]), order[a:b]) for a, b in zip([0, *cuts], [*cuts, len(ordered)], strict=True)]


def _find(runs: list[Run], keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of ``keys`` the runs hold, and the value of each held key (0 in runs without values)."""
    found = np.zeros(len(keys), bool)
    values = np.full(len(keys), MISSING, np.uint32)
    for run_keys, run_values in runs:
        pos = np.searchsorted(run_keys, keys)
        np.minimum(pos, len(run_keys) - 1, out=pos)
        hit = run_keys[pos] == keys
        found |= hit
        values[hit] = 0 if run_values is None else run_values[pos[hit]]
    return found, values


def _merge(a: Run, b: Run) -> Run:
    """Two sorted runs with disjoint keys as one (new arrays: the inputs may be in a snapshot)."""
    at = np.searchsorted(a[0], b[0])
    keys = np.insert(a[0], at, b[0])
    values = None if a[1] is None or b[1] is None else np.insert(a[1], at, b[1])
    return keys, values


class SlotKeys:
    """Distinct 64-bit keys per slot (``slot`` = slot start, epoch ms), with an optional value each."""

    __slots__ = ("_slots", "slot_ms")

    def __init__(self, slot_ms: int, state: dict[int, tuple[Run, ...]] | None = None) -> None:
        self.slot_ms = slot_ms
        self._slots: dict[int, list[Run]] = {s: list(runs) for s, runs in (state or {}).items()}

    def slots_of(self, ts: np.ndarray) -> np.ndarray:
        """The slot (start, epoch ms) of each event time."""
        return ts // self.slot_ms * self.slot_ms

    def add(self, ts: np.ndarray, keys: np.ndarray, value: int | None = None) -> np.ndarray:
        """Add the keys of events at ``ts``; return which inputs are new (the first of equal keys
        in the call and not held before). New keys get ``value`` (None: no values are kept)."""
        new = np.zeros(len(keys), bool)
        for slot, where in _by_slot(self.slots_of(ts)):
            mine = keys if where is None else keys[where]
            distinct, first = np.unique(mine, return_index=True)  # sorted: ready to be a run
            runs = self._slots.setdefault(slot, [])
            held, _ = _find(runs, distinct)
            fresh = ~held
            if not fresh.any():
                continue
            marks = np.zeros(len(mine), bool)
            marks[first[fresh]] = True
            if where is None:
                new = marks
            else:
                new[where] = marks
            added = distinct[fresh]
            runs.append((added, None if value is None else np.full(len(added), value, np.uint32)))
            while len(runs) > 1 and len(runs[-2][0]) <= 2 * len(runs[-1][0]):
                last = runs.pop()
                runs[-1] = _merge(runs[-1], last)
        return new

    def values(self, ts: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """The value held for each key (0 for keys added without one); `MISSING` if not held."""
        out = np.full(len(keys), MISSING, np.uint32)
        for slot, where in _by_slot(self.slots_of(ts)):
            runs = self._slots.get(slot)
            if not runs:
                continue
            _, found = _find(runs, keys if where is None else keys[where])
            if where is None:
                out = found
            else:
                out[where] = found
        return out

    def drop(self, slots: Iterable[int]) -> None:
        """Forget ``slots``."""
        for slot in slots:
            self._slots.pop(slot, None)

    def slots(self) -> list[int]:
        return list(self._slots)

    def __len__(self) -> int:
        return sum(len(keys) for runs in self._slots.values() for keys, _ in runs)

    @property
    def nbytes(self) -> int:
        """Bytes of the key and value arrays."""
        return sum(k.nbytes + (0 if v is None else v.nbytes) for runs in self._slots.values() for k, v in runs)

    def state(self) -> dict[int, tuple[Run, ...]]:
        """An immutable picture for the recovery snapshot (the runs are never modified)."""
        return {slot: tuple(runs) for slot, runs in self._slots.items()}
