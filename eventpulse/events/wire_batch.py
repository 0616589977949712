"""Validate many topic messages at once, straight into columns.

The dataflow reads messages in micro-batches and writes raw events column by column, so building
a `ValidEvent` per message only to take it apart again is wasted work. `validate_wire_batch`
returns the columns of the ``events`` table directly.

Two ways through, one set of rules:

* the **fast path** takes every valid message in the seed format, whoever wrote it: the gateway's
  exact form (`ValidEvent.to_wire`) and other producers' alike: fields in any order, ``id``,
  ``tenant``, ``received_at`` and ``schema_version`` absent or present, other top-level fields (kept
  as ``extra``, read with orjson as the general path reads them), any UTF-8 in ``data``. msgspec checks every rule that
  needs only the limits (lengths, ranges) as it decodes: the top level message by message (``data``
  kept as raw JSON), then the ``data`` of the whole batch in one call, into a struct of just the
  fields the validator reads. The rest is checked over the whole batch at once, in C loops over the
  columns and over the ``data`` texts joined into one buffer, not per event in Python: the tenant
  (`eventpulse.events.validation.message_tenant`: the key's, which a body ``tenant`` must agree with),
  times against the receive time (``received_at``, else the broker's timestamp), whitespace-only names, names holding a control character
  (`eventpulse.events.validation.holds_control_character`, over each column joined), and what msgspec does not check in the JSON it
  skips (`_skipped_json_unsure`). These checks only *accept*: any message they are not sure of
  (an ISO 8601 ``timestamp``, a missing one, a tenant mismatch, ...) goes to
* the **general path**, `EventValidator.parse_wire`, which alone decides rejections and reasons.

That both paths agree, field by field, is a Hypothesis property test
(tests/eventpulse/events/test_wire_batch.py).
"""

import bisect
import dataclasses
import functools
import itertools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import sub
from types import GenericAlias
from typing import Annotated, Any, cast

import msgspec
import orjson
from msgspec import Meta

from eventpulse.config.events import EventLimits
from eventpulse.events import contract
from eventpulse.events.contract import Kind
from eventpulse.events.model import RAW_EVENT_COLUMNS
from eventpulse.events.rejections import Rejection
from eventpulse.events.validation import (
    EventValidator,
    holds_control_character,
    key_tenant,
    message_tenant,
    plausible_receive_time,
)

WIRE_COLUMNS: tuple[str, ...] = RAW_EVENT_COLUMNS[:-2]
"""The columns `validate_wire_batch` fills: ``RAW_EVENT_COLUMNS`` without the topic position."""


@dataclass(slots=True)
class WireBatch:
    """Valid events as columns (`WIRE_COLUMNS`), and where each came from.

    ``index[i]`` is the position in the input of the i-th valid event; ``rejections`` pairs the
    position of every refused message with why.
    """

    columns: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in WIRE_COLUMNS})
    index: list[int] = field(default_factory=list)
    rejections: list[tuple[int, Rejection]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.index)


def validate_wire_batch(
    validator: EventValidator,
    payloads: Sequence[bytes | None],
    default_id: Callable[[int], str],
    *,
    keys: Sequence[bytes | None] | None = None,
    broker_ts: Sequence[int] | None = None,
) -> WireBatch:
    """Validate every message of ``payloads`` (values), with its key and broker timestamp (ms; <= 0: none).

    ``default_id(i)`` names the i-th message when it carries no id (only asked then), so a replay
    names it the same way. Without ``keys`` no key names a tenant; without ``broker_ts`` a message
    without ``received_at`` is judged against the time it is validated (`EventValidator.parse_wire`).
    """
    out, general = WireBatch(), []
    no_keys: list[bytes | None] = [None] * len(payloads) if keys is None else []
    all_keys = no_keys if keys is None else keys
    stamps = [0] * len(payloads) if broker_ts is None else broker_ts
    for first in range(0, len(payloads), _CHUNK):
        stop = first + _CHUNK
        chunk = _Chunk(first, payloads[first:stop], all_keys[first:stop], stamps[first:stop], default_id)
        index, columns, slow = _fast_path(validator, chunk)
        out.index += index
        for name, column in zip(WIRE_COLUMNS, columns, strict=True):
            out.columns[name] += column
        general += slow
    rows: list[tuple[int, tuple[Any, ...]]] = []
    for i in general:
        stamp = stamps[i]
        result = validator.parse_wire(
            payloads[i] or b"", key=all_keys[i], broker_ts_ms=stamp if stamp > 0 else None, default_id=default_id(i)
        )
        if isinstance(result, Rejection):
            out.rejections.append((i, result))
        else:
            rows.append((i, result.raw_row(0, 0)[: len(WIRE_COLUMNS)]))
    if rows:
        _insert(out, rows)
    return out


