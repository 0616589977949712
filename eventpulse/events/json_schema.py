"""The event contract (`eventpulse.events.contract`) as JSON Schema 2020-12, the dialect of OpenAPI 3.1.

`event_schema(limits)` is the ``Event`` schema of the gateway's OpenAPI document: an event as a client
submits it. Every rule of the contract that JSON Schema can state is stated; the few it cannot are
named in `UNCHECKED_RULES` and listed, with why, in the schema's ``x-unchecked-rules`` and its
``description``; the limits behind them are ``x-`` extensions beside the field they bound. An event the schema refuses, the validators refuse with the same verdict; one it
accepts they accept unless it breaks one of those named rules
(``tests/gateway/test_event_contract.py`` checks both on generated events).

JSON Schema's ``pattern`` is searched for anywhere in the string (ECMA-262 in the standard,
``re.search`` in Python's validators), so every pattern here is unanchored: "holds no control
character" is ``not: {pattern: "[controls]"}``, since an anchored ``^[^controls]*$`` would let a
trailing newline through in Python (``$`` matches before it).
"""

from __future__ import annotations

from typing import Any

from eventpulse.config.events import EventLimits
from eventpulse.events import contract
from eventpulse.events.contract import Kind

UNCHECKED_RULES: dict[str, str] = {
    "timestamp_window": "`timestamp` lies within `max_past_age_s` before and `max_future_skew_s` after the receive "
    "time: the bound moves with the clock, and a schema is fixed.",
    "timestamp_text": "a `timestamp` string is an ISO 8601 date-time Python's `datetime.fromisoformat` reads "
    "(`format: date-time` is an annotation in JSON Schema 2020-12, and RFC 3339 is narrower).",
    "integer_form": "`schema_version` and an integer `data.user_id` are written without a fraction or exponent: "
    "JSON Schema's `integer` also takes `1.0`.",
    "data_depth": "`data` nests objects and arrays at most `max_data_depth` levels (`x-maxDepth`): a bounded "
    "nesting takes one schema per level, each referring to the next twice, which schema tools inline "
    "exponentially.",
    "event_bytes": "the event, as written to the topic, is at most `max_event_bytes` bytes (`x-maxEventBytes`): "
    "JSON Schema measures values, not their encoding.",
}
"""Rules of the contract JSON Schema cannot state, by name (``x-unchecked-rules`` in the schema).
The gateway answers an event breaking one with 422 (or 413 for ``event_bytes``), like any other."""

_CONTROL_PATTERN = f"[{contract.CONTROL_CLASS}]"
_NOT_BLANK_PATTERN = f"[^{contract.WHITESPACE_CLASS}]"


def _types(field: contract.Field, limits: EventLimits) -> list[str]:
    """JSON Schema's ``type`` for ``field``: null only where it means absent (an optional field)."""
    kinds = [k for k in field.takes(limits) if k is not Kind.NULL or not field.is_required(limits)]
    if Kind.NUMBER in kinds:  # JSON Schema's number includes its integers
        kinds = [k for k in kinds if k is not Kind.INTEGER]
    return [k.value for k in kinds]


def field_schema(field: contract.Field, limits: EventLimits) -> dict[str, Any]:
    """The JSON Schema of one contract field: its types and every limit JSON Schema can state."""
    schema: dict[str, Any] = {"description": field.description}
    if field.ignored:
        return schema  # any value: the gateway replaces it
    if field.kinds:
        types = _types(field, limits)
        schema["type"] = types[0] if len(types) == 1 else types
    if field.max_chars is not None:
        if field.not_blank:
            schema["minLength"] = 1
        schema["maxLength"] = contract.limit(field.max_chars, limits)
    patterns = [p for p in (field.pattern, _NOT_BLANK_PATTERN if field.not_blank else None) if p is not None]
    if len(patterns) == 1:
        schema["pattern"] = patterns[0]
    elif patterns:
        schema["allOf"] = [{"pattern": p} for p in patterns]
    if field.printable:  # "type": a pattern applies to strings only, so `not` alone would refuse a null id
        schema["not"] = {"type": "string", "pattern": _CONTROL_PATTERN}
    if field.digits:  # an integer whose decimal form fits max_chars (`contract.integer_range`)
        schema["minimum"], schema["maximum"] = contract.integer_range(field, limits)
    elif Kind.INTEGER in field.kinds and Kind.NUMBER not in field.kinds:
        least, most = contract.integer_range(field, limits)
        schema.update(minimum=least, maximum=most)
    else:
        if field.minimum is not None:
            schema["minimum"] = field.minimum
        if field.maximum is not None:
            schema["maximum"] = field.maximum
        if field.below is not None:
            schema["exclusiveMaximum"] = field.below
    if field.max_keys is not None:
        schema["maxProperties"] = contract.limit(field.max_keys, limits)
    if field.max_depth is not None:
        schema["x-maxDepth"] = contract.limit(field.max_depth, limits)
    if field.default is not None:
        schema["default"] = field.default
    return schema


def event_schema(limits: EventLimits) -> dict[str, Any]:
    """The ``Event`` schema: an event as a client submits it, under ``limits``."""
    properties = {f.key: field_schema(f, limits) for f in (*contract.ENVELOPE, *contract.SET_BY_GATEWAY)}
    properties["data"]["properties"] = {f.key: field_schema(f, limits) for f in contract.DATA_FIELDS}
    properties["data"]["additionalProperties"] = True
    past, future = limits.max_past_age_s, limits.max_future_skew_s
    properties["timestamp"]["format"] = "date-time"
    properties["timestamp"]["x-receiveTimeWindowSeconds"] = {"before": past, "after": future}
    if limits.missing_timestamp_is_receive_time:
        properties["timestamp"]["description"] += " When absent, the receive time."
    unchecked = " ".join(f"`{name}`: {text}" for name, text in UNCHECKED_RULES.items())
    return {
        "type": "object",
        "description": (
            "One event. Unknown top-level fields are kept. The tenant comes from the API key; a `tenant` or "
            f"`received_at` in the body is ignored. `timestamp` must lie within {past} s before and {future} s "
            "after the receive time. Generated from the event contract (`eventpulse/events/contract.py`); "
            f"the rules JSON Schema cannot state, also listed in `x-unchecked-rules`: {unchecked}"
        ),
        "required": [f.key for f in contract.ENVELOPE if f.is_required(limits)],
        "properties": properties,
        "additionalProperties": True,
        "x-maxEventBytes": limits.max_event_bytes,
        "x-unchecked-rules": dict(UNCHECKED_RULES),
        "examples": [
            {
                "id": "evt-000001",
                "timestamp": 1640995200000,
                "type": "user_action",
                "source": "web_app",
                "data": {"user_id": "12345", "action": "click", "metadata": {}},
            }
        ],
    }
