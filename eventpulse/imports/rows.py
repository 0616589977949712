"""The general path: each row as the JSON object a client would have sent, through the gateway's parser.

A row becomes an event this way (the columnar path, `eventpulse.imports.columnar`, must give the
same bytes): a column named after an envelope field (``id``, ``timestamp``, ``type``, ``source``,
``schema_version``) is that field; a ``data`` column (a struct, or a JSON text) is ``data``; every
other column ``x`` (or ``data.x``) is ``data.x``, in column order after the ``data`` column's keys.
A null cell is an absent field, at any depth of a struct. A row without an id gets
``<file identity>-<row>``. Validation is `SubmittedEventParser.parse` (the gateway's, with
`EventValidator.parse_object` as the judge) and the wire value `encode_checked`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from eventpulse.events import contract
from eventpulse.events.encoding import encode_checked
from eventpulse.events.rejections import Rejection
from eventpulse.events.submitted import SubmittedEventParser
from eventpulse.events.validation import decode_rejection

ENVELOPE = frozenset(f.key for f in contract.ENVELOPE if f.key != "data")
"""The top-level fields a column may name (``data`` is handled on its own)."""


@dataclass(slots=True)
class Encoded:
    """A chunk's messages (``keys[i]``, ``values[i]``) and its refused rows (row, why, what was sent)."""

    keys: list[Any] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    rejected: list[tuple[int, Rejection, str]] = field(default_factory=list)

    def extend(self, other: Encoded) -> None:
        self.keys += other.keys
        self.values += other.values
        self.rejected += other.rejected


def row_id(identity: str, row: int) -> str:
    """The id of row ``row`` of the file ``identity`` when it carries none."""
    return f"{identity}-{row}"


def drop_nulls(value: Any) -> Any:
    """A struct's dict without its null fields, at every depth (a null cell is an absent field)."""
    if type(value) is dict:
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if type(value) is list:
        return [drop_nulls(v) for v in value]
    return value


def row_objects(table: pa.Table) -> list[Any]:
    """Each row of ``table`` as the event object it stands for (a `Rejection` for a row whose ``data``
    text is not JSON)."""
    names = table.column_names
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    objects: list[Any] = []
    for values in zip(*columns, strict=True) if columns else [() for _ in range(table.num_rows)]:
        obj: dict[str, Any] = {}
        data: dict[str, Any] = {}
        problem: Rejection | None = None
        for name, value in zip(names, values, strict=True):
            if value is None:
                continue
            if name == "data":
                if isinstance(value, str | bytes):
                    try:
                        value = orjson.loads(value)
                    except orjson.JSONDecodeError as exc:
                        why = decode_rejection(exc)
                        problem = Rejection(why.reason, "data", f"data is not JSON: {why.detail}")
                        break
                if not isinstance(value, dict):
                    obj["data"] = value  # the validator refuses it, with its reason
                    continue
                data = {**drop_nulls(value), **data}
            elif name in ENVELOPE:
                obj[name] = value
            else:
                data[name.removeprefix("data.")] = drop_nulls(value)
        if problem is not None:
            objects.append(problem)
            continue
        if "data" not in obj or data:
            obj["data"] = data
        objects.append(obj)
    return objects


class RowEncoder:
    """Rows to messages through the gateway's parser and encoder."""

    def __init__(self, parser: SubmittedEventParser, tenant: str, max_event_bytes: int) -> None:
        self.parser, self.tenant, self.max_event_bytes = parser, tenant, max_event_bytes

    def encode_objects(
        self, objects: list[Any], rows: list[int], identity: str, received_ms: int, sent: Callable[[int], str]
    ) -> Encoded:
        """Validate and encode ``objects`` (row ``rows[k]`` of the file each); ``sent(k)`` is what the
        dead letter keeps of object ``k``."""
        out = Encoded()
        parse, tenant = self.parser.parse, self.tenant
        for k, obj in enumerate(objects):
            row = rows[k]
            if isinstance(obj, Rejection):
                out.rejected.append((row, obj, sent(k)))
                continue
            if type(obj) is dict and "id" not in obj:
                obj = {"id": row_id(identity, row), **obj}
            event = parse(obj, tenant=tenant, received_at_ms=received_ms)
            wire = encode_checked(event, self.max_event_bytes)  # a rejection passes through
            if isinstance(wire, Rejection):
                out.rejected.append((row, wire, sent(k)))
                continue
            assert not isinstance(event, Rejection)
            out.keys.append(event.partition_key())
            out.values.append(wire)
        return out

    def encode_lines(self, lines: list[bytes], first: int, identity: str, received_ms: int) -> Encoded:
        """NDJSON lines (line ``first + k`` of the file each); blank lines are skipped."""
        objects: list[Any] = []
        rows: list[int] = []
        kept: list[bytes] = []
        for k, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                objects.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                objects.append(decode_rejection(exc))
            rows.append(first + k)
            kept.append(line)
        return self.encode_objects(objects, rows, identity, received_ms, lambda k: _text(kept[k]))

    def encode_table(self, table: pa.Table, first: int, identity: str, received_ms: int) -> Encoded:
        objects = row_objects(table)
        rows = list(range(first, first + len(objects)))
        return self.encode_objects(objects, rows, identity, received_ms, lambda k: _payload(objects[k], table, k))


def _text(raw: bytes, limit: int = 64 * 1024) -> str:
    return raw[:limit].decode("utf-8", "replace")


def _payload(obj: Any, table: pa.Table, k: int) -> str:
    """What a refused table row held, as JSON text for its dead letter."""
    value = obj if not isinstance(obj, Rejection) else table.slice(k, 1).to_pylist()[0]
    try:
        return _text(orjson.dumps(value, default=str))
    except TypeError:
        return repr(value)[: 64 * 1024]
