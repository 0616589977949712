"""The columnar path gives exactly the messages and refusals of the general path, on generated tables."""

import time

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.traffic.import_files import event_table
from eventpulse.config.events import EventLimits
from eventpulse.events.submitted import SubmittedEventParser
from eventpulse.events.validation import EventValidator
from eventpulse.imports.columnar import ColumnarEncoder
from eventpulse.imports.rows import Encoded, RowEncoder
from tests.support.examples import examples

NOW = 1_796_000_000_000
LIMITS = EventLimits(max_name_chars=12, max_id_chars=16, max_data_keys=6, max_data_depth=3, max_event_bytes=600)

_ODD_NAMES = [" ", "", 'a"b', "a\\b", "\x01x", "x\x85", "é", "\u3000", "\u3000a", "a" * 13, "a" * 12, "\x7f"]
_names = st.one_of(st.sampled_from(["click", "view", "u-1", "Ωmega", "x y"] * 3 + _ODD_NAMES), st.text(max_size=14))
_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 12.0, 1e15, 1e16, 1e-4, 1e-5, 2.5e-7, 123456.789, -3.5, 1e14 + 0.5]),
)
_timestamps = st.one_of(
    st.integers(NOW - 86400_000, NOW),
    st.integers(NOW - 40 * 86400_000, NOW + 600_000),
    st.sampled_from([NOW, -1, 0, NOW - 30 * 86400_000, NOW - 30 * 86400_000 - 1, NOW + 300_000, NOW + 300_001]),
)
_COLUMNS = {
    "type": (pa.string(), _names),
    "source": (pa.string(), _names),
    "timestamp": (pa.int64(), _timestamps),
    "id": (pa.string(), _names),
    "schema_version": (pa.int32(), st.sampled_from([1, 1, 2, 0])),
    "user_id": (pa.string(), _names),
    "data.user_id": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "latency_ms": (pa.float64(), _floats),
    "count": (pa.int16(), st.integers(-(2**15), 2**15 - 1)),
    "ratio": (pa.float32(), st.floats(width=32)),
    "ok": (pa.bool_(), st.booleans()),
    "note": (pa.string(), st.text(max_size=8)),
    "tags": (pa.list_(pa.int64()), st.lists(st.integers(0, 9), max_size=3)),
    "tenant": (pa.string(), _names),  # not the tenant: a data field like any other
}
_DATA = pa.struct(
    [("user_id", pa.string()), ("meta", pa.struct([("a", pa.float64()), ("b", pa.string())])), ("n", pa.int64())]
)
_data = st.fixed_dictionaries(
    {
        "user_id": st.none() | _names,
        "meta": st.none() | st.fixed_dictionaries({"a": st.none() | _floats, "b": st.none() | _names}),
        "n": st.none() | st.integers(-5, 5),
    }
)


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(1, 12))
    names = ["type", "source", "timestamp", *draw(st.lists(st.sampled_from(sorted(_COLUMNS)), max_size=6))]
    columns: dict[str, pa.Array] = {}
    for name in dict.fromkeys(names):
        kind, values = _COLUMNS[name]
        nullable = st.none() | values if name not in ("type", "source", "timestamp") and draw(st.booleans()) else values
        columns[name] = pa.array(draw(st.lists(nullable, min_size=rows, max_size=rows)), kind)
    if draw(st.booleans()):
        columns["data"] = pa.array(draw(st.lists(st.none() | _data, min_size=rows, max_size=rows)), _DATA)
    order = draw(st.permutations(list(columns)))
    return pa.table({name: columns[name] for name in order})


def _encoders(tenant: str = "acme") -> tuple[RowEncoder, ColumnarEncoder]:
    rows = RowEncoder(SubmittedEventParser(EventValidator(LIMITS)), tenant, LIMITS.max_event_bytes)
    return rows, ColumnarEncoder(rows)


def _outcome(encoded: Encoded) -> tuple[list, list]:
    messages = sorted(zip(encoded.keys, encoded.values, strict=True))
    refused = sorted((row, why.reason, why.field, why.detail) for row, why, _ in encoded.rejected)
    return messages, refused


@settings(max_examples=examples(600), deadline=None)
@given(table=tables(), first=st.integers(0, 10**6), tenant=st.sampled_from(["acme", 'te"nant', " ", "é"]))
def test_the_columnar_path_agrees_with_the_general_one(table: pa.Table, first: int, tenant: str) -> None:
    rows, columnar = _encoders(tenant)
    assert _outcome(columnar.encode_table(table, first, "f1", NOW)) == _outcome(
        rows.encode_table(table, first, "f1", NOW)
    )


def test_common_tables_take_the_columnar_path_whole() -> None:
    """Generated flat and nested tables: every row is settled column by column, none by the general path."""
    now = time.time_ns() // 1_000_000
    columnar = ColumnarEncoder(RowEncoder(SubmittedEventParser(EventValidator(EventLimits())), "acme", 1 << 16))
    for shape in ("flat", "nested"):
        table = event_table(2000, now, shape=shape)  # type: ignore[arg-type]
        _, _, unsure = columnar._encode(table, 0, "f1", now)
        assert not unsure.any()
