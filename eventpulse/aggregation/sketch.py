"""A mergeable quantile sketch with bounded relative error, in columnar form (DDSketch).

DDSketch (Masson, Rim, Lee, VLDB 2019; Datadog's sketch) puts a positive value ``x`` in bucket
``i = ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)`` and answers a quantile with the
bucket's representative ``2 * gamma**i / (gamma + 1)``. Every value of bucket ``i`` lies in
``(gamma**(i-1), gamma**i]``, so the answer is within a relative error ``a`` of the exact value
*of the same rank*: the error is in value, not in rank (unlike KLL). Sketches merge by adding
bucket counts, which is what makes window state mergeable and snapshot-friendly.

Here a sketch is not an object but rows ``(group keys..., bucket, n)`` of a polars frame: a
micro-batch is bucketed with one vectorised ``log`` and merged with a ``group_by`` sum, which is
~15x faster than adding values one by one to the ``ddsketch`` package's objects (measured here:
1.6 M adds/s in Python vs ~27 M values/s bucketed with numpy).

Rank rule: the ``q`` quantile of ``n`` values is the value at 0-based rank
``min(floor(q * n), n - 1)``, exactly ClickHouse's ``quantileExact`` (verified in chDB for
n = 1..101), so stream and batch pick the same order statistic and differ only by the sketch's
value error. Values ``<= MIN_POSITIVE`` (latency 0) go to a zero bucket answered as 0.
"""

import math

import numpy as np
import polars as pl

from eventpulse.aggregation.spec import QUANTILE_RELATIVE_ERROR

RELATIVE_ACCURACY = QUANTILE_RELATIVE_ERROR
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LN_GAMMA = math.log(GAMMA)
MIN_POSITIVE = 1e-9
ZERO_BUCKET = -(2**31) + 1


def bucket_expr(column: str) -> pl.Expr:
    """The sketch bucket (Int32) of each non-null value of ``column``."""
    value = pl.col(column)
    index = (value.log() / _LN_GAMMA).ceil()
    return pl.when(value <= MIN_POSITIVE).then(ZERO_BUCKET).otherwise(index).cast(pl.Int32)


def bucket_value_expr(bucket: pl.Expr) -> pl.Expr:
    """The representative value of a bucket (the sketch's answer for any rank inside it)."""
    value = 2.0 * (bucket.cast(pl.Float64) * _LN_GAMMA).exp() / (GAMMA + 1.0)
    return pl.when(bucket == ZERO_BUCKET).then(0.0).otherwise(value)


def bucket_value(bucket: int) -> float:
    """`bucket_value_expr` for one bucket (tests, debugging)."""
    return 0.0 if bucket == ZERO_BUCKET else 2.0 * math.exp(bucket * _LN_GAMMA) / (GAMMA + 1.0)


def quantiles(buckets: pl.DataFrame, keys: list[str], levels: dict[str, float]) -> pl.DataFrame:
    """Quantiles per group of a sketch frame ``keys + [bucket, n]``; one column per ``levels`` name.

    Vectorised: sort by group and bucket, one global running count, then for each group and level
    a binary search for the first bucket whose running count passes the rank.
    """
    ordered = buckets.sort([*keys, "bucket"])
    if ordered.height == 0:
        return ordered.select(keys).with_columns([pl.lit(None, pl.Float64).alias(name) for name in levels])
    run = ordered.select(pl.struct(keys).rle_id().alias("g"))["g"].to_numpy()
    n = ordered["n"].to_numpy().astype(np.float64)
    bucket = ordered["bucket"].to_numpy()
    cum = np.cumsum(n)
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    ends = np.r_[starts[1:], len(run)] - 1
    base = cum[starts] - n[starts]
    total = cum[ends] - base
    out = ordered[starts].select(keys)
    columns = {}
    for name, q in levels.items():
        rank = np.minimum(np.floor(q * total), total - 1)  # ClickHouse quantileExact's rank rule
        index = np.searchsorted(cum, base + rank, side="right")
        columns[name] = bucket[index]
    return out.with_columns([bucket_value_expr(pl.Series(name, v)).alias(name) for name, v in columns.items()])
