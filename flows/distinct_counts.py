"""Exact distinct counts per group of one window, kept up to date as events arrive.

A window's distinct users per (tenant, type, source) and per tenant used to be recomputed at
every emission from all the (window, group, user) rows seen so far: a ``n_unique`` over up to
millions of rows each second, the emission's main cost. Here each window keeps a hash set of the
(group, user) pairs it has seen and a count per group that grows when a batch brings a pair the
set does not hold, so an emission only reads the counts.

Pairs are 64-bit keys: the value's hash (`eventpulse.aggregation.distinct.value_hash`, the same
as the batch SQL's, so the hashes written as the window's ``user_hashes`` state merge with the
batch's) mixed with the group id. The counts are exact unless
two different pairs of one window share a key; for a million distinct pairs in a window that
happens with a probability below 3e-8 (birthday bound, n² / 2⁶⁵).

The keys also go, batch by batch, into an append-only list of arrays: a snapshot is that list
(the arrays are never changed), so a snapshot copies no set.
"""

import numpy as np
import polars as pl

from eventpulse.aggregation.distinct import value_hashes as _shared_hashes

_MIX = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: spreads group ids over all 64 bits
_COMPACT_CHUNKS = 64


def value_hashes(values: pl.Series) -> np.ndarray:
    """A stable 64-bit hash of each value (``uint64``)."""
    return _shared_hashes(values)


def pair_keys(hashes: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The (group, value) keys of values with ``hashes`` in ``groups``."""
    return hashes ^ (groups.astype(np.uint64) * _MIX)


class DistinctCounts:
    """Distinct (group, value) pairs of one window and the count per group."""

    __slots__ = ("_chunks", "_groups", "_seen", "counts")

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []  # (keys, groups) as they became known
        self.counts = np.zeros(0, dtype=np.uint64)

    def add(self, keys: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
        """Add pairs (``keys[i]`` of group ``groups[i]``); repeated pairs count once.

        Returns which inputs were not known before this call: only those can be new to a coarser
        grouping of the same window (a pair already seen here was seen there too).
        """
        if len(self.counts) < n_groups:
            self.counts = np.concatenate([self.counts, np.zeros(n_groups - len(self.counts), np.uint64)])
        seen = self._seen
        unknown = np.fromiter((k not in seen for k in keys.tolist()), dtype=bool, count=len(keys))
        if not unknown.any():
            return unknown
        new, first = np.unique(keys[unknown], return_index=True)
        groups = groups[unknown][first]
        seen.update(new.tolist())
        self.counts += np.bincount(groups, minlength=len(self.counts)).astype(np.uint64)
        self._chunks.append((new, groups))
        if len(self._chunks) > _COMPACT_CHUNKS:
            self._chunks = [
                (np.concatenate([k for k, _ in self._chunks]), np.concatenate([g for _, g in self._chunks]))
            ]
        return unknown

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(groups, value hashes)`` of every distinct pair (each pair once, in no order)."""
        if not self._chunks:
            return np.zeros(0, np.int64), np.zeros(0, np.uint64)
        keys = np.concatenate([k for k, _ in self._chunks])
        groups = np.concatenate([g for _, g in self._chunks])
        return groups, keys ^ (groups.astype(np.uint64) * _MIX)

    def state(self) -> tuple[tuple[tuple[np.ndarray, np.ndarray], ...], np.ndarray]:
        """An immutable picture (the key chunks are never modified)."""
        return tuple(self._chunks), self.counts.copy()

    @classmethod
    def restore(cls, state: tuple[tuple[tuple[np.ndarray, np.ndarray], ...], np.ndarray]) -> "DistinctCounts":
        chunks, counts = state
        out = cls()
        out._chunks = list(chunks)
        for keys, _ in chunks:
            out._seen.update(keys.tolist())
        out.counts = counts.copy()
        return out
