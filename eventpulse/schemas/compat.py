"""Compatibility of two JSON Schemas, as Confluent's Schema Registry judges JSON Schema evolution.

Every mode reduces to one question, `refusals(reader, writer)`: does the *reader* schema accept every
event the *writer* schema accepts? If not, why (each reason with the JSON pointer of the part of the
schema that changed)? ``backward``: the new schema reads the events written under the old one (upgrade
consumers first); ``forward``: the old schema reads the new events (upgrade producers first); ``full``:
both. The ``_transitive`` forms ask it of every earlier version, the plain ones of the latest only.

The answer is conservative: a change it cannot prove harmless is refused with its reason, so a
"compatible" is a promise (checked by a property test against a real validator, jsonschema-rs:
``tests/eventpulse/schemas/test_compat.py``). The rules, Confluent's names in brackets:

* a type may be widened (``integer`` to ``number``, a type added) [TYPE_EXTENDED], not narrowed
  [TYPE_NARROWED]; the same for ``enum``/``const`` values and for every bound (``minimum``,
  ``maxLength``, ``maxItems``...): a looser one is compatible, a tighter or new one is not;
* a property added to a *closed* content model (``additionalProperties: false``) is compatible if it is
  not required [OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL]; added to an *open* one it is
  compatible only with a ``default`` [PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL is refused by Confluent]:
  the default says the old producers never sent the field, without which an old event could carry
  it with any value. This is the one rule that takes a declaration on trust;
* a required property added is refused [REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL], with or
  without a default: validation does not fill defaults in, so the old events lacking it would be refused;
* a property removed is compatible from an open content model [PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL],
  not from a closed one [PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL];
* ``additionalProperties`` may be opened or widened [ADDITIONAL_PROPERTIES_ADDED/EXTENDED], not
  closed or narrowed [ADDITIONAL_PROPERTIES_REMOVED/NARROWED];
* ``anyOf``/``oneOf``/``allOf`` branches, local ``$ref`` (``#/$defs/...``) and nested schemas are
  compared recursively; a change to a keyword that cannot be compared this way (``not``, ``if``,
  ``patternProperties``, ``unevaluatedProperties``...) is refused unless it is unchanged.

Annotations (``title``, ``description``, ``default``, ``examples``, ``format``...) never matter.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jsonschema_rs
import orjson


class Mode(StrEnum):
    """A compatibility mode (Confluent's names, lower-case)."""

    BACKWARD = "backward"
    BACKWARD_TRANSITIVE = "backward_transitive"
    FORWARD = "forward"
    FORWARD_TRANSITIVE = "forward_transitive"
    FULL = "full"
    FULL_TRANSITIVE = "full_transitive"
    NONE = "none"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_transitive")

    @property
    def directions(self) -> tuple[str, ...]:
        """``backward`` (new reads old), ``forward`` (old reads new), both, or none."""
        base = self.value.removesuffix("_transitive")
        return {"backward": ("backward",), "forward": ("forward",), "full": ("backward", "forward")}.get(base, ())


@dataclass(frozen=True, slots=True)
class Refusal:
    """One reason the reader would refuse some of the writer's events; ``at`` points into the schemas."""

    at: str
    reason: str

    def __str__(self) -> str:
        return f"{self.at or '/'}: {self.reason}"


ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$anchor",
        "$comment",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "format",  # an annotation in draft 2020-12 (the validators do not assert it)
        "contentMediaType",
        "contentEncoding",
        "contentSchema",
    }
)
_COMPOSITION = ("allOf", "anyOf", "oneOf")
_COMPARED = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "minProperties",
        "maxProperties",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "$ref",
        *_COMPOSITION,
    }
)
_CHANGES_OTHERS = frozenset({"patternProperties", "prefixItems"})
"""Keywords that change what another one applies to (``additionalProperties``, ``items``): compared on both sides."""
_TYPES = ("null", "boolean", "object", "array", "number", "integer", "string")
_MAX_DEPTH = 64  # nested schemas (and $ref hops) followed before a difference is refused unexamined


