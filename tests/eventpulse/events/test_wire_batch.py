"""The batch validator agrees with `EventValidator.parse_wire`, message by message, field by field."""

from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpulse.config.events import EventLimits
from eventpulse.events import EventValidator, Rejection, wire_batch
from eventpulse.events.wire_batch import WIRE_COLUMNS, WireBatch, validate_wire_batch
from tests.support.event_strategies import ISO_TIMESTAMPS
from tests.support.examples import examples

NOW = 1_795_000_000_000
LIMITS = EventLimits(
    max_name_chars=12, max_id_chars=16, max_data_keys=4, max_data_depth=3, max_future_skew_s=60, max_past_age_s=3600
)


class Literal:
    """A JSON number written exactly as given (orjson cannot write it, so `_dump` does)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Literal({self.text!r})"


# Numbers as other writers spell them, and numbers orjson refuses as out of range (msgspec skips
# them without a word when they sit in a field it does not decode).
LITERALS = st.one_of(
    st.sampled_from(
        [
            *("1e400", "-1e400", "1E+0400", "1e308", "1.7976931348623157e308", "1.7976931348623159e308", "1e-400"),
            *("9" * 309, "9" * 308, "-" + "9" * 309, "1" + "0" * 209 + "e99", "0.5e-999", "12e306", "-0", "1e+300"),
            *("2.5E-5", "1e-05", "0e999", str(2**63 - 1), str(2**63), str(2**64 - 1), str(2**64), str(-(2**63) - 1)),
        ]
    ),
    st.builds(
        lambda whole, frac, exp: f"{whole}{frac}{exp}",
        st.integers(-(10**20), 10**20),
        st.sampled_from(["", ".5", ".000123"]),
        st.one_of(
            st.just(""), st.integers(-400, 400).map(lambda e: f"e{e:+d}"), st.integers(0, 999).map(lambda e: f"E{e}")
        ),
    ),
).map(Literal)
TRICKY_TEXTS = st.sampled_from(
    ["1e400", ":1e400", "[1e999", "s1e234", "c7e400", "0" * 220, ": " + "9" * 310, "{[{[", "::::"]
)

UNICODE_TEXTS = st.one_of(
    st.sampled_from(["é", "日本語", "\U0001f600", "\u2028", "\ufeff", "\uffff"]), st.text(max_size=6)
)
# Keys as producers write them: the gateway's `tenant:user`, none, another tenant's, no tenant in it.
KEYS = st.sampled_from(
    [b"acme:u1", b"acme:u1", b"acme:a:b", None, b"", b"acme", b"other:u1", b":u1", b"\xffcme:u1", b"a" * 13 + b":u"]
)
STAMPS = st.sampled_from([NOW, NOW - 2000, NOW + 90_000, NOW - 4_000_000, 0, -1])
# Byte strings that are not UTF-8 (orjson refuses them; msgspec does not look inside what it skips).
NOT_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]
ODD_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=14),
    st.sampled_from(["", " ", "\t", "é", "\u2028", "x" * 13, "500", 0, 1, -1, 1.5, 2**64]),
)
# Control characters (refused) and characters that are not printable but allowed (NBSP, U+2028,
# U+200B, an unassigned code point): the fast path screens with isprintable, the rules decide.
ODD_CHARS = ["\x00", "\x1f", "\t", "\n", "\x7f", "\x80", "\x9b", "\x9f", "\xa0", "\u2028", "\u200b", "\U000e0080"]
CONTROLLED = st.builds(lambda c, at: "ab"[:at] + c + "ab"[at:], st.sampled_from(ODD_CHARS), st.integers(0, 2))
NAMES = st.one_of(
    st.sampled_from(["web", "error", "api", "a" * 12, " a ", "a" * 13, "a\x00b", "\x00", "\x7f "]),
    CONTROLLED,
    ODD_SCALARS,
)
OFFSETS = st.one_of(  # timestamp - received_at, around the limits
    st.sampled_from([0, -3_600_000, -3_600_001, 60_000, 60_001, 1]),
    st.integers(-4_000_000, 100_000),
)
CHANGES = {
    "id": st.one_of(st.sampled_from(["x" * 16, "x" * 17]), NAMES),
    "timestamp": st.one_of(ODD_SCALARS, LITERALS, st.sampled_from(ISO_TIMESTAMPS)),
    "type": NAMES,
    "source": NAMES,
    "tenant": NAMES,
    "data": st.one_of(ODD_SCALARS, st.lists(st.integers(), max_size=2)),
    "received_at": st.one_of(
        st.sampled_from([NOW + 0.5, -5, 2**64, 7_258_118_400_000, 7_258_118_399_999]), ODD_SCALARS
    ),
    "schema_version": ODD_SCALARS,
    "data.user_id": st.one_of(
        st.sampled_from(["u" * 12, "u" * 13, 7, 2**65, 10**12 - 1, 10**12, -(10**11) + 1, -(10**11)]),
        CONTROLLED,
        ODD_SCALARS,
        LITERALS,
    ),
    "data.latency_ms": st.one_of(st.sampled_from([0, -0.0, -1, -1e-9, 1e308, 3]), ODD_SCALARS, LITERALS),
    "data.status_code": st.one_of(st.sampled_from([499, 500, 503.5, "500", True]), ODD_SCALARS, LITERALS),
    "data.error": ODD_SCALARS,
    "data.nested": st.one_of(
        st.sampled_from([[[1]], [[[1]]], {"a": {"b": {}}}, {"a": [], "b": {}}]),
        st.recursive(
            ODD_SCALARS,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
            max_leaves=6,
        ),
    ),
    "data.k1": st.one_of(ODD_SCALARS, LITERALS, TRICKY_TEXTS, UNICODE_TEXTS),
    "data.k2": st.one_of(ODD_SCALARS, LITERALS, st.lists(LITERALS, max_size=3)),
    "data.k3": st.one_of(ODD_SCALARS, st.dictionaries(st.sampled_from(["a", "e", "1e400"]), LITERALS, max_size=2)),
}


@st.composite
def messages(draw) -> tuple[bytes | None, bytes, int]:
    """Topic messages (key, value, broker timestamp): the gateway's exact form, or another producer's seed
    format (fields in any order, no ``received_at``/``schema_version``/``tenant``, other fields, text that
    is not ASCII), with a few fields dropped, changed or added."""
    key = draw(KEYS)
    text = draw(values())
    stamp = draw(STAMPS)
    if stamp <= 0 and not _plausible_received_at(text):  # judged against now: the two paths would differ
        stamp = NOW
    return key, text, stamp


def _plausible_received_at(text: bytes) -> bool:
    try:
        received = orjson.loads(text).get("received_at")
    except (orjson.JSONDecodeError, AttributeError):
        return True  # refused before the receive time matters
    return isinstance(received, int | float) and not isinstance(received, bool) and 0 <= received < 7_258_118_400_000


@st.composite
def values(draw) -> bytes:
    """Message values: the gateway's exact form with a few fields dropped, changed or added."""
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
    if draw(st.integers(0, 2)) == 0:  # another producer: no fields the gateway adds
        for name in draw(st.lists(st.sampled_from(["tenant", "received_at", "schema_version", "id"]), unique=True)):
            doc.pop(name, None)
    if draw(st.integers(0, 3)) == 0:
        extra = st.one_of(ODD_SCALARS, LITERALS, CHANGES["data.nested"], UNICODE_TEXTS)
        for name in draw(st.lists(st.sampled_from(["unknown", "extra", "tenantx", "é"]), min_size=1, unique=True)):
            doc[name] = draw(extra)
    if draw(st.booleans()):  # fields in any order
        doc = dict(draw(st.permutations(list(doc.items()))))
    try:
        text = orjson.dumps(doc)
    except TypeError:  # integers beyond 64 bits, literal numbers: write the JSON by hand
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
    elif mangle == 4:  # newlines between tokens, inside `data` too
        text = text.replace(b",", b",\r\n\t")
    elif mangle == 5:  # bytes that are not UTF-8 inside a string, anywhere
        at = [k for k in range(len(text)) if text[k : k + 1] == b'"']
        if at:
            k = draw(st.sampled_from(at)) + 1
            text = text[:k] + draw(st.sampled_from(NOT_UTF8)) + text[k:]
    return text