_CHUNK = 1000  # messages the fast path takes at once: its passes over them stay in the CPU's caches


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Messages the fast path takes at once; positions count from ``first``."""

    first: int
    payloads: Sequence[bytes | None]
    keys: Sequence[bytes | None]
    broker_ts: Sequence[int]
    default_id: Callable[[int], str]


def _fast_path(validator: EventValidator, chunk: _Chunk) -> tuple[list[int], tuple[list[Any], ...], list[int]]:
    """The events the fast path accepts (positions, columns), and the positions of all others.

    Events of a type with a registered schema go to the general path when their data fails it.
    """
    limits = validator.limits
    most = limits.max_event_bytes  # a None (a tombstone) or a larger message becomes b"", which fails to decode
    payloads = [p if p is not None and len(p) <= most else b"" for p in chunk.payloads]
    decoders = _decoders(limits)
    first = chunk.first
    events, index, general = _decode_each(decoders.event.decode, payloads, first)
    extras = ["{}"] * len(events)
    if general:  # other top-level fields (kept as ``extra``), or for the general path
        general = _decode_with_extras(decoders, payloads, first, general, (events, index, extras))
    if not events:
        return [], tuple([] for _ in WIRE_COLUMNS), general
    raws = [e.data for e in events]
    joined = _Joined(raws)
    datas, unsure = _decode_datas(decoders, joined)
    unsure |= _skipped_json_unsure(joined, limits)
    tenants = _tenants(chunk, index, [e.tenant for e in events], limits, unsure)
    ids, kinds, sources = [e.id for e in events], [e.type for e in events], [e.source for e in events]
    if None in ids:  # named after checking: a default id is not held to the limits
        named = [i if i is not None else "" for i in ids]
        ids, missing_ids = named, [k for k, i in enumerate(ids) if i is None]
    else:
        missing_ids = []
    user_ids = [d.user_id for d in datas]
    for names in tenants, ids, kinds, sources:  # a name of only whitespace is refused
        if any(map(str.isspace, names)):
            unsure.update(compress(range(len(names)), map(str.isspace, names)))
    for names in tenants, ids, kinds, sources, user_ids:  # a control character is refused
        if _any_control(names):
            unsure.update(k for k, name in enumerate(names) if name.__class__ is str and holds_control_character(name))
    if validator.schemas is not None and validator.schemas.snapshot.schemas:  # the general path says why
        unsure |= validator.schemas.snapshot.unsure(tenants, kinds, joined.texts)
    for k in missing_ids:
        ids[k] = chunk.default_id(index[k])
    timestamps, received = [e.timestamp for e in events], [e.received_at for e in events]
    if None in received:  # not the gateway's form: the broker's timestamp stands in (`parse_wire`)
        stamps = chunk.broker_ts
        received = [r if r is not None else stamps[i - first] for i, r in zip(index, received, strict=True)]
        unsure.update(k for k, r in enumerate(received) if not plausible_receive_time(r))
        received = [r if plausible_receive_time(r) else 0 for r in received]
    unsure |= _unsure_times(timestamps, received, limits)
    versions, texts = [e.schema_version for e in events], joined.texts
    if unsure:
        general = sorted([*general, *(index[k] for k in unsure)])
        columns_in = (index, tenants, ids, kinds, sources, timestamps, received, versions, texts, datas, user_ids)
        _drop((*columns_in, extras), unsure)
    columns = (
        tenants,
        ids,
        timestamps,
        kinds,
        sources,
        [u if u.__class__ is str else str(u) for u in user_ids],
        [d.latency_ms for d in datas],
        [
            1
            if kind == "error" or d.error is True or (d.status_code.__class__ in _NUMBER and d.status_code >= 500)
            else 0
            for kind, d in zip(kinds, datas, strict=True)
        ],
        texts,
        extras,
        versions,
        received,
    )
    return index, columns, general


def _tenants(
    chunk: _Chunk, index: list[int], bodies: list[str | None], limits: EventLimits, unsure: set[int]
) -> list[str]:
    """Each event's tenant by `message_tenant` (the key's; a body tenant must agree); adds to ``unsure``
    the events it refuses (the general path says why) and those whose key names too long a tenant."""
    first = chunk.first
    keys = chunk.keys if len(index) == len(chunk.keys) else [chunk.keys[i - first] for i in index]
    found = _common_tenants(keys, bodies)
    if None in found:
        for k in [k for k, tenant in enumerate(found) if tenant is None]:
            asked = message_tenant(keys[k], bodies[k])
            found[k] = asked if isinstance(asked, str) else ""
            if not isinstance(asked, str):
                unsure.add(k)
    tenants = cast(list[str], found)  # no None left
    longest = limits.max_name_chars  # a key's tenant was not bounded by the decoder
    if max(map(len, tenants)) > longest:
        unsure.update(k for k, t in enumerate(tenants) if len(t) > longest)
    return tenants


def _common_tenants(keys: Sequence[bytes | None], bodies: list[str | None]) -> list[str | None]:
    """`message_tenant` for the two common forms of a batch, in C loops; None where it must be asked.

    Every message with a body tenant and a key that begins with ``<tenant>:`` (the gateway's form):
    the body's. Every message without one, keyed ``TENANT:USER``: the key's (each distinct tenant
    decoded once).
    """
    try:
        if None not in bodies:
            prefixes = {body: body.encode() + b":" for body in set(bodies) if body is not None}
            agree = map(bytes.startswith, keys, map(prefixes.__getitem__, bodies))  # type: ignore[arg-type]  # no None
            return [body if ok else None for body, ok in zip(bodies, agree, strict=True)]
        if all(body is None for body in bodies):
            parts = list(map(bytes.partition, keys, itertools.repeat(b":")))  # type: ignore[arg-type]  # None: TypeError
            named = {head: key_tenant(head + b":") for head in {head for head, _, _ in parts}}
            return [named[head] if colon else None for head, colon, _ in parts]
    except TypeError:  # a message without a key
        pass
    return [None] * len(bodies)


def _decode_with_extras(
    decoders: "_Decoders",
    payloads: list[bytes],
    first: int,
    failed: list[int],
    into: tuple[list[Any], list[int], list[str]],
) -> list[int]:
    """Decode the messages the exact form refused (``failed``) that only hold other top-level fields.

    Those are kept as ``extra``: read with orjson, as the general path reads them (so a value it
    refuses sends the message there), and written as `ValidEvent.raw_row` writes them. Adds them to
    ``into`` (events, positions, extras) in position order; returns the positions still left over.
    """
    events, index, extras = into
    found: list[tuple[int, Any, str]] = []
    left: list[int] = []
    for i in failed:
        payload = payloads[i - first]
        try:
            event = decoders.lenient.decode(payload)
            extra = {k: v for k, v in orjson.loads(payload).items() if k not in _KNOWN_FIELDS}
            found.append((i, event, orjson.dumps(extra).decode() if extra else "{}"))
        except (msgspec.DecodeError, RecursionError, orjson.JSONDecodeError, orjson.JSONEncodeError):
            left.append(i)
    if found:
        merged = sorted([*zip(index, events, extras, strict=True), *found], key=operator.itemgetter(0))
        index[:], events[:], extras[:] = (list(column) for column in zip(*merged, strict=True))
    return left


_KNOWN_FIELDS = contract.KNOWN_FIELDS


@dataclass(frozen=True, slots=True)
class _Decoders:
    event: msgspec.json.Decoder  # one wire message, ``data`` as msgspec.Raw
    lenient: msgspec.json.Decoder  # the same, other top-level fields skipped
    data: msgspec.json.Decoder  # the ``data`` of one message
    datas: msgspec.json.Decoder  # a JSON array of ``data``
    no_data: Any  # stands in for ``data`` that did not decode


_INT64 = (-(2**63), 2**63 - 1)  # msgspec's bounds must fit


def _typed(field: contract.Field, kind: Kind, limits: EventLimits) -> Any:
    """``field`` as ``kind``, with the contract's limits on it as msgspec ``Meta`` (those that need no context).

    A string gets its length limits (``min_length=1`` for a name that must not be blank, which
    rules out only the empty one: blank ones are screened after decoding); a number its bounds;
    an integer counted by its decimal form (``data.user_id``) the integers whose form fits, within
    int64 (`contract.integer_range`; the wider integers orjson decodes go to the general path).
    """
    if kind is Kind.STRING:
        most = contract.limit(field.max_chars, limits) if field.max_chars is not None else None
        return Annotated[str, Meta(min_length=1 if field.not_blank else None, max_length=most)]
    if kind is Kind.OBJECT:
        return msgspec.Raw  # decoded later, for the whole batch at once (`_decode_datas`)
    if kind is Kind.INTEGER and field.digits:
        least, most = contract.integer_range(field, limits)
        return Annotated[int, Meta(ge=max(least, _INT64[0]), le=min(most, _INT64[1]))]
    python = int if kind is Kind.INTEGER else float
    # msgspec's overloads take one lower and one upper bound: pass only those the field has.
    bounds: dict[str, Any] = {"ge": field.minimum, "le": field.maximum, "lt": field.below}
    return Annotated[python, Meta(**{name: bound for name, bound in bounds.items() if bound is not None})]


def _struct(name: str, fields: Sequence[tuple[contract.Field, Any]], *, optional: bool, **options: Any) -> Any:
    """A msgspec struct of ``fields`` (each with its type). A field is required when ``optional`` is
    False and the contract requires it; when absent it takes its contract default (or None)."""
    spec = [(f.key, kind) if f.required and not optional else (f.key, kind, f.default) for f, kind in fields]
    return msgspec.defstruct(name, spec, kw_only=True, gc=False, **options)


def _wire_type(field: contract.Field, limits: EventLimits) -> Any:
    """``field``'s first JSON type with its limits; a field that may be absent without a default may be null."""
    typed = _typed(field, field.kinds[0], limits)
    return typed | None if not field.required and field.default is None else typed


@functools.lru_cache(maxsize=8)
def _decoders(limits: EventLimits) -> _Decoders:
    """The seed format as any producer writes it: every field of the envelope and the gateway's, each as
    its first JSON type in the contract, with the contract's limits that need no context; ``timestamp``,
    ``type``, ``source`` and ``data`` required, the others (``id``, ``tenant``, ``received_at``,
    ``schema_version``) optional, in any order. ``event`` refuses other top-level fields, ``lenient``
    skips them."""
    known = [_REQUIRED_DATA if f is contract.DATA else f for f in (*contract.ENVELOPE, *contract.SET_BY_GATEWAY)]
    fields = [(f, _wire_type(f, limits)) for f in known]
    event = _struct("WireEvent", fields, optional=False, forbid_unknown_fields=True)
    lenient = _struct("LenientWireEvent", fields, optional=False)
    data_fields = []
    for f in contract.DATA_FIELDS:  # every JSON type each takes (null as absent), or any value
        kinds = [k for k in f.kinds if k is not Kind.NULL]
        kind = functools.reduce(operator.or_, [_typed(f, k, limits) for k in kinds]) if kinds else Any
        data_fields.append((f, kind | None if Kind.NULL in f.kinds else kind))
    data = _struct("WireData", data_fields, optional=True)
    return _Decoders(
        msgspec.json.Decoder(event),
        msgspec.json.Decoder(lenient),
        msgspec.json.Decoder(data),
        msgspec.json.Decoder(GenericAlias(list, data)),
        data(),
    )


_REQUIRED_DATA = dataclasses.replace(contract.DATA, required=True)
"""``data`` is optional in the contract (absent means ``{}``): the fast path leaves an event without it
to the general path, as it keeps ``data`` as the JSON text that arrived."""


def _decode_each(
    decode: Callable[[bytes], Any], payloads: Sequence[Any], first: int
) -> tuple[list[Any], list[int], list[int]]:
    """Decode every payload: the events, their positions (from ``first``), and those that failed.

    ``list.extend(map(...))`` keeps what it appended before an exception, so a failure costs one
    restart, not a Python loop over every message.
    """
    events: list[Any] = []
    index: list[int] = []
    failed: list[int] = []
    rest = iter(payloads)
    start = 0
    while True:
        before = len(events)
        try:
            events.extend(map(decode, rest))
        except (msgspec.DecodeError, RecursionError):  # msgspec recurses into nested JSON
            stop = start + len(events) - before  # the one that failed
            index += range(first + start, first + stop)
            failed.append(first + stop)
            start = stop + 1
        else:
            index += range(first + start, first + len(payloads))
            return events, index, failed


_NUMBER = (int, float)


def _any_control(names: list[Any]) -> bool:
    """Whether a string of ``names`` holds a control character (integers, as user ids may be, do not).

    Joined, the strings are one `holds_control_character` call: the join holds a control
    character exactly when one of them does (joining adds no characters).
    """
    try:
        return holds_control_character("".join(names))
    except TypeError:  # integer user ids among them
        return holds_control_character("".join([n for n in names if n.__class__ is str]))


def _decode_datas(decoders: _Decoders, joined: "_Joined") -> tuple[list[Any], set[int]]:
    """The ``data`` of every event, and which did not decode (a stand-in in their place)."""
    try:
        if joined.sep == b"\n":
            datas = decoders.data.decode_lines(joined.text)
        else:
            datas = decoders.datas.decode(b"[" + b",".join(joined.raws) + b"]")
        if len(datas) == len(joined.raws):  # (decode_lines skips blank lines: there are none)
            return datas, set()
    except (msgspec.DecodeError, RecursionError):
        pass
    datas = []
    failed: set[int] = set()
    for k, raw in enumerate(joined.raws):
        try:
            datas.append(decoders.data.decode(raw))
        except (msgspec.DecodeError, RecursionError):
            datas.append(decoders.no_data)
            failed.add(k)
    return datas, failed


def _unsure_times(timestamps: list[int], received: list[int], limits: EventLimits) -> set[int]:
    """Events whose timestamp is too far from their ``received_at``."""
    ahead, behind = limits.max_future_skew_s * 1000, -limits.max_past_age_s * 1000
    return {k for k, offset in enumerate(map(sub, timestamps, received)) if not behind <= offset <= ahead}


class _Joined:
    """The ``data`` texts of a batch in one buffer, one a line, and each as a str (``texts``).

    A text holding a newline (JSON may have them between tokens) makes the separator NUL instead,
    a control character msgspec refuses anywhere in JSON.
    """

    def __init__(self, raws: list[Any]) -> None:
        self.raws = raws
        for sep in b"\n", b"\0":
            self.sep, self.text = sep, sep.join(raws)
            self.texts = self.text.decode(errors="surrogateescape").split(sep.decode())
            if len(self.texts) == len(raws):
                break
        else:
            raise AssertionError("a JSON text msgspec accepted holds a NUL")
        self.ascii = self.text.isascii()


def _table(default: bytes, mapping: dict[bytes, bytes]) -> bytes:
    table = bytearray(default * 256)
    for chars, to in mapping.items():
        for char in chars:
            table[char] = to[0]
    return bytes(table)


# Number characters as '0' ('-' as a place a number may start), e/E as 'e', what may come just
# before a value as ':', anything else ' '. A number orjson refuses as out of range (|x| >= 2**1024)
# needs an exponent of 3 digits or more, or 210 digits or more before any exponent.
_NUMBER_SHAPE = _table(b" ", {b"0123456789+.": b"0", b"eE": b"e", b"-:,[ \t\r\n": b":"})
_OPENERS = _table(b" ", {b"{[": b"{", b"\n": b"\n", b"\0": b"\0"})
_NOT_OPENERS = {sep: bytes(c for c in range(256) if c not in b"{[" + sep) for sep in (b"\n", b"\0")}


def _skipped_json_unsure(joined: _Joined, limits: EventLimits) -> set[int]:
    """Events whose ``data`` might break a rule in JSON msgspec skipped, by position in the batch.

    msgspec checks the syntax of the fields it skips (strings and escapes included), but
    * not their UTF-8: the batch's ``data`` texts are decoded as UTF-8 at once, strictly (Python's codec and
      orjson refuse the same bytes: overlong forms, surrogates, beyond U+10FFFF), each only if that fails;
    * not how many keys: a message too short to hold too many, or no more colons than keys allowed;
    * not their nesting: no more ``{``/``[`` in the text than levels allowed keeps the depth limit;
    * not the range of their numbers (``1e400`` passes): a text that might hold such a number
      outside a string is decoded by orjson, as the general path would, and unsure if that fails.
    """
    raws, sep = joined.raws, joined.sep
    unsure: set[int] = (
        set() if joined.ascii or _is_utf8(joined.text) else {k for k, r in enumerate(raws) if not _is_utf8(r)}
    )
    keys_max = limits.max_data_keys
    few_keys = 5 * keys_max + 5  # a pair takes 5 bytes at least (`"":0,`): a shorter text has few enough
    if max(map(len, raws)) > few_keys:
        unsure.update(k for k, raw in enumerate(raws) if len(raw) > few_keys and bytes(raw).count(b":") > keys_max)
    depth_max = limits.max_data_depth
    openers = joined.text.translate(_OPENERS, _NOT_OPENERS[sep])  # only the {, [ and separators
    if openers.find(b"{" * (depth_max + 1)) >= 0:
        unsure.update(k for k, found in enumerate(openers.split(sep)) if len(found) > depth_max)
    shape = joined.text.translate(_NUMBER_SHAPE)
    starts: list[int] = []
    for needle in b"0e000", b"0" * 210:
        at = shape.find(needle)
        while at >= 0:
            before = shape[max(0, at - 64) : at].rstrip(b"0")
            if before and before[-1:] != b":":  # not after a ':', ',', '[' or space: inside a string
                at = shape.find(needle, at + len(needle))  # no number starts within this match
                continue
            if not starts:
                starts = [0, *itertools.accumulate(len(raw) + 1 for raw in raws)]
            k = bisect.bisect_right(starts, at) - 1
            try:
                orjson.loads(memoryview(raws[k]))
            except orjson.JSONDecodeError:
                unsure.add(k)
            at = shape.find(needle, starts[k + 1])
    return unsure


def _is_utf8(text: Any) -> bool:
    try:
        str(text, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _drop(lists: tuple[list[Any], ...], positions: set[int]) -> None:
    """Remove ``positions`` from every one of ``lists`` (all as long), in place."""
    if len(positions) <= 16:  # a few: each deletion moves the tail, which beats copying everything
        for k in sorted(positions, reverse=True):
            for items in lists:
                del items[k]
        return
    sure = [True] * len(lists[0])
    for k in positions:
        sure[k] = False
    for items in lists:
        items[:] = compress(items, sure)


def _insert(out: WireBatch, rows: list[tuple[int, tuple[Any, ...]]]) -> None:
    """Merge the general path's ``rows`` (position, row), in order, into the fast path's columns."""
    index, columns = out.index, out.columns
    merged_index: list[int] = []
    merged: dict[str, list[Any]] = {name: [] for name in WIRE_COLUMNS}
    start = 0
    for i, row in rows:
        stop = bisect.bisect_left(index, i, start)
        for name, value in zip(WIRE_COLUMNS, row, strict=True):
            merged[name] += columns[name][start:stop]
            merged[name].append(value)
        merged_index += index[start:stop]
        merged_index.append(i)
        start = stop
    for name in WIRE_COLUMNS:
        merged[name] += columns[name][start:]
    out.index = merged_index + index[start:]
    out.columns = merged
