"""The batch validator agrees with `EventValidator.parse_wire`, message by message, field by field."""

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpulse.config.events import EventLimits
from eventpulse.events import EventValidator, Rejection
from eventpulse.events.wire_batch import WIRE_COLUMNS, validate_wire_batch

NOW = 1_795_000_000_000
LIMITS = EventLimits(
    max_name_chars=12, max_id_chars=16, max_data_keys=4, max_data_depth=3, max_future_skew_s=60, max_past_age_s=3600
)

ODD_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=14),
    st.sampled_from(["", " ", "\t", "é", "\u2028", "x" * 13, "500", 0, 1, -1, 1.5, 2**64]),
)
NAMES = st.one_of(st.sampled_from(["web", "error", "api", "a" * 12, " a ", "a" * 13]), ODD_SCALARS)
OFFSETS = st.one_of(  # timestamp - received_at, around the limits
    st.sampled_from([0, -3_600_000, -3_600_001, 60_000, 60_001, 1]),
    st.integers(-4_000_000, 100_000),
)
CHANGES = {
    "id": st.one_of(st.sampled_from(["x" * 16, "x" * 17]), NAMES),
    "timestamp": ODD_SCALARS,
    "type": NAMES,
    "source": NAMES,
    "tenant": NAMES,
    "data": st.one_of(ODD_SCALARS, st.lists(st.integers(), max_size=2)),
    "received_at": st.one_of(
        st.sampled_from([NOW + 0.5, -5, 2**64, 7_258_118_400_000, 7_258_118_399_999]), ODD_SCALARS
    ),
    "schema_version": ODD_SCALARS,
    "data.user_id": st.one_of(st.sampled_from(["u" * 12, "u" * 13, 7, 2**65]), ODD_SCALARS),
    "data.latency_ms": st.one_of(st.sampled_from([0, -0.0, -1, -1e-9, 1e308, 3]), ODD_SCALARS),
    "data.status_code": st.one_of(st.sampled_from([499, 500, 503.5, "500", True]), ODD_SCALARS),
    "data.error": ODD_SCALARS,
    "data.nested": st.one_of(
        st.sampled_from([[[1]], [[[1]]], {"a": {"b": {}}}, {"a": [], "b": {}}]),
        st.recursive(
            ODD_SCALARS,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
            max_leaves=6,
        ),
    ),
    "data.k1": ODD_SCALARS,
    "data.k2": ODD_SCALARS,
    "data.k3": ODD_SCALARS,
}


@st.composite
def messages(draw) -> bytes:
    """Wire messages: the gateway's exact form with a few fields dropped, changed or added."""
    received = NOW
    doc = {
        "id": "e-1",
        "timestamp": NOW - 1000,
        "type": "web",
        "source": "api",
        "data": {"user_id": "u1", "latency_ms": 12.5},
        "tenant": "acme",
        "received_at": received,
        "schema_version": 1,
    }
    for path in draw(st.lists(st.sampled_from(sorted(CHANGES)), max_size=3, unique=True)):
        target, name = (doc.get("data"), path[5:]) if path.startswith("data.") else (doc, path)
        if not isinstance(target, dict):
            continue
        if draw(st.integers(0, 5)) == 0:
            target.pop(name, None)
        else:
            target[name] = draw(CHANGES[path])
    received = doc.get("received_at", NOW)
    if isinstance(received, int) and not isinstance(received, bool) and draw(st.booleans()):
        doc["timestamp"] = received + draw(OFFSETS)
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.sampled_from(["unknown", "extra", "tenantx"]))] = draw(ODD_SCALARS)
    try:
        text = orjson.dumps(doc)
    except TypeError:  # integers beyond 64 bits: write the JSON by hand
        text = ("{" + ",".join(f"{orjson.dumps(k).decode()}:{_dump(v)}" for k, v in doc.items()) + "}").encode()
    mangle = draw(st.integers(0, 19))
    if mangle == 0:  # a duplicate key: the last one wins in both decoders
        text = text[:-1] + b',"type":"dup"}' if len(text) > 2 else text
    elif mangle == 1:
        text = text[: draw(st.integers(0, len(text)))]
    elif mangle == 2:
        text = text.replace(b'"data":{', b'"data":{"deep":' + b"[" * 1100 + b"]" * 1100 + b",", 1)
    elif mangle == 3:
        text = text.replace(b":", b" : ")
    return text