def _dump(value) -> str:
    if isinstance(value, Literal):
        return value.text
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{orjson.dumps(k).decode()}:{_dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return orjson.dumps(value).decode()


Message = tuple[bytes | None, bytes, int]


def _expected(validator: EventValidator, payloads: list[bytes] | list[Message]) -> list[tuple | Rejection]:
    out: list[tuple | Rejection] = []
    for i, (key, payload, stamp) in enumerate(_messages(payloads)):
        broker_ts = stamp if stamp > 0 else None
        result = validator.parse_wire(payload, key=key, broker_ts_ms=broker_ts, default_id=f"default-{i}")
        out.append(result if isinstance(result, Rejection) else result.raw_row(0, 0)[: len(WIRE_COLUMNS)])
    return out


def _messages(payloads: list[bytes] | list[Message]) -> list[Message]:
    """Values alone are messages without a key or a broker timestamp."""
    return [p if isinstance(p, tuple) else (None, p, 0) for p in payloads]


def _actual(validator: EventValidator, payloads: list[bytes] | list[Message]) -> list[tuple | Rejection]:
    keys, values, stamps = (list(column) for column in zip(*_messages(payloads), strict=True))
    batch = validate_wire_batch(validator, values, lambda i: f"default-{i}", keys=keys, broker_ts=stamps)
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


@pytest.mark.parametrize("chunk", [1000, 3])  # the fast path takes messages in chunks of `_CHUNK`
@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=8))
def test_batch_validation_equals_per_message_validation(chunk: int, payloads: list[Message]) -> None:
    validator = EventValidator(LIMITS)
    expected = [_comparable(r) for r in _expected(validator, payloads)]
    with mock.patch.object(wire_batch, "_CHUNK", chunk):
        assert [_comparable(r) for r in _actual(validator, payloads)] == expected
    ACCEPTED.extend(not isinstance(r, Rejection) for r in expected)


