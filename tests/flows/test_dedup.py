"""`flows.dedup`: the event keys and the per-slot key sets the windows deduplicate with."""

import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.dedup import MISSING, SlotKeys, event_keys
from tests.support.examples import examples

SLOT = 10_000


def _frame(rows: list[tuple[str, int, str]], tenant_type: type[pl.DataType] = pl.String) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"tenant": tenant_type, "ts": pl.Int64, "id": pl.String}, orient="row")


def test_event_keys_identify_tenant_timestamp_and_id() -> None:
    rows = [("acme", 1000, "a"), ("acme", 1000, "a"), ("acme", 1001, "a"), ("bravo", 1000, "a"), ("acme", 1000, "b")]
    keys = event_keys(_frame(rows))
    assert keys.dtype == np.uint64
    assert keys[0] == keys[1]
    assert len(set(keys[1:].tolist())) == 4
    # Events read back from the warehouse may come with other column types: same keys.
    assert np.array_equal(event_keys(_frame(rows, pl.Categorical)), keys)


@pytest.mark.integration  # starts a Python subprocess
def test_event_keys_are_the_same_in_another_process() -> None:
    """Keys are in recovery snapshots and compared with keys of events read from the warehouse."""
    code = (
        "import polars as pl; from flows.dedup import event_keys;"
        "print(event_keys(pl.DataFrame({'tenant': ['acme'], 'ts': [1767225600000], 'id': ['e-1']})).tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    here = event_keys(_frame([("acme", 1767225600000, "e-1")])).tolist()
    assert out.strip() == str(here)


def test_add_reports_first_occurrences_within_and_across_calls() -> None:
    keys = SlotKeys(SLOT)
    ts = np.array([5, 5, 12_000, 5, 12_000], np.int64)
    k = np.array([1, 2, 1, 1, 1], np.uint64)  # key 1 in two slots: two different events
    assert keys.add(ts, k).tolist() == [True, True, True, False, False]
    assert len(keys) == 3
    assert keys.add(np.array([7, 12_001], np.int64), np.array([2, 3], np.uint64)).tolist() == [False, True]
    assert sorted(keys.slots()) == [0, 10_000]


def test_values_keep_the_first_value_of_a_key() -> None:
    keys = SlotKeys(SLOT)
    keys.add(np.array([1, 2], np.int64), np.array([10, 11], np.uint64), value=0)
    keys.add(np.array([1, 3], np.int64), np.array([10, 12], np.uint64), value=1)  # 10 is known: keeps 0
    got = keys.values(np.array([1, 2, 3, 4, 20_000], np.int64), np.array([10, 11, 12, 13, 10], np.uint64))
    assert got.tolist() == [0, 0, 1, int(MISSING), int(MISSING)]


def test_drop_forgets_whole_slots() -> None:
    keys = SlotKeys(SLOT)
    keys.add(np.array([1, 10_001], np.int64), np.array([5, 5], np.uint64))
    keys.drop([0])
    assert keys.slots() == [10_000]
    assert keys.add(np.array([2], np.int64), np.array([5], np.uint64)).tolist() == [True]


def test_snapshots_are_never_modified_and_restore_the_same_set() -> None:
    rng = np.random.default_rng(3)
    keys = SlotKeys(SLOT)
    snapshots = []
    added: list[np.ndarray] = []
    for _ in range(40):
        batch = rng.integers(0, 2**63, 300, dtype=np.uint64)
        keys.add(np.zeros(300, np.int64), batch)
        added.append(batch)
        state = keys.state()
        snapshots.append((state, {s: tuple(k.copy() for k, _ in runs) for s, runs in state.items()}))
    for state, copy in snapshots:  # later merges made new arrays, the snapshot's are untouched
        assert all(np.array_equal(k, c) for s in state for (k, _), c in zip(state[s], copy[s], strict=True))
    restored = SlotKeys(SLOT, snapshots[-1][0])
    assert len(restored) == 40 * 300
    assert not restored.add(np.zeros(300, np.int64), added[7]).any()
    assert len(keys._slots[0]) <= 12  # runs stay O(log n): sizes at least double going back


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 40_000), st.integers(0, 30)), max_size=50),
        min_size=1,
        max_size=20,
    )
)
def test_matches_a_python_set(batches: list[list[tuple[int, int]]]) -> None:
    """Against the obvious reference: a set of (slot, key) pairs."""
    keys = SlotKeys(SLOT)
    reference: set[tuple[int, int]] = set()
    for batch in batches:
        ts = np.array([t for t, _ in batch], np.int64)
        k = np.array([key for _, key in batch], np.uint64)
        expected = []
        for t, key in batch:
            pair = (t // SLOT, key)
            expected.append(pair not in reference)
            reference.add(pair)
        assert keys.add(ts, k).tolist() == expected
    assert len(keys) == len(reference)