def _dump(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{orjson.dumps(k).decode()}:{_dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return orjson.dumps(value).decode()


def _expected(validator: EventValidator, payloads: list[bytes]) -> list[tuple | Rejection]:
    out: list[tuple | Rejection] = []
    for i, payload in enumerate(payloads):
        result = validator.parse_wire(payload, default_id=f"default-{i}")
        out.append(result if isinstance(result, Rejection) else result.raw_row(0, 0)[: len(WIRE_COLUMNS)])
    return out


def _actual(validator: EventValidator, payloads: list[bytes]) -> list[tuple | Rejection]:
    batch = validate_wire_batch(validator, payloads, lambda i: f"default-{i}")
    out: list[tuple | Rejection | None] = [None] * len(payloads)
    for i, rejection in batch.rejections:
        out[i] = rejection
    for row, i in enumerate(batch.index):
        out[i] = tuple(batch.columns[name][row] for name in WIRE_COLUMNS)
    assert None not in out
    return out


def _comparable(result: tuple | Rejection) -> tuple | Rejection:
    """Rows compare with ``data`` decoded: the fast path keeps the JSON text as it arrived."""
    if isinstance(result, Rejection):
        return result
    data = WIRE_COLUMNS.index("data")
    return (*result[:data], orjson.loads(result[data]), *result[data + 1 :])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=8))
def test_batch_validation_equals_per_message_validation(payloads: list[bytes]) -> None:
    validator = EventValidator(LIMITS)
    expected = [_comparable(r) for r in _expected(validator, payloads)]
    assert [_comparable(r) for r in _actual(validator, payloads)] == expected
    ACCEPTED.extend(not isinstance(r, Rejection) for r in expected)


ACCEPTED: list[bool] = []


def test_the_generated_messages_are_both_accepted_and_rejected() -> None:
    """Guards the property above against a generator that only ever produces one kind."""
    test_batch_validation_equals_per_message_validation()
    assert 0.2 < sum(ACCEPTED) / len(ACCEPTED) < 0.8


def wire(**overrides) -> bytes:
    doc = {
        "id": "e-1",
        "timestamp": NOW - 1000,
        "type": "user_action",
        "source": "web_app",
        "data": {"user_id": 12345, "latency_ms": 3, "status_code": 503},
        "tenant": "acme",
        "received_at": NOW,
        "schema_version": 1,
    }
    doc.update(overrides)
    return orjson.dumps(doc)


def test_gateway_form_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    validator = EventValidator(EventLimits())

    def refuse(*_args, **_kwargs):
        raise AssertionError("the general path was used")

    monkeypatch.setattr(validator, "parse_wire", refuse)
    batch = validate_wire_batch(validator, [wire(), wire(id="e-2", type="error")], lambda i: str(i))
    assert batch.index == [0, 1]
    assert batch.columns["user_id"] == ["12345", "12345"]
    assert batch.columns["latency_ms"] == [3.0, 3.0]
    assert batch.columns["is_error"] == [1, 1]
    assert batch.columns["data"][0] == '{"user_id":12345,"latency_ms":3,"status_code":503}'


def test_rejections_and_odd_forms_go_through_the_general_path() -> None:
    validator = EventValidator(EventLimits())
    payloads = [wire(), b"{", wire(data={"user_id": "é"}), wire(tenant=""), None, wire(extra_field=1)]
    batch = validate_wire_batch(validator, payloads, lambda i: f"d{i}")
    assert batch.index == [0, 2, 5]
    assert [(i, r.reason.value) for i, r in batch.rejections] == [
        (1, "malformed_json"),
        (3, "missing_tenant"),
        (4, "malformed_json"),
    ]
    assert batch.columns["user_id"][1] == "é"
    assert batch.columns["extra"][2] == '{"extra_field":1}'