ACCEPTED: list[bool] = []


def test_the_generated_messages_are_both_accepted_and_rejected() -> None:
    """Guards the property above against a generator that only ever produces one kind."""
    test_batch_validation_equals_per_message_validation(chunk=1000)
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


@st.composite
def large_messages(draw) -> bytes:
    """Messages near the default limits: many keys in `data`, deep nesting, 64-bit user ids."""
    keys = draw(st.integers(0, 300))
    names = draw(st.lists(st.text("ab", min_size=1, max_size=7), min_size=keys, max_size=keys))  # repeats too
    data = {"user_id": draw(st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, -(2**63), -(2**63) - 1, "u" * 128, 5]))}
    data.update((name, 0) for name in names)
    nested = Literal("[" * draw(st.integers(0, 40)))
    nested.text += "]" * len(nested.text)
    if draw(st.booleans()):
        data["nested"] = nested
    doc = {"id": "e-1", "timestamp": NOW - 1000, "type": "web", "source": "api", "data": data}
    doc.update(tenant="acme", received_at=NOW, schema_version=1)
    return _dump(doc).encode()


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(large_messages(), min_size=1, max_size=4))
def test_batch_validation_equals_per_message_validation_at_default_limits(payloads: list[bytes]) -> None:
    validator = EventValidator(EventLimits())
    expected = [_comparable(r) for r in _expected(validator, payloads)]
    assert [_comparable(r) for r in _actual(validator, payloads)] == expected


def _refusing_general_path(monkeypatch: pytest.MonkeyPatch, validator: EventValidator) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("the general path was used")

    monkeypatch.setattr(validator, "parse_wire", refuse)


