"""Timestamps as people send them: ISO 8601 strings, seconds by mistake, none at all."""

import orjson
import pytest

from eventpulse.config.events import EventLimits
from eventpulse.events import EventValidator, Rejection, RejectReason, ValidEvent
from eventpulse.events.validation import parse_iso_timestamp

NOW = 1_795_000_000_000  # 2026-11-18T11:06:40Z


def event(**fields: object) -> dict[str, object]:
    return {"type": "page_view", "source": "web", "data": {"user_id": "u1"}, **fields}


def parse(validator: EventValidator, doc: dict[str, object]) -> ValidEvent | Rejection:
    return validator.parse_object(doc, tenant="acme", received_at_ms=NOW)


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("2026-11-18T11:06:40Z", NOW),
        ("2026-11-18T11:06:40.123Z", NOW + 123),
        ("2026-11-18T11:06:40.123456Z", NOW + 123),  # sub-millisecond digits truncated
        ("2026-11-18T12:06:40+01:00", NOW),
        ("2026-11-18T06:06:40-05:00", NOW),
        ("2026-11-18T11:06:40", NOW),  # no offset: UTC
        ("2026-11-18 11:06:40.5", NOW + 500),
        ("20261118T110640Z", NOW),  # the basic format
    ],
)
def test_iso_8601_strings_are_normalised_to_epoch_milliseconds(text: str, expected_ms: int) -> None:
    validator = EventValidator(EventLimits())
    result = parse(validator, event(timestamp=text))
    assert isinstance(result, ValidEvent), result
    assert result.timestamp_ms == expected_ms


@pytest.mark.parametrize("text", ["1640995200000", "yesterday", "2026-11-18", "2026-13-01T00:00:00Z", ""])
def test_other_strings_are_refused_with_the_accepted_forms_named(text: str) -> None:
    result = parse(EventValidator(EventLimits()), event(timestamp=text))
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (RejectReason.INVALID_VALUE, "timestamp")
    assert "epoch milliseconds or an ISO 8601" in result.detail


def test_an_iso_string_outside_the_window_is_refused_like_a_number() -> None:
    result = parse(EventValidator(EventLimits()), event(timestamp="2020-01-01T00:00:00Z"))
    assert isinstance(result, Rejection) and result.reason is RejectReason.TIMESTAMP_TOO_OLD


@pytest.mark.parametrize(
    ("timestamp", "reason", "unit"),
    [
        (NOW // 1000, RejectReason.TIMESTAMP_TOO_OLD, "seconds"),
        (NOW / 1000 - 0.5, RejectReason.TIMESTAMP_TOO_OLD, "seconds"),
        (NOW * 1000, RejectReason.TIMESTAMP_IN_FUTURE, "microseconds"),
        (NOW * 1_000_000, RejectReason.TIMESTAMP_IN_FUTURE, "nanoseconds"),
    ],
)
def test_a_number_in_another_unit_gets_a_hint(timestamp: float, reason: RejectReason, unit: str) -> None:
    result = parse(EventValidator(EventLimits()), event(timestamp=timestamp))
    assert isinstance(result, Rejection) and result.reason is reason
    assert f"looks like epoch {unit}" in result.detail


def test_a_plainly_old_millisecond_timestamp_gets_no_unit_hint() -> None:
    result = parse(EventValidator(EventLimits()), event(timestamp=NOW - 90 * 86_400_000))
    assert isinstance(result, Rejection) and result.reason is RejectReason.TIMESTAMP_TOO_OLD
    assert "looks like" not in result.detail


def test_a_missing_timestamp_is_refused_by_default() -> None:
    result = parse(EventValidator(EventLimits()), event())
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (RejectReason.MISSING_FIELD, "timestamp")


def test_a_missing_timestamp_takes_the_receive_time_when_the_setting_allows() -> None:
    validator = EventValidator(EventLimits(missing_timestamp_is_receive_time=True))
    result = parse(validator, event())
    assert isinstance(result, ValidEvent) and result.timestamp_ms == NOW


def test_the_topic_path_applies_the_same_rules() -> None:
    validator = EventValidator(EventLimits())
    message = {**event(timestamp="2026-11-18T11:06:40.250Z"), "tenant": "acme", "received_at": NOW}
    result = validator.parse_wire(orjson.dumps(message))
    assert isinstance(result, ValidEvent) and result.timestamp_ms == NOW + 250
    seconds = validator.parse_wire(orjson.dumps({**message, "timestamp": NOW // 1000}))
    assert isinstance(seconds, Rejection) and "looks like epoch seconds" in seconds.detail


def test_parse_iso_timestamp_refuses_long_or_dateless_text() -> None:
    assert parse_iso_timestamp("2026-11-18T11:06:40Z" + " " * 60) is None
    assert parse_iso_timestamp("12345") is None
