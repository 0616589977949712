"""The compatibility checker: Confluent's rules case by case, and a property test that "compatible" is a promise.

The property draws a writer schema, a reader (often the writer changed a little) and JSON values; when the
checker calls the pair compatible, every value the writer accepts must pass the reader, as a real validator
(jsonschema-rs) judges them.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpulse.schemas.compat import Mode, compatible, refusals
from tests.support.examples import examples

OBJ = {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}, "required": ["sku"]}


def props(**changes: Any) -> dict[str, Any]:
    return {**OBJ, "properties": {**OBJ["properties"], **changes}}


CLOSED = {**OBJ, "additionalProperties": False}


def tree(leaf: str) -> dict[str, Any]:
    """A recursive schema: a node with a value and child nodes."""
    node = {
        "type": "object",
        "properties": {"v": {"type": leaf}, "kids": {"type": "array", "items": {"$ref": "#/$defs/n"}}},
    }
    return {"$defs": {"n": node}, "$ref": "#/$defs/n"}


CASES = [
    # (name, old, new, mode, compatible, a fragment of the first reason)
    ("field added with a default", OBJ, props(currency={"type": "string", "default": "EUR"}), "backward", True, ""),
    (
        "field added without a default (open)",
        OBJ,
        props(currency={"type": "string"}),
        "backward",
        False,
        "open content",
    ),
    (
        "field added to a closed model",
        CLOSED,
        {**props(currency={"type": "string"}), "additionalProperties": False},
        "backward",
        True,
        "",
    ),
    (
        "required field added",
        OBJ,
        {**props(currency={"type": "string", "default": "x"}), "required": ["sku", "currency"]},
        "backward",
        False,
        "required property 'currency' added",
    ),
    ("required dropped", OBJ, {**OBJ, "required": []}, "backward", True, ""),
    ("required dropped, forward", OBJ, {**OBJ, "required": []}, "forward", False, "required property 'sku'"),
    ("field removed (open)", OBJ, {**OBJ, "properties": {"sku": {"type": "string"}}}, "backward", True, ""),
    (
        "field removed (closed)",
        CLOSED,
        {**CLOSED, "properties": {"sku": {"type": "string"}}},
        "backward",
        False,
        "removed from a closed",
    ),
    (
        "field removed, forward (open)",
        OBJ,
        {**OBJ, "properties": {"sku": {"type": "string"}}},
        "forward",
        False,
        "'qty' added to an open",
    ),
    ("type widened", OBJ, props(qty={"type": "number"}), "backward", True, ""),
    ("type widened, forward", OBJ, props(qty={"type": "number"}), "forward", False, "type narrowed"),
    ("type widened, full", OBJ, props(qty={"type": "number"}), "full", False, "forward:"),
    ("type narrowed", OBJ, props(qty={"type": "string"}), "backward", False, "/properties/qty/type"),
    ("null added", OBJ, props(qty={"type": ["integer", "null"]}), "backward", True, ""),
    ("additionalProperties closed", OBJ, CLOSED, "backward", False, "additionalProperties closed"),
    ("additionalProperties opened", CLOSED, OBJ, "backward", True, ""),
    (
        "additionalProperties narrowed",
        {**OBJ, "additionalProperties": {"type": ["string", "number"]}},
        {**OBJ, "additionalProperties": {"type": "string"}},
        "backward",
        False,
        "additionalProperties",
    ),
    (
        "maximum lowered",
        props(qty={"type": "integer", "maximum": 10}),
        props(qty={"type": "integer", "maximum": 5}),
        "backward",
        False,
        "upper bound",
    ),
    (
        "maximum raised",
        props(qty={"type": "integer", "maximum": 5}),
        props(qty={"type": "integer", "maximum": 10}),
        "backward",
        True,
        "",
    ),
    ("maxLength added", OBJ, props(sku={"type": "string", "maxLength": 8}), "backward", False, "maxLength"),
    ("enum extended", props(sku={"enum": ["a", "b"]}), props(sku={"enum": ["a", "b", "c"]}), "backward", True, ""),
    ("enum narrowed", props(sku={"enum": ["a", "b"]}), props(sku={"enum": ["a"]}), "backward", False, '"b"'),
    (
        "anyOf branch added",
        props(qty={"anyOf": [{"type": "integer"}]}),
        props(qty={"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        "backward",
        True,
        "",
    ),
    (
        "local $ref widened",
        {"$defs": {"q": {"type": "integer"}}, **props(qty={"$ref": "#/$defs/q"})},
        {"$defs": {"q": {"type": "number"}}, **props(qty={"$ref": "#/$defs/q"})},
        "backward",
        True,
        "",
    ),
    (
        "local $ref narrowed",
        {"$defs": {"q": {"type": "number"}}, **props(qty={"$ref": "#/$defs/q"})},
        {"$defs": {"q": {"type": "integer"}}, **props(qty={"$ref": "#/$defs/q"})},
        "backward",
        False,
        "type narrowed",
    ),
    ("recursive schema widened", tree("integer"), tree("number"), "backward", True, ""),
    ("recursive schema narrowed", tree("number"), tree("integer"), "backward", False, "/properties/v/type"),
    ("a keyword it cannot compare", OBJ, {**OBJ, "not": {"required": ["x"]}}, "backward", False, "'not' changed"),
    ("annotations only", OBJ, {**OBJ, "title": "Purchase", "description": "x"}, "full", True, ""),
    ("anything under none", OBJ, {"type": "object", "required": ["a", "b"]}, "none", True, ""),
    (
        "nested field narrowed",
        {"type": "object", "properties": {"cart": OBJ}},
        {"type": "object", "properties": {"cart": props(qty={"type": "boolean"})}},
        "backward",
        False,
        "/properties/cart/properties/qty/type",
    ),
    (
        "items widened",
        {"type": "object", "properties": {"l": {"type": "array", "items": {"type": "integer"}}}},
        {"type": "object", "properties": {"l": {"type": "array", "items": {"type": "number"}}}},
        "backward",
        True,
        "",
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "mode", "ok", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_confluent_rules(name: str, old: Any, new: Any, mode: str, ok: bool, fragment: str) -> None:
    reasons = compatible(new, old, mode)
    assert (not reasons) is ok, reasons
    if not ok:
        assert fragment in reasons[0], reasons


def test_transitive_modes_name_their_directions() -> None:
    assert Mode.FULL_TRANSITIVE.transitive and Mode.FULL_TRANSITIVE.directions == ("backward", "forward")
    assert Mode.NONE.directions == () and not Mode.BACKWARD.transitive


# --- The promise, on generated schemas ---

NAMES = ("a", "b", "c")
LEAF_TYPES = ("null", "boolean", "integer", "number", "string")
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.5, 1.5, -2.5])
    | st.sampled_from(["", "a", "abc"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from((*NAMES, "d")), inner, max_size=4),
    max_leaves=8,
)


def _leaf() -> st.SearchStrategy[Any]:
    typed = st.builds(
        lambda kinds, bounds: {"type": kinds[0] if len(kinds) == 1 else kinds, **bounds},
        st.lists(st.sampled_from(LEAF_TYPES), min_size=1, max_size=2, unique=True),
        st.fixed_dictionaries(
            {},
            optional={
                "minimum": st.integers(-2, 2),
                "maximum": st.integers(-2, 2),
                "maxLength": st.integers(0, 3),
                "minLength": st.integers(0, 2),
            },
        ),
    )
    return st.one_of(
        typed, st.just({}), st.booleans(), st.builds(lambda v: {"enum": v}, st.lists(values, min_size=1, max_size=3))
    )


def _node(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    objects = st.builds(
        lambda properties, required, rest: {
            "type": "object",
            "properties": properties,
            "required": sorted(required),
            **({} if rest is None else {"additionalProperties": rest}),
        },
        st.dictionaries(st.sampled_from(NAMES), inner, max_size=3),
        st.sets(st.sampled_from(NAMES), max_size=2),
        st.one_of(st.none(), st.just(False), inner),
    )
    arrays = st.builds(
        lambda items, most: {"type": "array", "items": items, **most},
        inner,
        st.fixed_dictionaries({}, optional={"maxItems": st.integers(0, 3)}),
    )
    any_of = st.builds(lambda branches: {"anyOf": branches}, st.lists(inner, min_size=1, max_size=2))
    return st.one_of(objects, arrays, any_of)


schemas = st.recursive(_leaf(), _node, max_leaves=6)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[Any, Any]:
    """(reader, writer): independent, or the reader as the writer with one property's schema replaced,
    a property dropped or added, or the writer wrapped in an anyOf."""
    writer = draw(schemas)
    change = draw(st.sampled_from(["independent", "replace", "drop", "add", "wrap", "same"]))
    if change == "independent":
        return draw(schemas), writer
    if change == "wrap":
        return {"anyOf": [writer, draw(schemas)]}, writer
    if change == "same" or not isinstance(writer, dict) or "properties" not in writer:
        return writer, writer
    properties = dict(writer["properties"])
    name = draw(st.sampled_from(NAMES))
    if change == "drop":
        properties.pop(name, None)
    else:
        properties[name] = draw(schemas)
    return {**writer, "properties": properties}, writer


@settings(max_examples=examples(800), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=pairs(), instances=st.lists(values, min_size=1, max_size=8))
def test_compatible_means_the_reader_accepts_every_value_the_writer_does(
    pair: tuple[Any, Any], instances: list[Any]
) -> None:
    reader, writer = pair
    if refusals(reader, writer):
        return
    read, wrote = jsonschema_rs.Draft202012Validator(reader), jsonschema_rs.Draft202012Validator(writer)
    for instance in instances:
        if wrote.is_valid(instance):
            assert read.is_valid(instance), (reader, writer, instance)


@settings(max_examples=examples(300), deadline=None)
@given(schema=schemas)
def test_every_schema_is_compatible_with_itself(schema: Any) -> None:
    assert refusals(schema, schema) == []
