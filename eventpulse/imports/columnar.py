"""The columnar path: a whole table of rows validated and encoded with Arrow compute kernels, not row by row.

It produces, for the rows it accepts, exactly the message the general path (`eventpulse.imports.rows`:
the row as an object, `SubmittedEventParser`, `ValidEvent.to_wire`) produces: the wire JSON is
assembled from its fragments column by column (``{"id":…,"timestamp":…,"type":…,"source":…,
"data":{…},"tenant":…,"received_at":…,"schema_version":1}``), each value formatted as orjson formats
it. The checks only *accept*: a row any of them is not sure of (a name with a quote, a backslash or a
control character, a blank-looking name, a timestamp outside the window, a float in exponent form,
a user id of another type, a message over the size limit…) goes, with every row of a table whose
shape the path does not take (a ``data`` text column, a non-integer timestamp, duplicate keys), to
the general path, which alone decides rejections and their reasons. That both paths give the same
messages is a Hypothesis property test (``tests/eventpulse/imports/test_columnar.py``).

Values inside ``data`` are formatted per Arrow type: strings (quoted, when nothing in them needs
escaping), integers, booleans, finite floats in plain notation (Arrow's shortest round-trip digits
with orjson's ``.0`` for integral values), structs (recursively, a null field left out); any other
type (lists, maps, dates…) value by value with orjson, as the general path does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from eventpulse.events import contract
from eventpulse.events.model import SCHEMA_VERSION
from eventpulse.imports.rows import ENVELOPE, Encoded, RowEncoder, drop_nulls

_FLOAT_PLAIN = (1e-4, 1e15)  # magnitudes both Arrow and orjson write without an exponent
_JSON_UNSAFE = np.zeros(256, dtype=bool)  # bytes orjson escapes in a string: '"', '\\' and C0 controls
_JSON_UNSAFE[[0x22, 0x5C, *range(0x20)]] = True
_CONTROL = np.zeros(256, dtype=bool)  # the bytes of `contract.CONTROL_RANGES` in UTF-8 (C1 below)
_CONTROL[[c for low, high in contract.CONTROL_RANGES for c in range(low, min(high, 0x7F) + 1)]] = True
_C1_LEAD, _C1_RANGE = 0xC2, (0x80, 0x9F)  # U+0080..U+009F is 0xC2 0x80..0x9F
if contract.CONTROL_RANGES != ((0x00, 0x1F), (0x7F, 0x9F)):
    raise RuntimeError("the columnar path's control-character bytes assume CONTROL_RANGES = C0, DEL and C1")
_GRAPHIC = np.zeros(256, dtype=bool)  # printable ASCII but space: a name holding one is not blank
_GRAPHIC[0x21:0x7F] = True


@dataclass(frozen=True, slots=True)
class _Value:
    """A column's JSON texts (null where the field is absent) and the rows the path is not sure of."""

    text: pa.Array
    unsure: np.ndarray  # bool per row
    quote: bool = False  # ``text`` is a string's content: JSON adds the quotes

    def quoted(self) -> pa.Array:
        return pc.binary_join_element_wise('"', self.text, '"', "") if self.quote else self.text


class _Unsupported(Exception):
    """The table's shape is not one the columnar path takes: every row goes to the general path."""


