"""The OpenAPI document's ``Event`` schema and the validators give the same verdict on generated events.

The schema is the one the gateway serves (`build_openapi`), checked by two JSON Schema 2020-12
validators: ``jsonschema`` (Python's ``re`` for patterns) and ``jsonschema_rs`` (ECMA-262 regular
expressions, the standard's dialect). The validators are the three that decide an event: the general
one (`EventValidator.parse_object`, with the gateway's size check), the gateway's parser
(`body_decoding.check_one`, fast path and all) and the dataflow's wire-batch fast path
(`validate_wire_batch`, on the message the gateway writes to the topic).

They agree event by event, except on the rules JSON Schema cannot state, which the schema names in
``x-unchecked-rules``: `BREAKS` has one test per name (and no other name), an event breaking one of
them must be refused by every validator, and nothing else is excused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import jsonschema
import jsonschema_rs
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings

from eventpulse.config.events import EventLimits
from eventpulse.config.gateway import GatewaySettings
from eventpulse.events import EventValidator, Rejection, ValidEvent
from eventpulse.events.json_schema import UNCHECKED_RULES
from eventpulse.events.submitted import SubmittedEventParser
from eventpulse.events.validation import exceeds_depth, parse_iso_timestamp
from eventpulse.events.wire_batch import validate_wire_batch
from gateway.body_decoding import check_one, encode_checked
from gateway.openapi import build_openapi
from tests.support.event_strategies import LIMITS, NOW, TENANT, as_decoded, common_event, events
from tests.support.examples import examples

# Small enough that generated events cross it now and then (a common event is ~200 bytes on the topic).
BYTES_LIMITS = LIMITS.model_copy(update={"max_event_bytes": 260})
LIMIT_SETS = {
    "timestamp required": BYTES_LIMITS,
    "timestamp optional": BYTES_LIMITS.model_copy(update={"missing_timestamp_is_receive_time": True}),
}


def event_schema(limits: EventLimits) -> dict[str, Any]:
    return build_openapi(GatewaySettings(), limits)["components"]["schemas"]["Event"]


class Judges:
    """Everything that gives a verdict on a submitted event under one set of limits."""

    def __init__(self, limits: EventLimits, schema: dict[str, Any] | None = None) -> None:
        self.limits = limits
        self.schema = schema if schema is not None else event_schema(limits)
        jsonschema.Draft202012Validator.check_schema(self.schema)
        self.schema_validators = [
            jsonschema.Draft202012Validator(self.schema).is_valid,
            jsonschema_rs.Draft202012Validator(self.schema).is_valid,
        ]
        self.validator = EventValidator(limits)
        self.parser = SubmittedEventParser(self.validator, new_id=lambda: "generated-id")

    def schema_verdicts(self, doc: Any) -> list[bool]:
        """Each JSON Schema validator's verdict on the JSON text of ``doc`` (read exactly, big integers too)."""
        exact = json.loads(json.dumps(doc, ensure_ascii=False))
        return [is_valid(exact) for is_valid in self.schema_validators]

    def general(self, obj: Any) -> ValidEvent | Rejection:
        return self.validator.parse_object(obj, tenant=TENANT, received_at_ms=NOW, default_id="generated-id")

    def verdicts(self, doc: Any) -> dict[str, bool]:
        """Each validator's verdict on ``doc`` as the gateway decodes it (orjson)."""
        obj = as_decoded(doc)
        general = self.general(obj)
        gateway = check_one(obj, self.parser, TENANT, NOW, self.limits.max_event_bytes)
        wire = encode_checked(general, 1 << 40)  # the message the gateway writes; any other for a refused event
        if isinstance(wire, Rejection):
            wire = orjson.dumps({**obj, "tenant": TENANT, "received_at": NOW}) if isinstance(obj, dict) else b"[]"
        batch = validate_wire_batch(self.validator, [wire], lambda i: "generated-id")
        return {
            "general": not isinstance(encode_checked(general, self.limits.max_event_bytes), Rejection),
            "gateway parser": not isinstance(gateway, Rejection),
            "wire batch": len(batch) == 1,
        }


