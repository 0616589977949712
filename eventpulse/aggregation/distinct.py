"""The distinct-value state: 64-bit hashes that the stream (Python) and the batch (SQL) compute alike.

A window row keeps the sorted distinct hashes of its users (``user_hashes Array(UInt64)``), so the
distinct users of any union of rows (a day from its minutes, a tenant from its types) is
``length(groupUniqArrayArray(user_hashes))``. The hash is the first 8 bytes of the value's MD5 read
as a little-endian integer: ClickHouse's ``reinterpretAsUInt64(MD5(x))``, and ``hashlib`` here.
Counts are exact unless two different users of one answer share a hash: for a million distinct
users the probability is below 3e-8 (birthday bound, n² / 2⁶⁵), the stated error of every distinct
count read from the states.
"""

import hashlib
from functools import lru_cache

import numpy as np
import polars as pl

DISTINCT_COLLISION_BOUND = 3e-8
"""Probability that a distinct count over a million values is off (by one) because of a hash collision."""


def hash_sql(column: str) -> str:
    """The ClickHouse expression of `value_hash` (``column`` is one of our identifiers, never input)."""
    return f"reinterpretAsUInt64(MD5({column}))"


@lru_cache(maxsize=1 << 20)
def value_hash(value: str) -> int:
    """The 64-bit hash of one value (the same as `hash_sql` gives in ClickHouse)."""
    return int.from_bytes(hashlib.md5(value.encode(), usedforsecurity=False).digest()[:8], "little")


def value_hashes(values: pl.Series) -> np.ndarray:
    """`value_hash` of every value (``uint64``; null gets 0). Each distinct value is hashed once."""
    unique = values.drop_nulls().unique()
    hashed = pl.Series([value_hash(v) for v in unique.to_list()], dtype=pl.UInt64)
    out = values.replace_strict(unique, hashed, default=0, return_dtype=pl.UInt64).fill_null(0)
    return out.to_numpy()
