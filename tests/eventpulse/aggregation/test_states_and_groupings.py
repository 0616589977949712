"""The pieces the stream and the SQL must share: grouping filters, the user hash, the sketch constants."""

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from eventpulse.aggregation import sketch
from eventpulse.aggregation.distinct import hash_sql, value_hash, value_hashes
from eventpulse.aggregation.spec import ALL, GROUPINGS, grouping_filter, state_columns

MIGRATIONS = Path(__file__).resolve().parents[3] / "eventpulse" / "warehouse" / "migrations"


@pytest.mark.parametrize(
    ("dims", "expected"),
    [
        ((), "type = '*' AND source = '*'"),
        (("type",), "type != '*' AND source = '*'"),
        (("source",), "type = '*' AND source != '*'"),
        (("type", "source"), "type != '*' AND source != '*'"),
    ],
)
def test_grouping_filter_selects_exactly_one_set(dims, expected) -> None:
    assert grouping_filter(dims) == expected


def test_every_row_matches_exactly_one_grouping_filter() -> None:
    def matches(row: dict[str, str], dims: tuple[str, ...]) -> bool:
        return all((row[d] != ALL) == (d in dims) for d in ("type", "source"))

    for row in ({"type": t, "source": s} for t in ("click", ALL) for s in ("web", ALL)):
        assert sum(matches(row, dims) for dims in GROUPINGS) == 1
    with pytest.raises(ValueError, match="unknown dimension"):
        grouping_filter(("tenant",))


def test_user_hash_is_clickhouse_md5_prefix() -> None:
    # SELECT reinterpretAsUInt64(MD5('abc')) in chDB 26.9 gives 12704604231530709392.
    assert value_hash("abc") == 12704604231530709392
    assert hash_sql("user_id") == "reinterpretAsUInt64(MD5(user_id))"
    hashes = value_hashes(pl.Series(["abc", None, "abc", "x"]))
    assert hashes.dtype == np.uint64 and hashes[0] == hashes[2] == value_hash("abc") and hashes[1] == 0


def test_the_sql_functions_use_the_stream_sketch_constants() -> None:
    text = (MIGRATIONS / "0101_create_sketch_functions.sql").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    assert f"bucket = {sketch.ZERO_BUCKET}" in body
    assert f"bucket * {sketch._LN_GAMMA!r}" in body
    assert f"({sketch.GAMMA!r} + 1)" in body
    assert re.search(r"floor\(q \* ", body)  # quantileExact's rank rule
    assert f"{sketch._LN_GAMMA!r}" in sketch.bucket_sql("x") and str(sketch.ZERO_BUCKET) in sketch.bucket_sql("x")


def test_state_columns_are_in_the_migration() -> None:
    text = (MIGRATIONS / "0100_add_window_states.sql").read_text()
    for column in state_columns():
        assert f"ADD COLUMN IF NOT EXISTS {column} " in text
