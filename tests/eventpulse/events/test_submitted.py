"""The fast path for submitted events agrees with `EventValidator.parse_object`, on valid and odd input."""

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventpulse.config.events import EventLimits
from eventpulse.events import EventValidator, Rejection, ValidEvent
from eventpulse.events.submitted import SubmittedEventParser
from tests.support.event_strategies import (
    CONTROLLED,
    LIMITS,
    NESTED,
    NOW,
    SCALARS,
    TENANT,
    as_decoded,
    common_event,
    events,
)
from tests.support.examples import examples

VALIDATOR = EventValidator(LIMITS)
NEW_ID = "generated-id"


def exact(obj: Any, tenant: str = TENANT) -> ValidEvent | Rejection:
    return VALIDATOR.parse_object(obj, tenant=tenant, received_at_ms=NOW, default_id=NEW_ID)


PARSER = SubmittedEventParser(VALIDATOR, new_id=lambda: NEW_ID)


def wire_of(event: ValidEvent) -> bytes | str:
    try:
        return event.to_wire()
    except TypeError as exc:  # orjson encodes at most 255 levels; it decodes 1024 (see the report)
        return str(exc)


def assert_same(obj: Any, tenant: str = TENANT) -> None:
    expected = exact(obj, tenant)
    fast = PARSER.fast_path(obj, tenant=tenant, received_at_ms=NOW)
    if fast is not None:  # the fast path only ever accepts, and accepts only what the rules accept
        assert isinstance(expected, ValidEvent), (obj, expected)
        assert fast == expected
        assert wire_of(fast) == wire_of(expected)
        assert fast.partition_key() == expected.partition_key()
    assert PARSER.parse(obj, tenant=tenant, received_at_ms=NOW) == expected
    assert PARSER.parse_all([obj, obj], tenant=tenant, received_at_ms=NOW) == [expected, expected]


@settings(max_examples=examples(1500), suppress_health_check=[HealthCheck.too_slow])
@given(events())
@example(common_event(id="e-1"))
@example(common_event(timestamp=NOW - 3_600_000))
@example(common_event(timestamp=NOW + 60_000))
@example(common_event(data={"user_id": 2**64 - 1, "status_code": 500.0}))
@example(common_event(data={"latency_ms": 0}))
def test_fast_path_agrees_with_parse_object(doc: dict[str, Any]) -> None:
    assert_same(as_decoded(doc))


@settings(max_examples=examples(300))
@given(st.one_of(st.sampled_from(["acme", "", " ", "t" * 12, "t" * 13, "é", "ac\x00me"]), CONTROLLED), events())
def test_tenant_is_checked_like_parse_object(tenant: str, doc: dict[str, Any]) -> None:
    assert_same(as_decoded(doc), tenant)


# Odd JSON, written as text: the gateway decodes bodies with orjson, so both paths see the same object.
ODD_BODIES = [
    '{"type":"é日本","source":"\\u00e9","timestamp":%d,"data":{"user_id":"ü","k":"\\ud83d\\ude00"}}',
    '{"type":"a","source":"b","timestamp":%d,"data":{"user_id":18446744073709551615}}',
    '{"type":"a","source":"b","timestamp":%d,"data":{"user_id":18446744073709551616}}',  # a float
    '{"type":"a","source":"b","timestamp":%d,"data":{"latency_ms":1e308,"n":-9223372036854775809}}',
    '{"type":"a","type":"b","source":"b","timestamp":%d}',  # duplicate keys: the last wins
    '{"type":"a","source":"b","timestamp":%d,"data":{"user_id":"x","user_id":7}}',
    '{"type":"a","source":"b","timestamp":%d,"data":{},"data":[]}',
    '{"type":"a","source":"b","timestamp":%d,"data":{"d":' + "[" * 500 + "]" * 500 + "}}",
    '{"type":true,"source":"b","timestamp":%d}',
    '{"type":"a","source":"b","timestamp":%d,"schema_version":true}',
    '{"type":"a","source":"b","timestamp":%d,"schema_version":1.0}',
    '{"type":"a","source":"b","timestamp":%d,"data":{"user_id":false,"latency_ms":true}}',
    '{"type":"a","source":"b","timestamp":%d,"data":{"latency_ms":null,"status_code":true}}',
    '{"type":"a","source":"b","timestamp":%d,"id":null,"tenant":7,"received_at":"x"}',
    '{"type":"a","source":"b","timestamp":%d,"ID":"x"}',
]


@pytest.mark.parametrize("text", ODD_BODIES)
@pytest.mark.parametrize("timestamp", [NOW, NOW + 60_001, 18446744073709551615, 18446744073709551616])
def test_odd_json_is_decided_the_same_way(text: str, timestamp: int) -> None:
    assert_same(orjson.loads(text % timestamp))


@given(st.one_of(SCALARS, st.lists(SCALARS, max_size=2), NESTED))
def test_anything_that_is_not_an_event_is_decided_the_same_way(value: Any) -> None:
    assert_same(as_decoded(value))


def test_the_common_events_take_the_fast_path() -> None:
    """Otherwise the fast path would be dead code that only passes the agreement tests."""
    parser = SubmittedEventParser(EventValidator(EventLimits()))
    for doc in (
        common_event(),
        common_event(id="e-1", schema_version=1, data={"user_id": 42, "metadata": {"a": [1, "é"]}}),
        common_event(type="error", data={}),
        common_event(data={"status_code": 503, "latency_ms": 3}),
    ):
        event = parser.fast_path(as_decoded(doc), tenant=TENANT, received_at_ms=NOW)
        assert isinstance(event, ValidEvent), doc
    generated = parser.fast_path(as_decoded(common_event()), tenant=TENANT, received_at_ms=NOW)
    assert generated is not None and len(generated.id) == 36  # a UUIDv7 when the client sent no id


@pytest.mark.parametrize("field", ["type", "source", "id", "data.user_id", "tenant"])
@pytest.mark.parametrize("char", ["\x00", "\x1f", "\x7f", "\x9b"])
def test_control_characters_are_refused_with_the_field(field: str, char: str) -> None:
    doc = common_event(id="e-1")
    tenant = TENANT
    if field == "tenant":
        tenant = f"ac{char}me"
    elif field == "data.user_id":
        doc["data"]["user_id"] = f"u{char}1"
    else:
        doc[field] = f"x{char}y"
    result = PARSER.parse(as_decoded(doc), tenant=tenant, received_at_ms=NOW)
    assert isinstance(result, Rejection)
    assert (result.reason.value, result.field) == ("invalid_value", field)
    assert f"U+{ord(char):04X} at position" in result.detail


@pytest.mark.parametrize("name", ["a\xa0b", "a\u2028b", "a\u200bb", "é日本"])
def test_unprintable_names_that_are_no_control_characters_are_kept(name: str) -> None:
    result = PARSER.parse(as_decoded(common_event(type=name, source=name)), tenant=TENANT, received_at_ms=NOW)
    assert isinstance(result, ValidEvent) and result.type == name
