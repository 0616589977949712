"""Messages written straight to the topic by any producer: the tenant rule, the receive time, the fast path."""

import json

import orjson
import pytest

from eventpulse.config.events import EventLimits
from eventpulse.events import EventValidator, Rejection, RejectReason, ValidEvent
from eventpulse.events.validation import key_tenant, message_tenant
from eventpulse.events.wire_batch import validate_wire_batch

NOW = 1_795_000_000_000


def seed(**fields: object) -> dict[str, object]:
    """The seed format as another producer writes it: no tenant, ``received_at`` or ``schema_version``."""
    doc: dict[str, object] = {
        "id": "e-1",
        "timestamp": NOW - 1000,
        "type": "user_action",
        "source": "web_app",
        "data": {"user_id": "12345", "action": "click", "metadata": {}},
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


@pytest.fixture
def validator() -> EventValidator:
    return EventValidator(EventLimits())


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (b"acme:u1", "acme"),
        (b"acme:a:b", "acme"),
        (None, None),
        (b"", None),
        (b"acme", None),  # no ':': not the TENANT:USER form
        (b":u1", None),
        (b"\xffcme:u1", None),  # not UTF-8
        ("é:u".encode(), "é"),
    ],
)
def test_the_tenant_a_key_names(key: bytes | None, expected: str | None) -> None:
    assert key_tenant(key) == expected


@pytest.mark.parametrize(
    ("key", "body", "expected"),
    [
        (b"acme:u1", None, "acme"),  # the key alone
        (b"acme:u1", "acme", "acme"),  # both, agreeing
        (b"a:b:u1", "a:b", "a:b"),  # a tenant holding ':' is named in the body; the key begins with it
        (None, "acme", "acme"),  # no key: the body's
        (b"u1", "acme", "acme"),  # a key that names no tenant: the body's
        (b"acme:u1", "other", RejectReason.TENANT_MISMATCH),
        (b"acme:u1", "acm", RejectReason.TENANT_MISMATCH),
        (b"acme:u1", "", RejectReason.TENANT_MISMATCH),
        (b"acme:u1", 7, RejectReason.TENANT_MISMATCH),
        (None, None, RejectReason.MISSING_TENANT),
        (b"u1", "", RejectReason.MISSING_TENANT),
        (None, 7, RejectReason.MISSING_TENANT),
    ],
)
def test_the_key_is_authoritative(key: bytes | None, body: object, expected: str | RejectReason) -> None:
    result = message_tenant(key, body)
    if isinstance(expected, RejectReason):
        assert isinstance(result, Rejection) and (result.reason, result.field) == (expected, "tenant")
    else:
        assert result == expected


def test_a_mismatch_is_refused_and_its_dead_letter_is_the_keys(validator: EventValidator) -> None:
    payload = orjson.dumps(seed(tenant="other"))
    result = validator.parse_wire(payload, key=b"acme:12345", broker_ts_ms=NOW)
    assert isinstance(result, Rejection) and result.reason is RejectReason.TENANT_MISMATCH
    assert "'other'" in result.detail and "'acme'" in result.detail
    assert validator.dead_letter_tenant(b"acme:12345", payload) == "acme"


@pytest.mark.parametrize(
    ("key", "payload", "tenant"),
    [
        (b"acme:u1", b"{not json", "acme"),
        (None, orjson.dumps(seed(tenant="acme", type=7)), "acme"),  # refused for its type, filed under its tenant
        (b"a:b:u1", orjson.dumps(seed(tenant="a:b", type=7)), "a:b"),  # as the event would have been
        (None, b"{not json", ""),
        (None, orjson.dumps(seed(type=7)), ""),
        (b"t" * 200 + b":u", b"{}", "t" * 128),  # cut to max_name_chars
    ],
)
def test_dead_letters_are_filed_by_the_same_rule(validator: EventValidator, key, payload, tenant) -> None:
    assert validator.dead_letter_tenant(key, payload) == tenant