def compatible(new: Any, old: Any, mode: Mode | str) -> list[str]:
    """Why ``new`` may not follow ``old`` under ``mode`` (empty: it may), each reason naming its direction."""
    out = []
    for direction in Mode(mode).directions:
        reader, writer = (new, old) if direction == "backward" else (old, new)
        who = "the new schema refuses" if direction == "backward" else "the old schema refuses"
        whose = "old" if direction == "backward" else "new"
        out += [f"{direction}: {who} {whose} events ({r})" for r in refusals(reader, writer)]
    return out


def refusals(reader: Any, writer: Any) -> list[Refusal]:
    """Why ``reader`` may refuse an instance ``writer`` accepts (empty: it accepts them all)."""
    return list(_Compare(reader, writer).refusals(reader, writer, "", 0))


def canonical(schema: Any) -> bytes:
    """The schema's JSON with sorted keys: equal schemas have equal texts (what the fingerprint hashes)."""
    return orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)


def _types(schema: dict[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    return {kind} if isinstance(kind, str) else set(kind)


def _allows(types: set[str] | None, kind: str) -> bool:
    """Whether an instance of JSON type ``kind`` may pass the ``type`` keyword ``types``."""
    return types is None or kind in types or (kind == "integer" and "number" in types)


class _Compare:
    def __init__(self, reader_root: Any, writer_root: Any) -> None:
        self._roots = (reader_root, writer_root)
        self._assumed: set[bytes] = set()  # pairs of $refs being compared (recursive schemas)

    def refusals(self, reader: Any, writer: Any, at: str, depth: int) -> Iterator[Refusal]:
        if writer is False or reader is True or reader == {}:
            return
        if reader is False:
            yield Refusal(at, "refuses every value where the other schema accepts some")
            return
        if writer is True:
            writer = {}
        if not isinstance(reader, dict) or not isinstance(writer, dict):
            yield Refusal(at, "not a schema (an object or a boolean)")
            return
        if depth > _MAX_DEPTH:
            if canonical(reader) != canonical(writer):
                yield Refusal(at, "nested too deep to compare; keep it unchanged")
            return
        if "$ref" in reader and "$ref" in writer:
            # A recursive schema meets the same pair again inside itself: assume it holds (co-inductively,
            # as subtyping of recursive types does); any difference is reported where it first shows.
            pair = canonical([reader, writer])
            if pair in self._assumed:
                return
            self._assumed.add(pair)
        reader, writer = self._resolve(reader, 0), self._resolve(writer, 1)
        if canonical(reader) == canonical(writer):
            return
        if ("$ref" in reader or "$ref" in writer) and reader.get("$ref") != writer.get("$ref"):
            yield Refusal(at, "a $ref outside this schema (#/$defs/...) changed: it cannot be compared")
            return
        if "enum" in writer or "const" in writer:  # finitely many values: ask a real validator
            yield from self._values(reader, writer, at)
            return
        yield from self._composition(reader, writer, at, depth)

    def _resolve(self, schema: dict[str, Any], side: int) -> dict[str, Any]:
        """``schema`` with a local ``$ref`` (``#/...``) replaced by its target merged with its siblings."""
        for _ in range(_MAX_DEPTH):
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#"):
                return schema
            target: Any = self._roots[side]
            for part in ref[1:].split("/")[1:]:
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    return schema
                target = target[part]
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            if target is True or target == {}:
                schema = rest
            elif isinstance(target, dict):
                schema = {"allOf": [target, rest]} if set(rest) - ANNOTATIONS else target
            else:
                return schema
        return schema

    def _values(self, reader: dict[str, Any], writer: dict[str, Any], at: str) -> Iterator[Refusal]:
        values = [writer["const"]] if "const" in writer else list(writer.get("enum", []))
        if "const" in writer and "enum" in writer:
            values = [v for v in values if v in writer["enum"]]
        check = jsonschema_rs.Draft202012Validator(_with_defs(reader, self._roots[0]))
        for value in values:
            if not check.is_valid(value):
                yield Refusal(at, f"the value {orjson.dumps(value).decode()} is no longer accepted")

    def _composition(self, reader: dict[str, Any], writer: dict[str, Any], at: str, depth: int) -> Iterator[Refusal]:
        """The reader's branches must take the writer's values; the rest is compared without them."""
        for keyword in _COMPOSITION:
            branches = reader.get(keyword)
            if branches is None or branches == writer.get(keyword):
                continue  # absent or unchanged
            if keyword == "allOf":
                for i, branch in enumerate(branches):
                    yield from self.refusals(branch, writer, f"{at}/allOf/{i}", depth + 1)
            elif keyword == "anyOf" and self._any_branch_accepts(branches, writer, depth):
                continue
            else:
                yield Refusal(f"{at}/{keyword}", f"{keyword} changed: some values may match no branch (or several)")
        plain_reader = {k: v for k, v in reader.items() if k not in _COMPOSITION}
        plain_writer = {k: v for k, v in writer.items() if k not in _COMPOSITION}  # takes more values: sufficient
        plain = list(self._plain(plain_reader, plain_writer, at, depth))
        if not plain:
            return
        for keyword in ("anyOf", "oneOf"):  # each of the writer's values matches one of its branches
            branches = writer.get(keyword)
            if branches and all(not list(self.refusals(plain_reader, b, at, depth + 1)) for b in branches):
                return
        if any(not list(self.refusals(plain_reader, b, at, depth + 1)) for b in writer.get("allOf", [])):
            return
        yield from plain

    def _any_branch_accepts(self, branches: list[Any], writer: dict[str, Any], depth: int) -> bool:
        if any(not list(self.refusals(b, writer, "", depth + 1)) for b in branches):
            return True
        mine: list[Any] = writer.get("anyOf") or writer.get("oneOf") or []
        return bool(mine) and all(any(not list(self.refusals(b, w, "", depth + 1)) for b in branches) for w in mine)

    def _plain(self, reader: dict[str, Any], writer: dict[str, Any], at: str, depth: int) -> Iterator[Refusal]:
        unknown = (set(reader) - ANNOTATIONS - _COMPARED) | (set(writer) & _CHANGES_OTHERS)
        for keyword in sorted(unknown):
            if reader.get(keyword) != writer.get(keyword):
                yield Refusal(
                    f"{at}/{keyword}", f"'{keyword}' changed; it cannot be compared, so it must stay as it was"
                )
        for keyword in ("enum", "const"):  # the writer has neither (`_values` compares those)
            if keyword in reader:
                yield Refusal(f"{at}/{keyword}", f"'{keyword}' added: every other value is refused")
        ours, theirs = _types(reader), _types(writer)
        kinds = [k for k in _TYPES if _allows(theirs, k)]  # the writer's values' JSON types
        lost = [k for k in kinds if not _allows(ours, k)]
        if lost:
            was = "any type" if theirs is None else "/".join(sorted(theirs))
            now = "/".join(sorted(ours or ()))
            yield Refusal(f"{at}/type", f"type narrowed to {now}: {', '.join(lost)} no longer accepted (was {was})")
        live = {k for k in kinds if _allows(ours, k)}
        if "object" in live:
            yield from self._object(reader, writer, at, depth)
        if "array" in live:
            yield from self._array(reader, writer, at, depth)
        if "string" in live:
            yield from _bounds(reader, writer, at, ("minLength", "maxLength"))
            if "pattern" in reader and reader["pattern"] != writer.get("pattern"):
                yield Refusal(f"{at}/pattern", "pattern added or changed")
        if "number" in live or "integer" in live:
            yield from _numbers(reader, writer, at)

    def _object(self, reader: dict[str, Any], writer: dict[str, Any], at: str, depth: int) -> Iterator[Refusal]:
        ours, theirs = reader.get("properties", {}), writer.get("properties", {})
        our_rest, their_rest = reader.get("additionalProperties", True), writer.get("additionalProperties", True)
        for name in sorted(set(reader.get("required", [])) - set(writer.get("required", []))):
            note = (
                " (a default does not help: validation does not fill it in)"
                if name in ours and _has_default(ours[name])
                else ""
            )
            yield Refusal(f"{at}/required", f"required property '{name}' added: events without it are refused{note}")
        for name in sorted(set(ours) | set(theirs)):
            where = f"{at}/properties/{_escape(name)}"
            if name in ours and name in theirs:
                yield from self.refusals(ours[name], theirs[name], where, depth + 1)
            elif name in ours:  # added: the writer gave it to additionalProperties
                if their_rest is False or _has_default(ours[name]):
                    continue
                found = list(self.refusals(ours[name], their_rest, where, depth + 1))
                if found and (their_rest is True or their_rest == {}):
                    yield Refusal(
                        where,
                        f"property '{name}' added to an open content model without a default: events may carry"
                        " it with any value (give it a default, or close the old schema with additionalProperties: false)",
                    )
                else:
                    yield from found
            else:  # removed: the reader gives it to additionalProperties
                if our_rest is False:
                    yield Refusal(
                        where, f"property '{name}' removed from a closed content model: events carrying it are refused"
                    )
                else:
                    yield from self.refusals(our_rest, theirs[name], where, depth + 1)
        if their_rest is not False and our_rest is not True:
            found = list(self.refusals(our_rest, their_rest, f"{at}/additionalProperties", depth + 1))
            if found:
                yield Refusal(
                    f"{at}/additionalProperties",
                    "additionalProperties closed or narrowed: other properties are refused",
                )
        yield from _bounds(reader, writer, at, ("minProperties", "maxProperties"))

    def _array(self, reader: dict[str, Any], writer: dict[str, Any], at: str, depth: int) -> Iterator[Refusal]:
        yield from self.refusals(reader.get("items", True), writer.get("items", True), f"{at}/items", depth + 1)
        yield from _bounds(reader, writer, at, ("minItems", "maxItems"))
        if reader.get("uniqueItems") is True and writer.get("uniqueItems") is not True:
            yield Refusal(f"{at}/uniqueItems", "uniqueItems added")


def _has_default(schema: Any) -> bool:
    return isinstance(schema, dict) and "default" in schema


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _with_defs(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    """``schema`` standing alone: the root's ``$defs`` beside it, so its local references resolve."""
    if not isinstance(root, dict):
        return schema
    defs = {k: root[k] for k in ("$defs", "definitions") if k in root and k not in schema}
    return {**defs, **schema}


def _bounds(reader: dict[str, Any], writer: dict[str, Any], at: str, names: tuple[str, str]) -> Iterator[Refusal]:
    """A lower (``names[0]``) and an upper bound: the reader's may only be looser."""
    low, high = names
    if low in reader and reader[low] > writer.get(low, 0):
        yield Refusal(f"{at}/{low}", f"{low} raised to {reader[low]} (was {writer.get(low, 'none')})")
    if high in reader and reader[high] < writer.get(high, math.inf):
        yield Refusal(f"{at}/{high}", f"{high} lowered to {reader[high]} (was {writer.get(high, 'none')})")


def _lower(schema: dict[str, Any]) -> tuple[float, bool]:
    """The least value taken, and whether it is excluded."""
    bounds = [(-math.inf, False)]
    if isinstance(schema.get("minimum"), int | float):
        bounds.append((schema["minimum"], False))
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        bounds.append((schema["exclusiveMinimum"], True))
    return max(bounds)


def _upper(schema: dict[str, Any]) -> tuple[float, bool]:
    bounds = [(math.inf, False)]
    if isinstance(schema.get("maximum"), int | float):
        bounds.append((schema["maximum"], False))
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        bounds.append((schema["exclusiveMaximum"], True))
    return min(bounds, key=lambda b: (b[0], not b[1]))


def _numbers(reader: dict[str, Any], writer: dict[str, Any], at: str) -> Iterator[Refusal]:
    (ours, our_x), (theirs, their_x) = _lower(reader), _lower(writer)
    if ours > theirs or (ours == theirs and our_x and not their_x):
        yield Refusal(f"{at}/minimum", f"lower bound raised to {ours}{' (excluded)' if our_x else ''}")
    (ours, our_x), (theirs, their_x) = _upper(reader), _upper(writer)
    if ours < theirs or (ours == theirs and our_x and not their_x):
        yield Refusal(f"{at}/maximum", f"upper bound lowered to {ours}{' (excluded)' if our_x else ''}")
    step = reader.get("multipleOf")
    if step is not None:
        theirs_step = writer.get("multipleOf")
        ratio = theirs_step / step if theirs_step else 0.5
        if ratio != int(ratio):
            yield Refusal(f"{at}/multipleOf", f"multipleOf {step} added or changed (was {theirs_step or 'none'})")
