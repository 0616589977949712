"""The dense window sketches answer exactly like the row-form sketch they replace in window state."""

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from eventpulse.aggregation import sketch
from tests.support.examples import examples

LEVELS = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
VALUES = st.one_of(st.just(0.0), st.floats(min_value=1e-3, max_value=1e7))


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 6), VALUES), min_size=1, max_size=40), min_size=1, max_size=4))
def test_dense_sketches_equal_row_sketches(batches: list[list[tuple[int, float]]]) -> None:
    """Values arrive in several batches (the bucket range grows both ways); groups 0-6 map to keys."""
    to_key = np.array([0, 0, 1, 2, 2, 2, 3])
    dense = sketch.DenseSketches()
    for batch in batches:
        frame = pl.DataFrame(batch, schema={"g": pl.Int64, "v": pl.Float64}, orient="row")
        buckets = (
            frame.with_columns(bucket=sketch.buckets(frame["v"].to_numpy())).group_by("g", "bucket").agg(n=pl.len())
        )
        dense.add(buckets["g"].to_numpy(), buckets["bucket"].to_numpy(), buckets["n"].to_numpy())
    rows = pl.DataFrame([v for b in batches for v in b], schema={"g": pl.Int64, "v": pl.Float64}, orient="row")
    rows = rows.with_columns(key=pl.col("g").replace_strict(dict(enumerate(to_key.tolist()))))
    for key_column, mapping in (("g", None), ("key", to_key)):
        expected = sketch.quantiles(
            rows.with_columns(bucket=sketch.buckets(rows["v"].to_numpy()))
            .group_by(key_column, "bucket")
            .agg(n=pl.len()),
            [key_column],
            LEVELS,
        ).sort(key_column)
        keys, values = dense.quantiles(LEVELS, mapping)
        assert keys.tolist() == expected[key_column].to_list()
        for name in LEVELS:
            np.testing.assert_allclose(values[name], expected[name].to_numpy(), rtol=1e-12)


def test_copy_is_independent() -> None:
    dense = sketch.DenseSketches()
    dense.add(np.array([0]), np.array([10]), np.array([1]))
    snapshot = dense.copy()
    dense.add(np.array([0]), np.array([500]), np.array([5]))
    assert snapshot.quantiles({"p50": 0.5})[1]["p50"][0] == sketch.bucket_value(10)
    assert dense.quantiles({"p50": 0.5})[1]["p50"][0] == sketch.bucket_value(500)