class ColumnarEncoder:
    """Tables to messages column by column; rows it cannot settle go to ``rows`` (the general path)."""

    def __init__(self, rows: RowEncoder) -> None:
        self.rows = rows
        limits = rows.parser._validator.limits
        self._limits = limits
        self._max_name = {f.key: contract.limit(f.max_chars, limits) for f in contract.NAMES}
        self._max_user = contract.limit(contract.USER_ID.max_chars, limits)
        self._max_keys = contract.limit(contract.DATA.max_keys, limits)
        self._max_depth = contract.limit(contract.DATA.max_depth, limits)
        tenant = rows.tenant
        self._tenant_ok = (
            bool(tenant.strip())
            and len(tenant) <= self._max_name["tenant"]
            and tenant.isprintable()
            and orjson.dumps(tenant)[1:-1].decode() == tenant
        )

    def encode_table(self, table: pa.Table, first: int, identity: str, received_ms: int) -> Encoded:
        """The messages of ``table``'s rows (row ``first + k`` of the file each) and its refused rows."""
        n = table.num_rows
        try:
            if not self._tenant_ok or n == 0:
                raise _Unsupported
            wire, keys, unsure = self._encode(table, first, identity, received_ms)
        except _Unsupported:
            return self.rows.encode_table(table, first, identity, received_ms)
        if unsure.any():
            keys, wire = pc.filter(keys, ~unsure), pc.filter(wire, ~unsure)
        out = Encoded(keys.cast(pa.binary()).to_pylist(), wire.cast(pa.binary()).to_pylist())
        if unsure.any():
            for start, stop in _runs(np.flatnonzero(unsure)):
                part = table.slice(start, stop - start)
                out.extend(self.rows.encode_table(part, first + start, identity, received_ms))
        return out

    def _encode(self, table: pa.Table, first: int, identity: str, received_ms: int) -> tuple[Any, Any, np.ndarray]:
        n = table.num_rows
        names = table.column_names
        if len(set(names)) != len(names):
            raise _Unsupported
        column = {name: table.column(name).combine_chunks() for name in names}
        unsure = np.zeros(n, dtype=bool)
        for name in ("type", "source"):
            if name not in column:
                raise _Unsupported
        texts = {}
        for name in ("type", "source", "id"):
            if name not in column:
                continue
            value = self._name(column[name], self._max_name[name], required=name != "id")
            unsure |= value.unsure
            texts[name] = value.text
        rows = pa.array(np.arange(first, first + n, dtype=np.int64)).cast(pa.string())
        default_id = pc.binary_join_element_wise(f"{identity}-", rows, "")
        ids = pc.coalesce(texts["id"], default_id) if "id" in texts else default_id
        timestamps = self._timestamps(column.get("timestamp"), received_ms)
        unsure |= timestamps.unsure
        unsure |= self._schema_version(column.get("schema_version"))
        data, user = self._data(table, column)
        unsure |= data.unsure | user.unsure
        tenant = orjson.dumps(self.rows.tenant).decode()
        wire = pc.binary_join_element_wise(
            '{"id":"',
            ids,
            '","timestamp":',
            timestamps.text,
            ',"type":"',
            texts["type"],
            '","source":"',
            texts["source"],
            '","data":',
            data.text,
            f',"tenant":{tenant},"received_at":{received_ms},"schema_version":{SCHEMA_VERSION}}}',
            "",
        )
        unsure |= _fill(pc.greater(pc.binary_length(wire), self.rows.max_event_bytes), True)
        keys = pc.binary_join_element_wise(f"{self.rows.tenant}:", user.text, "")
        return wire, keys, unsure

    def _name(self, array: pa.Array, most: int, *, required: bool) -> _Value:
        """A name (type, source, id) as JSON; unsure unless surely not blank, short enough, clean."""
        if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
            raise _Unsupported
        array = array.cast(pa.string())
        codes, offsets = _bytes(array)
        unsure = _rows_with(codes, offsets, _JSON_UNSAFE) | _rows_with_control(codes, offsets)
        unsure |= ~_rows_with(codes, offsets, _GRAPHIC)
        unsure |= _fill(pc.greater(pc.utf8_length(array), most), False)
        if required:
            unsure |= _nulls(array)
        return _Value(array, unsure)

    def _timestamps(self, array: pa.Array | None, received_ms: int) -> _Value:
        if array is None or not pa.types.is_integer(array.type):
            raise _Unsupported
        values = pc.cast(array, pa.int64(), safe=False)
        limits = self._limits
        low = max(contract.limit(contract.TIMESTAMP.minimum), received_ms - limits.max_past_age_s * 1000)
        high = received_ms + limits.max_future_skew_s * 1000
        inside = pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))
        if pa.types.is_unsigned_integer(array.type):
            inside = pc.and_(inside, pc.less_equal(array, 2**63 - 1))
        return _Value(values.cast(pa.string()), ~_fill(inside, False))

    @staticmethod
    def _schema_version(array: pa.Array | None) -> np.ndarray | bool:
        """Rows whose schema version is not the current one (an absent one is)."""
        if array is None:
            return False
        if not pa.types.is_integer(array.type):
            raise _Unsupported
        return ~_fill(pc.equal(array, SCHEMA_VERSION), True)

    def _data(self, table: pa.Table, column: dict[str, pa.Array]) -> tuple[_Value, _Value]:
        """``data`` as JSON, and the user id (the key's part: "" when absent) with its doubts."""
        fields: list[tuple[str, pa.Array]] = []
        struct = column.get("data")
        if struct is not None:
            if not pa.types.is_struct(struct.type):
                raise _Unsupported
            struct = _null_children(struct)
            fields += [(struct.type.field(i).name, struct.field(i)) for i in range(struct.type.num_fields)]
        fields += [(name.removeprefix("data."), column[name]) for name in table.column_names if name not in _TOP]
        keys = [key for key, _ in fields]
        if len(set(keys)) != len(keys) or len(keys) > self._max_keys:
            raise _Unsupported
        if 1 + max((_depth(array.type) for _, array in fields), default=0) > self._max_depth:
            raise _Unsupported
        n = table.num_rows
        text, unsure = _object(fields, n)
        user, latency = dict(fields).get("user_id"), dict(fields).get("latency_ms")
        return _Value(text, unsure | self._latency_unsure(latency, n)), self._user(user, n)

    def _user(self, array: pa.Array | None, n: int) -> _Value:
        if array is None:
            return _Value(pa.array([""] * n), np.zeros(n, dtype=bool))
        if pa.types.is_integer(array.type):
            text = array.cast(pa.string())
            return _Value(pc.fill_null(text, ""), _fill(pc.greater(pc.utf8_length(text), self._max_user), False))
        if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
            return _Value(pa.array([""] * n), ~_nulls(array))  # another type: the general path refuses it
        array = array.cast(pa.string())
        codes, offsets = _bytes(array)
        unsure = _rows_with_control(codes, offsets) | _fill(pc.greater(pc.utf8_length(array), self._max_user), False)
        return _Value(pc.fill_null(array, ""), unsure)

    @staticmethod
    def _latency_unsure(array: pa.Array | None, n: int) -> np.ndarray:
        if array is None:
            return np.zeros(n, dtype=bool)
        if not pa.types.is_integer(array.type) and not pa.types.is_floating(array.type):
            return ~_nulls(array)
        ok = pc.greater_equal(array, 0)
        if pa.types.is_floating(array.type):
            ok = pc.and_(ok, pc.is_finite(array))
        return ~_fill(ok, True)


