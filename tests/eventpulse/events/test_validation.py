"""The shared validator: every kind of bad input gets its own reason and field."""

import orjson
import pytest

from eventpulse.config.events import EventLimits
from eventpulse.events import EventValidator, Rejection, RejectReason, ValidEvent

NOW = 1_795_000_000_000


def wire(**overrides) -> bytes:
    doc = {
        "id": "e-1",
        "timestamp": NOW - 1000,
        "type": "user_action",
        "source": "web_app",
        "data": {"user_id": "12345", "action": "click", "latency_ms": 12.5, "metadata": {}},
        "tenant": "acme",
        "received_at": NOW,
    }
    doc.update(overrides)
    return orjson.dumps(doc)


def nested(levels: int) -> object:
    """A value with ``levels`` arrays inside one another (inside ``data``: one level more)."""
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
def validator() -> EventValidator:
    return EventValidator(EventLimits())


def test_valid_event_derives_metrics_and_keeps_unknown_fields(validator: EventValidator) -> None:
    event = validator.parse_wire(wire(new_field={"a": 1}))
    assert isinstance(event, ValidEvent)
    assert (event.tenant, event.id, event.timestamp_ms, event.user_id) == ("acme", "e-1", NOW - 1000, "12345")
    assert event.latency_ms == 12.5 and event.is_error is False
    assert event.extra == {"new_field": {"a": 1}}
    assert event.partition_key() == b"acme:12345"
    again = validator.parse_wire(event.to_wire())
    assert again == event


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (b'{"type": "x",', RejectReason.MALFORMED_JSON, None),
        (b"[1, 2]", RejectReason.NOT_AN_OBJECT, None),
        (wire(tenant=None), RejectReason.MISSING_TENANT, "tenant"),
        (orjson.dumps({"tenant": "t", "type": "a", "source": "b"}), RejectReason.MISSING_FIELD, "timestamp"),
        (wire(type=7), RejectReason.WRONG_TYPE, "type"),
        (wire(timestamp="1640995200000"), RejectReason.INVALID_VALUE, "timestamp"),
        (wire(timestamp=True), RejectReason.WRONG_TYPE, "timestamp"),
        (wire(timestamp=[1]), RejectReason.WRONG_TYPE, "timestamp"),
        (wire(data=[1]), RejectReason.WRONG_TYPE, "data"),
        (wire(data={"user_id": True}), RejectReason.WRONG_TYPE, "data.user_id"),
        (wire(data={"latency_ms": "slow"}), RejectReason.WRONG_TYPE, "data.latency_ms"),
        (wire(data={"latency_ms": -1}), RejectReason.INVALID_VALUE, "data.latency_ms"),
        (wire(type="  "), RejectReason.INVALID_VALUE, "type"),
        (wire(type="user\x00action"), RejectReason.INVALID_VALUE, "type"),
        (wire(source="web\napp"), RejectReason.INVALID_VALUE, "source"),
        (wire(id="e\x7f1"), RejectReason.INVALID_VALUE, "id"),
        (wire(tenant="ac\x1bme"), RejectReason.INVALID_VALUE, "tenant"),
        (wire(data={"user_id": "u\x9b1"}), RejectReason.INVALID_VALUE, "data.user_id"),
        (b'{"a":' + b"[" * 1100 + b"]" * 1100 + b"}", RejectReason.FIELD_TOO_LARGE, None),
        (wire(source="s" * 500), RejectReason.FIELD_TOO_LARGE, "source"),
        (wire(data={"a": nested(32)}), RejectReason.FIELD_TOO_LARGE, "data"),
        (wire(schema_version=70_000), RejectReason.INVALID_VALUE, "schema_version"),
        (wire(data={"blob": "x" * 70_000}), RejectReason.PAYLOAD_TOO_LARGE, None),
        (wire(timestamp=NOW + 3_600_000), RejectReason.TIMESTAMP_IN_FUTURE, "timestamp"),
        (wire(timestamp=NOW - 90 * 86_400_000), RejectReason.TIMESTAMP_TOO_OLD, "timestamp"),
        (wire(timestamp=-5), RejectReason.INVALID_VALUE, "timestamp"),
    ],
)
def test_bad_input_is_rejected_with_reason_and_field(
    validator: EventValidator, payload: bytes, reason: RejectReason, field: str | None
) -> None:
    result = validator.parse_wire(payload)
    assert isinstance(result, Rejection), result
    assert (result.reason, result.field) == (reason, field)
    assert result.detail
    assert result.as_dict()["reason"] == reason.value


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"type": "error"}, True),
        ({"data": {"error": True}}, True),
        ({"data": {"status_code": 503}}, True),
        ({"data": {"status_code": 404}}, False),
        ({"data": {"error": "no"}}, False),
    ],
)
def test_error_definition(validator: EventValidator, overrides: dict, expected: bool) -> None:
    event = validator.parse_wire(wire(**overrides))
    assert isinstance(event, ValidEvent)
    assert event.is_error is expected


def test_tenant_comes_from_outside_the_body(validator: EventValidator) -> None:
    body = orjson.loads(wire(tenant="evil"))
    event = validator.parse_object(body, tenant="acme", received_at_ms=NOW)
    assert isinstance(event, ValidEvent) and event.tenant == "acme"
    assert "tenant" not in event.extra


def test_missing_id_is_generated_or_taken_from_default(validator: EventValidator) -> None:
    body = orjson.loads(wire())
    del body["id"]
    generated = validator.parse_object(body, tenant="acme", received_at_ms=NOW)
    assert isinstance(generated, ValidEvent) and len(generated.id) == 36
    other = validator.parse_object(body, tenant="acme", received_at_ms=NOW)
    assert other.id != generated.id
    fixed = validator.parse_wire(orjson.dumps({**body, "tenant": "acme"}), default_id="events:2:77")
    assert isinstance(fixed, ValidEvent) and fixed.id == "events:2:77"


def test_replayed_backlog_is_checked_against_receive_time(validator: EventValidator) -> None:
    old = NOW - 60 * 86_400_000
    event = validator.parse_wire(wire(timestamp=old - 1000, received_at=old))
    assert isinstance(event, ValidEvent)


def test_limits_come_from_settings() -> None:
    strict = EventValidator(EventLimits(max_event_bytes=100))
    result = strict.parse_wire(wire())
    assert isinstance(result, Rejection) and result.reason is RejectReason.PAYLOAD_TOO_LARGE


def test_data_as_deep_as_allowed_is_kept_and_encodable(validator: EventValidator) -> None:
    """32 levels pass (and encode: orjson writes at most 255); 33 are refused, see above."""
    deep = nested(31)
    event = validator.parse_wire(wire(data={"a": deep}))
    assert isinstance(event, ValidEvent)
    assert orjson.loads(event.to_wire())["data"] == {"a": deep}
    assert event.raw_row(0, 0)[8] == orjson.dumps({"a": deep}).decode()
