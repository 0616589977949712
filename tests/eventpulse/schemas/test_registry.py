"""The compiled registry and the validators that read it: the gateway's fast path and the wire-batch fast path
check events of a registered type too and hand those that break it to the general path, which refuses them
with the JSON pointer of the offending value."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from eventpulse.config.events import EventLimits
from eventpulse.events import EventValidator, Rejection, RejectReason, ValidEvent
from eventpulse.events.submitted import SubmittedEventParser
from eventpulse.events.wire_batch import validate_wire_batch
from eventpulse.schemas.registry import SchemaRegistry, compile_snapshot
from eventpulse.schemas.store import SchemaError, SchemaVersion, check_schema, fingerprint

SCHEMA = {
    "type": "object",
    "properties": {
        "sku": {"type": "string"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"n/a~": {"type": "integer"}}}},
    },
    "required": ["sku"],
}


def version(schema: Any = SCHEMA, number: int = 3, tenant: str = "acme", kind: str = "purchase") -> SchemaVersion:
    return SchemaVersion(tenant, kind, number, schema, fingerprint(schema))


NOW = int(time.time() * 1000)


def body(data: dict[str, Any], kind: str = "purchase") -> dict[str, Any]:
    return {"type": kind, "source": "web", "timestamp": NOW, "data": {"user_id": "u1", **data}}


@pytest.mark.parametrize(
    ("data", "pointer"),
    [
        ({}, "/data/sku"),  # missing: where it should be
        ({"sku": 5}, "/data/sku"),
        ({"sku": "a", "items": [{}, {"n/a~": "x"}]}, "/data/items/1/n~1a~0"),  # RFC 6901 escapes
    ],
)
def test_a_violation_names_its_json_pointer(data: dict[str, Any], pointer: str) -> None:
    snapshot = compile_snapshot([version()])
    refused = snapshot.check("acme", "purchase", {"user_id": "u1", **data})
    assert isinstance(refused, Rejection) and refused.reason is RejectReason.SCHEMA_VIOLATION
    assert refused.field == pointer and "schema v3 of 'purchase'" in refused.detail
    assert snapshot.check("acme", "purchase", {"sku": "a"}) is None
    assert snapshot.check("globex", "purchase", {}) is None and snapshot.check("acme", "other", {}) is None
    assert (snapshot.version_of("acme", "purchase"), snapshot.version_of("acme", "other")) == (3, 0)


def test_compiled_validators_are_kept_while_the_version_stays() -> None:
    first = compile_snapshot([version()])
    again = compile_snapshot([version()], first)
    newer = compile_snapshot([version(number=4)], first)
    key = ("acme", "purchase")
    assert again.schemas[key] is first.schemas[key] and newer.schemas[key] is not first.schemas[key]


def test_the_gateway_parser_checks_registered_types_only() -> None:
    plain = SubmittedEventParser(EventValidator(EventLimits()))
    checked = SubmittedEventParser(EventValidator(EventLimits(), SchemaRegistry.of([version()])))
    violating = body({"sku": 5})
    assert isinstance(plain.parse(violating, tenant="acme", received_at_ms=NOW), ValidEvent)  # control
    assert plain.fast_path(violating, tenant="acme", received_at_ms=NOW) is not None
    assert checked.fast_path(violating, tenant="acme", received_at_ms=NOW) is None  # handed to the exact path
    assert checked.fast_path(body({"sku": "a"}), tenant="acme", received_at_ms=NOW) is not None  # passes: stays
    refused = checked.parse(violating, tenant="acme", received_at_ms=NOW)
    assert isinstance(refused, Rejection) and refused.field == "/data/sku"
    assert isinstance(checked.parse(body({"sku": "a"}), tenant="acme", received_at_ms=NOW), ValidEvent)
    other = body({"sku": 5}, kind="page_view")  # no schema: the fast path as before
    assert checked.fast_path(other, tenant="acme", received_at_ms=NOW) is not None
    assert checked.fast_path(violating, tenant="globex", received_at_ms=NOW) is not None


def test_the_wire_batch_fast_path_hands_violations_to_the_general_path() -> None:
    def wire(data: dict[str, Any], kind: str = "purchase", tenant: str = "acme") -> bytes:
        return orjson.dumps(
            {**body(data, kind), "id": f"e{len(data)}", "tenant": tenant, "received_at": NOW, "schema_version": 1}
        )

    payloads = [
        wire({"sku": "a"}),
        wire({"sku": 5}),
        wire({"sku": 5}, kind="page_view"),
        wire({"sku": 5}, tenant="globex"),
    ]
    plain = validate_wire_batch(EventValidator(EventLimits()), payloads, str)
    assert len(plain) == 4 and not plain.rejections  # control: without the registry every one passes
    checked = validate_wire_batch(EventValidator(EventLimits(), SchemaRegistry.of([version()])), payloads, str)
    assert checked.index == [0, 2, 3]
    ((position, refused),) = checked.rejections
    assert position == 1 and refused.reason is RejectReason.SCHEMA_VIOLATION and refused.field == "/data/sku"


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"type": "strnig"}, "not a valid JSON Schema"),
        ({"type": "string"}, "must allow object"),
        ([1], "is an object"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "draft 2020-12"),
        ({"properties": {"a": {"$ref": "https://example.com/a.json"}}}, "not a valid JSON Schema"),
    ],
)
def test_schemas_that_cannot_be_registered(schema: Any, why: str) -> None:
    with pytest.raises(SchemaError, match=why):
        check_schema(schema)
    check_schema(SCHEMA)
    with pytest.raises(SchemaError, match="larger than"):
        check_schema(SCHEMA, max_bytes=10)


def test_a_pinned_registry_keeps_its_snapshot() -> None:
    registry = SchemaRegistry.of([version()])
    pinned = registry.pinned()
    registry.snapshot = compile_snapshot([version(number=9)])
    assert pinned.snapshot.version_of("acme", "purchase") == 3