_TOP = ENVELOPE | {"data"}


def _object(fields: list[tuple[str, pa.Array]], n: int) -> tuple[pa.Array, np.ndarray]:
    """A JSON object per row of ``fields`` (key, values), a null value left out; and the unsure rows."""
    unsure = np.zeros(n, dtype=bool)
    values = [(orjson.dumps(key).decode(), _json(array)) for key, array in fields]
    for _, value in values:
        unsure |= value.unsure
    if not values:
        return pa.array(["{}"] * n), unsure
    if all(value.text.null_count == 0 for _, value in values):  # every field present: one join
        parts: list[Any] = []
        literal = "{"
        for key, value in values:
            literal += ("," if parts or literal != "{" else "") + key + ":" + ('"' if value.quote else "")
            parts += [literal, value.text]
            literal = '"' if value.quote else ""
        return pc.binary_join_element_wise(*parts, literal + "}", ""), unsure
    parts = [pc.binary_join_element_wise("," + key + ":", value.quoted(), "") for key, value in values]
    joined = pc.binary_join_element_wise(*parts, "", null_handling="replace", null_replacement="")
    inner = pc.utf8_slice_codeunits(joined, 1)  # drop the first field's comma
    return pc.binary_join_element_wise("{", inner, "}", ""), unsure


def _json(array: pa.Array) -> _Value:
    """``array``'s values as JSON texts, as orjson writes them (null stays null: the field is absent)."""
    kind = array.type
    n = len(array)
    none = np.zeros(n, dtype=bool)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        array = array.cast(pa.string())
        return _Value(array, _rows_with(*_bytes(array), _JSON_UNSAFE), quote=True)
    if pa.types.is_integer(kind):
        return _Value(array.cast(pa.string()), none)
    if pa.types.is_boolean(kind):
        return _Value(pc.if_else(array, "true", "false"), none)
    if pa.types.is_floating(kind):
        return _floats(array.cast(pa.float64()))
    if pa.types.is_struct(kind):
        fields = [(kind.field(i).name, array.field(i)) for i in range(kind.num_fields)]
        names = [name for name, _ in fields]
        if len(set(names)) != len(names):
            raise _Unsupported
        text, unsure = _object(fields, n)
        return _Value(pc.if_else(pc.is_null(array), pa.scalar(None, pa.string()), text), unsure)
    return _each(array)