def test_the_receive_time_is_the_bodys_else_the_brokers(validator: EventValidator) -> None:
    from_broker = validator.parse_wire(orjson.dumps(seed()), key=b"acme:12345", broker_ts_ms=NOW + 5)
    assert isinstance(from_broker, ValidEvent) and from_broker.received_at_ms == NOW + 5
    from_body = validator.parse_wire(orjson.dumps(seed(received_at=NOW)), key=b"acme:1", broker_ts_ms=NOW + 5)
    assert isinstance(from_body, ValidEvent) and from_body.received_at_ms == NOW
    implausible = validator.parse_wire(orjson.dumps(seed(received_at=-5)), key=b"acme:1", broker_ts_ms=NOW + 5)
    assert isinstance(implausible, ValidEvent) and implausible.received_at_ms == NOW + 5
    # A backlog replayed a day later is judged against when it entered the log, not against now.
    old = seed(timestamp=NOW - 40 * 86_400_000)
    replayed = validator.parse_wire(orjson.dumps(old), key=b"acme:1", broker_ts_ms=NOW - 40 * 86_400_000 + 10)
    assert isinstance(replayed, ValidEvent)


def test_other_producers_messages_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fields in any order, no received_at/schema_version/id, tenant in the body or only in the key,
    other top-level fields, text that is not ASCII: no message goes to the general path."""
    validator = EventValidator(EventLimits())

    def refuse(*_args, **_kwargs):
        raise AssertionError("the general path was used")

    monkeypatch.setattr(validator, "parse_wire", refuse)
    docs = [
        seed(tenant="acme"),
        dict(reversed(list(seed(tenant="acme", schema_version=1).items()))),
        seed(id=None),
        seed(data={"user_id": "ü-7", "city": "Zürich", "note": "日本語 \U0001f600"}),
        seed(app_version="2.1", context={"ip": "10.0.0.1", "tags": ["a", "é"]}),
        seed(tenant="acme", received_at=NOW - 10),
    ]
    payloads = [orjson.dumps(d) for d in docs]
    payloads.append(json.dumps(seed()).encode())  # Python's json module: spaces, ensure_ascii
    keys = [b"acme:12345"] * len(payloads)
    keys[0] = None  # the body's tenant
    stamps = [NOW + k for k in range(len(payloads))]
    batch = validate_wire_batch(validator, payloads, lambda i: f"events:0:{i}", keys=keys, broker_ts=stamps)
    assert batch.index == list(range(len(payloads))) and not batch.rejections
    columns = batch.columns
    assert columns["tenant"] == ["acme"] * len(payloads)
    assert columns["received_at"] == [NOW, NOW + 1, NOW + 2, NOW + 3, NOW + 4, NOW - 10, NOW + 6]
    assert columns["schema_version"] == [1] * len(payloads)
    assert columns["id"][2] == "events:0:2" and columns["id"][0] == "e-1"
    assert columns["user_id"][3] == "ü-7" and orjson.loads(columns["data"][3])["note"] == "日本語 \U0001f600"
    assert orjson.loads(columns["extra"][4]) == {
        "app_version": "2.1",
        "context": {"ip": "10.0.0.1", "tags": ["a", "é"]},
    }
    assert columns["extra"][:4] == ["{}"] * 4


def test_invalid_utf8_in_data_is_refused_as_the_general_path_refuses_it(validator: EventValidator) -> None:
    good = orjson.dumps(seed(data={"user_id": "u1", "city": "Zürich"}))
    bad = good.replace("ü".encode(), b"\xfc")  # Latin-1, not UTF-8
    batch = validate_wire_batch(validator, [good, bad], str, keys=[b"acme:u1"] * 2, broker_ts=[NOW] * 2)
    assert batch.index == [0]
    [(at, why)] = batch.rejections
    assert at == 1 and why.reason is RejectReason.MALFORMED_JSON