def test_numbers_and_hex_that_only_look_big_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The out-of-range screen looks for exponents of 3 digits: hex strings and finite numbers pass."""
    validator = EventValidator(EventLimits())
    _refusing_general_path(monkeypatch, validator)
    payloads = [
        wire(data={"user_id": "u1", "session": "s1e234ab", "hash": "3e4567e8"}),
        wire(data={"user_id": "u1", "big": 1e300, "small": 2.5e-300, "many": [1e100, -1e-100]}),
    ]
    batch = validate_wire_batch(validator, payloads, str)
    assert batch.index == [0, 1]
    assert orjson.loads(batch.columns["data"][1]) == {
        "user_id": "u1",
        "big": 1e300,
        "small": 2.5e-300,
        "many": [1e100, -1e-100],
    }


def test_out_of_range_numbers_are_refused_as_by_the_general_path() -> None:
    validator = EventValidator(EventLimits())
    payloads = [
        wire(),
        wire().replace(b'"status_code":503}', b'"status_code":503,"x":[1,-1e400]}'),
        wire().replace(b'"status_code":503}', b'"status_code":503,"x":"1e400"}'),
        wire().replace(b'"status_code":503}', b'"status_code":503,"x":' + b"9" * 400 + b"}"),
    ]
    batch = validate_wire_batch(validator, payloads, str)
    assert batch.index == [0, 2]
    assert [(i, r.reason.value) for i, r in batch.rejections] == [(1, "malformed_json"), (3, "malformed_json")]


def test_deep_data_from_a_deep_stack_is_no_poison_message() -> None:
    """msgspec raises RecursionError (not a DecodeError) when nesting meets the recursion limit."""
    validator = EventValidator(EventLimits())
    deep = wire().replace(b'"status_code":503}', b'"status_code":503,"x":' + b"[" * 850 + b"]" * 850 + b"}")

    def at_depth(frames: int) -> WireBatch:
        return at_depth(frames - 1) if frames else validate_wire_batch(validator, [wire(), deep, wire()], str)

    batch = at_depth(300)
    assert batch.index == [0, 2]
    assert [(i, r.reason.value) for i, r in batch.rejections] == [(1, "field_too_large")]


def test_general_path_events_merge_in_order_with_fast_ones() -> None:
    validator = EventValidator(EventLimits())
    payloads = [wire(id="a"), wire(id="b", extra=1), wire(id="c"), wire(id="d", timestamp=NOW - 1000.0), wire(id="e")]
    batch = validate_wire_batch(validator, payloads, str)
    assert batch.index == [0, 1, 2, 3, 4]
    assert batch.columns["id"] == ["a", "b", "c", "d", "e"]
    assert batch.columns["extra"] == ["{}", '{"extra":1}', "{}", "{}", "{}"]
    assert all(len(column) == 5 for column in batch.columns.values())


EDGE_USER_IDS = [10**12 - 1, 10**12, 1 - 10**11, -(10**11), 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]


@pytest.mark.parametrize("limits", [LIMITS, EventLimits()], ids=["tight", "default"])
@pytest.mark.parametrize("user_id", EDGE_USER_IDS)
def test_integer_user_ids_at_the_edges_agree(limits: EventLimits, user_id: int) -> None:
    """Decimal length against max_name_chars, and 64 bits (orjson decodes wider integers as floats)."""
    validator = EventValidator(limits)
    payloads = [_dump({**orjson.loads(wire()), "timestamp": NOW - 1000, "data": {"user_id": user_id}}).encode()]
    expected = [_comparable(r) for r in _expected(validator, payloads)]
    assert [_comparable(r) for r in _actual(validator, payloads)] == expected


@pytest.mark.parametrize(("every", "bad"), [(25, 4), (2, 50)])  # a few are deleted in place, many filtered
def test_many_messages_left_to_the_general_path_keep_their_places(every: int, bad: int) -> None:
    validator = EventValidator(LIMITS)
    payloads = [
        wire(id=f"e{i}", type="web", source="api", timestamp=NOW + 120_000 if i % every == 0 else NOW - 1000)
        for i in range(100)
    ]
    expected = [_comparable(r) for r in _expected(validator, payloads)]
    assert sum(isinstance(r, Rejection) for r in expected) == bad
    assert [_comparable(r) for r in _actual(validator, payloads)] == expected


def test_each_out_of_range_number_is_charged_to_its_own_message() -> None:
    """Suspects are found in the joined texts, then mapped back to their message."""
    validator = EventValidator(EventLimits())
    datas = [b'{"a":1}'] * 12
    datas[2], datas[3], datas[10] = b'{"x":1e300,"y":2e300}', b'{"x":-1e400}', b'{"x":1E999}'
    payloads = [wire().replace(b'{"user_id":12345,"latency_ms":3,"status_code":503}', data) for data in datas]
    batch = validate_wire_batch(validator, payloads, str)
    assert [(i, r.reason.value) for i, r in batch.rejections] == [(3, "malformed_json"), (10, "malformed_json")]
    assert batch.index == [0, 1, 2, 4, 5, 6, 7, 8, 9, 11]


@pytest.mark.parametrize("field", ["type", "source", "id", "tenant", "data.user_id"])
@pytest.mark.parametrize("char", ["\x00", "\x1f", "\x7f", "\x9b"])
def test_control_characters_are_refused_on_the_topic_path(field: str, char: str) -> None:
    """The NUL in ``type`` that was stored: both paths refuse it, with the field and the character."""
    validator = EventValidator(EventLimits())
    bad = f"x{char}y"
    odd = wire(data={"user_id": bad}) if field == "data.user_id" else wire(**{field: bad})
    batch = validate_wire_batch(validator, [wire(), odd, wire(id="e-3")], str)
    assert batch.index == [0, 2]
    [(at, why)] = batch.rejections
    assert (at, why.reason.value, why.field) == (1, "invalid_value", field)
    assert f"U+{ord(char):04X} at position 1" in why.detail
    assert validator.parse_wire(odd) == why


def test_unprintable_names_that_are_no_control_characters_are_kept_on_the_topic_path() -> None:
    validator = EventValidator(EventLimits())
    payloads = [wire(type="a\xa0b", source="a\u2028b", data={"user_id": "\u200b"}), wire()]
    batch = validate_wire_batch(validator, payloads, str)
    assert batch.index == [0, 1] and batch.columns["type"][0] == "a\xa0b"
    assert batch.columns["user_id"][0] == "\u200b"