def _timestamp_ms(doc: dict[str, Any]) -> float | None:
    value = doc.get("timestamp")
    if isinstance(value, str):
        return parse_iso_timestamp(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def breaks_timestamp_window(doc: dict[str, Any], judges: Judges) -> bool:
    moment = _timestamp_ms(doc)
    limits = judges.limits
    low, high = NOW - limits.max_past_age_s * 1000, NOW + limits.max_future_skew_s * 1000
    return moment is not None and not (max(0, low) <= moment <= high and math.isfinite(moment))


def breaks_timestamp_text(doc: dict[str, Any], judges: Judges) -> bool:
    value = doc.get("timestamp")
    return isinstance(value, str) and parse_iso_timestamp(value) is None


def breaks_integer_form(doc: dict[str, Any], judges: Judges) -> bool:
    data = doc.get("data")
    values = [doc.get("schema_version"), data.get("user_id") if isinstance(data, dict) else None]
    return any(isinstance(v, float) and v.is_integer() for v in values)


def breaks_data_depth(doc: dict[str, Any], judges: Judges) -> bool:
    data = doc.get("data")
    return isinstance(data, dict) and exceeds_depth(data, judges.limits.max_data_depth)


def breaks_event_bytes(doc: dict[str, Any], judges: Judges) -> bool:
    """The event as written to the topic is over the limit (measured on what the gateway would write)."""
    event = judges.general(as_decoded(doc))
    wire = encode_checked(event, 1 << 40)
    return isinstance(wire, bytes) and len(wire) > judges.limits.max_event_bytes


BREAKS: dict[str, Callable[[dict[str, Any], Judges], bool]] = {
    "timestamp_window": breaks_timestamp_window,
    "timestamp_text": breaks_timestamp_text,
    "integer_form": breaks_integer_form,
    "data_depth": breaks_data_depth,
    "event_bytes": breaks_event_bytes,
}
"""One test per rule the schema cannot state, keyed by the name the schema gives it."""

JUDGES = {name: Judges(limits) for name, limits in LIMIT_SETS.items()}


def test_the_excused_rules_are_exactly_those_the_schema_names() -> None:
    for judges in JUDGES.values():
        assert set(judges.schema["x-unchecked-rules"]) == set(BREAKS) == set(UNCHECKED_RULES)
        for name in BREAKS:
            assert f"`{name}`" in judges.schema["description"]


def assert_agree(doc: Any, judges: Judges) -> str:
    """The verdicts agree on ``doc``; what it is ("valid", "invalid" or the rules excused)."""
    by_schema = judges.schema_verdicts(doc)
    assert len(set(by_schema)) == 1, ("the two JSON Schema validators disagree", doc, by_schema)
    verdicts = judges.verdicts(doc)
    broken = [name for name, breaks in BREAKS.items() if isinstance(doc, dict) and breaks(doc, judges)]
    expected = by_schema[0] and not broken
    assert verdicts == dict.fromkeys(verdicts, expected), (doc, by_schema, broken, verdicts)
    return ",".join(broken) if by_schema[0] and broken else "valid" if expected else "invalid"


SEEN: dict[str, set[str]] = {name: set() for name in JUDGES}


@pytest.mark.parametrize("limits_name", sorted(JUDGES))
@settings(max_examples=examples(1500), deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(doc=events())
@example(doc=common_event())
@example(doc=common_event(id=None, data={"user_id": 2**64 - 1}))
@example(doc=common_event(id="e\n"))  # a trailing newline: what an anchored pattern would let through
@example(doc=common_event(type=" \u3000"))
@example(doc=common_event(timestamp=NOW + 60_001))
@example(doc=common_event(timestamp="2026-11-18T25:00:00Z"))
@example(doc=common_event(schema_version=1.0))
@example(doc=common_event(data={"a": {"b": {"c": {}}}}))
@example(doc=common_event(data={"user_id": "u1", "pad": "x" * 200}))
def test_schema_and_validators_agree_on_generated_events(limits_name: str, doc: Any) -> None:
    SEEN[limits_name].add(assert_agree(doc, JUDGES[limits_name]))


def test_the_generated_events_reach_every_verdict() -> None:
    """Run after the property test (same module, file order): both verdicts and every excused rule
    occurred, so the agreement above was not reached on one kind of event only."""
    for name, seen in SEEN.items():
        if not seen:
            pytest.skip("the property test did not run in this session (selected alone)")
        reasons = {rule for kinds in seen for rule in kinds.split(",")}
        assert {"valid", "invalid", *BREAKS} <= reasons, (name, seen)


@pytest.mark.parametrize(
    ("rule", "doc"),
    [
        ("timestamp_window", common_event(timestamp=NOW - 3_600_001)),
        ("timestamp_text", common_event(timestamp="2026-11-18X11:06:40T")),
        ("integer_form", common_event(schema_version=1.0)),
        ("integer_form", common_event(data={"user_id": 7.0})),
        ("data_depth", common_event(data={"a": [[[1]]]})),
        ("event_bytes", common_event(data={"pad": "x" * 300})),
    ],
)
def test_each_excused_rule_is_one_the_schema_misses_and_every_validator_applies(rule: str, doc: Any) -> None:
    """Negative controls for the excuses: each event is valid by the schema, breaks only its rule,
    and every validator refuses it."""
    judges = JUDGES["timestamp required"]
    assert judges.schema_verdicts(doc) == [True, True]
    assert [name for name, breaks in BREAKS.items() if breaks(doc, judges)] == [rule]
    assert not any(judges.verdicts(doc).values())


def test_a_schema_without_the_control_character_rule_disagrees() -> None:
    """Negative control for the agreement: the hand-written schema this one replaced had no rule on
    control characters; the same check then fails on an event whose type holds one."""
    schema = event_schema(BYTES_LIMITS)
    del schema["properties"]["type"]["not"]
    with pytest.raises(AssertionError):
        assert_agree(common_event(type="a\x00b"), Judges(BYTES_LIMITS, schema))
    assert_agree(common_event(type="a\x00b"), JUDGES["timestamp required"])


def test_the_served_schema_follows_the_limits() -> None:
    limits = EventLimits(max_name_chars=9, max_id_chars=7, max_data_keys=3, max_data_depth=5)
    schema = event_schema(limits)
    props = schema["properties"]
    assert (props["type"]["maxLength"], props["source"]["maxLength"], props["id"]["maxLength"]) == (9, 9, 7)
    assert props["data"]["maxProperties"] == 3 and props["data"]["x-maxDepth"] == 5
    assert props["data"]["properties"]["user_id"]["maximum"] == 10**9 - 1
    assert schema["required"] == ["type", "source", "timestamp"]
    optional = event_schema(limits.model_copy(update={"missing_timestamp_is_receive_time": True}))
    assert optional["required"] == ["type", "source"] and "null" in optional["properties"]["timestamp"]["type"]