def _floats(array: pa.Array) -> _Value:
    """Finite floats in plain notation as orjson writes them; others (exponent form, NaN, inf) unsure."""
    text = array.cast(pa.string())
    magnitude = pc.abs(array)
    plain = pc.or_(
        pc.equal(array, 0), pc.and_(pc.greater_equal(magnitude, _FLOAT_PLAIN[0]), pc.less(magnitude, _FLOAT_PLAIN[1]))
    )
    plain = pc.and_(plain, pc.invert(pc.match_substring(text, "e")))
    integral = pc.invert(pc.match_substring(text, "."))
    text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
    return _Value(text, ~_fill(plain, True))


def _each(array: pa.Array) -> _Value:
    """Any other type, value by value with orjson, as the general path encodes it."""
    texts: list[str | None] = []
    unsure = np.zeros(len(array), dtype=bool)
    for k, value in enumerate(array.to_pylist()):
        if value is None:
            texts.append(None)
            continue
        try:
            texts.append(orjson.dumps(drop_nulls(value)).decode())
        except TypeError:
            texts.append(None)
            unsure[k] = True
    return _Value(pa.array(texts, pa.string()), unsure)


def _null_children(struct: pa.StructArray) -> pa.StructArray:
    """``struct`` with its own nulls pushed into its fields (``.field(i)`` ignores the parent's validity)."""
    if struct.null_count == 0:
        return struct
    mask = pc.is_null(struct)
    children = [pc.if_else(mask, pa.scalar(None, f.type), struct.field(i)) for i, f in enumerate(struct.type)]
    return pa.StructArray.from_arrays(children, fields=list(struct.type))


def _depth(kind: pa.DataType) -> int:
    """How deep a value of ``kind`` may nest (a scalar 0), as `exceeds_depth` counts."""
    if pa.types.is_struct(kind):
        return 1 + max((_depth(f.type) for f in kind), default=0)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return 1 + _depth(kind.value_type)
    if pa.types.is_map(kind):
        return 1 + max(_depth(kind.key_type), _depth(kind.item_type))
    return 0


def _bytes(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string array's UTF-8 bytes (from its first value's) and its value offsets into them."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    data = array.buffers()[2]
    codes = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return codes[offsets[0] : offsets[-1]], offsets - offsets[0]


def _rows_with(codes: np.ndarray, offsets: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per row, whether its bytes hold one ``table`` marks (one pass over all the bytes)."""
    marked = table[codes]
    if not marked.any():
        return np.zeros(len(offsets) - 1, dtype=bool)
    counts = np.concatenate(([0], np.cumsum(marked, dtype=np.int64)))
    return counts[offsets[1:]] > counts[offsets[:-1]]


def _rows_with_control(codes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per row, whether it holds a control character: a C0 or DEL byte, or a C1 one (0xC2 0x80..0x9F)."""
    found = _rows_with(codes, offsets, _CONTROL)
    leads = np.flatnonzero(codes[:-1] == _C1_LEAD)
    if len(leads):
        follow = codes[leads + 1]
        at = leads[(follow >= _C1_RANGE[0]) & (follow <= _C1_RANGE[1])]
        found[np.searchsorted(offsets, at, side="right") - 1] = True
    return found


def _nulls(array: pa.Array) -> np.ndarray:
    return pc.is_null(array).to_numpy(zero_copy_only=False)


def _fill(mask: Any, null_as: bool) -> np.ndarray:
    """A boolean array as numpy, its nulls as ``null_as``."""
    return pc.fill_null(mask, null_as).to_numpy(zero_copy_only=False)


def _runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """``positions`` (sorted) as half-open runs of consecutive positions."""
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    return [(int(run[0]), int(run[-1]) + 1) for run in np.split(positions, breaks)]
