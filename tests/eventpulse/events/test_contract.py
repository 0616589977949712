"""The contract's character sets are the ones its rules name (checked over every code point)."""

import re
import sys
import unicodedata

from eventpulse.config.events import EventLimits
from eventpulse.events import contract
from eventpulse.events.json_schema import event_schema

CODE_POINTS = [chr(c) for c in range(sys.maxunicode + 1)]


def test_whitespace_is_what_str_strip_removes() -> None:
    assert "".join(c for c in CODE_POINTS if c.isspace()) == contract.WHITESPACE
    assert all(not c.strip() for c in contract.WHITESPACE)


def test_control_characters_are_unicode_category_cc() -> None:
    found = {c for c in CODE_POINTS if contract.CONTROL_CHARACTERS.search(c)}
    assert found == {c for c in CODE_POINTS if unicodedata.category(c) == "Cc"}
    assert not any(c.isprintable() for c in found)  # so a fast path may skip the search for printable text


def test_timestamp_shape_holds_a_space_or_what_upper_cases_to_a_t() -> None:
    shape = re.compile(contract.TIMESTAMP_SHAPE)
    assert {c for c in CODE_POINTS if shape.search(c)} == {" "} | {c for c in CODE_POINTS if "T" in c.upper()}


def test_the_schema_patterns_say_what_the_contract_says() -> None:
    """The name patterns of the JSON Schema, read by Python's ``re`` as JSON Schema validators do."""
    name = event_schema(EventLimits())["properties"]["type"]
    not_blank, control = re.compile(name["pattern"]), re.compile(name["not"]["pattern"])
    assert [c for c in CODE_POINTS if not not_blank.search(c)] == list(contract.WHITESPACE)
    assert [c for c in CODE_POINTS if control.search(c)] == [
        c for c in CODE_POINTS if contract.CONTROL_CHARACTERS.search(c)
    ]


def test_every_limit_names_a_setting() -> None:
    limits = EventLimits()
    fields = [*contract.ENVELOPE, *contract.SET_BY_GATEWAY, *contract.DATA_FIELDS]
    for field in fields:
        for bound in (field.max_chars, field.max_keys, field.max_depth):
            if isinstance(bound, str):
                assert bound in EventLimits.model_fields, (field.name, bound)
                assert contract.limit(bound, limits) == getattr(limits, bound)
        if field.optional_when:
            assert isinstance(getattr(limits, field.optional_when), bool)
