"""A source's mapping: a third party's JSON to one event, or why not (`unmappable`)."""

import pytest

from eventpulse.events import Rejection, RejectReason
from eventpulse.webhooks.mapping import Mapping, MappingError

STRIPE = {
    "type": "$.type",
    "timestamp": "$.created",
    "user_id": "$.data.object.customer",
    "id": "$.id",
    "data": {"amount": "$.data.object.amount", "currency": "$.data.object.currency", "plan": {"value": "$pro"}},
}
PAYLOAD = {
    "id": "evt_1",
    "type": "charge.succeeded",
    "created": 1_764_000_000,
    "data": {"object": {"customer": "cus_9", "amount": 1200, "currency": "eur"}},
}


def test_a_payload_maps_to_an_event() -> None:
    event = Mapping.parse(STRIPE).apply(PAYLOAD, source="acme-stripe", delivery_id="d-1", signed_at_s=5)
    assert event == {
        "id": "acme-stripe:evt_1",  # the mapped id beats the delivery id, namespaced by the source
        "type": "charge.succeeded",
        "source": "acme-stripe",
        "timestamp": 1_764_000_000_000,  # unix seconds to milliseconds
        "data": {"user_id": "cus_9", "amount": 1200, "currency": "eur", "plan": "$pro"},
    }


def test_defaults_are_the_delivery_id_and_the_signed_time() -> None:
    mapping = Mapping.parse({"type": "order", "source": "$.shop", "data": {"absent": "$.nope"}, "keep_payload": True})
    event = mapping.apply({"shop": "s1"}, source="hooks", delivery_id="d-7", signed_at_s=1_700_000_000)
    assert event == {
        "id": "hooks:d-7",
        "type": "order",
        "source": "s1",
        "timestamp": 1_700_000_000_000,
        "data": {"payload": {"shop": "s1"}},  # an optional data path that names nothing is left out
    }
    assert "id" not in mapping.apply({"shop": "s1"}, source="hooks", delivery_id=None, signed_at_s=1)


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (1_764_000_000, 1_764_000_000_000),
        (1_764_000_000.25, 1_764_000_000_250),
        (1_764_000_000_123, 1_764_000_000_123),
        ("1764000000", 1_764_000_000_000),
        ("2025-11-24T16:00:00Z", 1_764_000_000_000),
        ("2025-11-24T17:00:00+01:00", 1_764_000_000_000),
        ("2025-11-24T16:00:00", 1_764_000_000_000),  # no offset: UTC
    ],
)
def test_timestamps_in_seconds_milliseconds_or_iso(value: object, ms: int) -> None:
    event = Mapping.parse({"type": "t", "timestamp": "$.at"}).apply(
        {"at": value}, source="s", delivery_id=None, signed_at_s=0
    )
    assert isinstance(event, dict) and event["timestamp"] == ms


@pytest.mark.parametrize(
    ("payload", "field", "detail"),
    [
        ({"created": 1}, "type", "$.type names nothing"),
        ({"type": {"a": 1}, "created": 1}, "type", "is a dict"),
        ({"type": "t", "created": "yesterday"}, "timestamp", "not a number or an ISO-8601 date"),
        ({"type": "t", "created": True}, "timestamp", "not a time"),
        ({"type": "t"}, "timestamp", "$.created names nothing"),
        ({"type": "t", "created": 1, "id": None, "data": {"object": {"customer": "c"}}}, "id", "is a NoneType"),
        ({"type": "t", "created": 1, "id": "e", "data": {}}, "user_id", "names nothing"),
    ],
)
def test_what_cannot_be_mapped_says_which_field_and_why(payload: dict, field: str, detail: str) -> None:
    why = Mapping.parse(STRIPE).apply(payload, source="s", delivery_id=None, signed_at_s=0)
    assert isinstance(why, Rejection)
    assert why.reason is RejectReason.UNMAPPABLE and why.field == field and detail in why.detail


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({}, "type is required"),
        ({"type": "$.a[*]"}, "type: '$.a[*]'"),
        ({"type": "t", "colour": "$.c"}, "unknown key 'colour'"),
        ({"type": "t", "data": ["$.a"]}, "data: an object"),
        ({"type": "t", "data": {"user_id": "$.u"}}, "map it as user_id"),
        ({"type": "t", "user_id": None}, "user_id: a path"),
        ({"type": "t", "keep_payload": "yes"}, "keep_payload"),
        ([], "a mapping is an object"),
    ],
)
def test_an_invalid_mapping_is_refused_with_every_problem(document: object, problem: str) -> None:
    with pytest.raises(MappingError, match=None) as refused:
        Mapping.parse(document)
    assert problem in str(refused.value)
