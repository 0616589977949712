"""Generated submitted events around the limits of `LIMITS`, valid and not, for the property tests
that compare the validators with each other (tests/eventpulse/events/test_submitted.py) and with the
OpenAPI document's schema (tests/gateway/test_event_contract.py)."""

import json
from typing import Any

import orjson
from hypothesis import strategies as st

from eventpulse.config.events import EventLimits

NOW = 1_795_000_000_000
TENANT = "acme"
LIMITS = EventLimits(
    max_name_chars=12, max_id_chars=16, max_data_keys=4, max_data_depth=3, max_future_skew_s=60, max_past_age_s=3600
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # beyond 64 bits orjson decodes a float
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=14),
    st.sampled_from(["", " ", "\t", "é", "日本", "\u2028", "\U0001f600", "x" * 12, "x" * 13, 0, 1, -1, 1.5, 2**64 - 1]),
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
# Control characters (refused) and characters that are not printable but allowed (NBSP, U+2028,
# U+200B, an unassigned code point): the fast path screens with isprintable, the rules decide.
ODD_CHARS = ["\x00", "\x1f", "\t", "\n", "\x7f", "\x80", "\x9b", "\x9f", "\xa0", "\u2028", "\u200b", "\U000e0080"]
CONTROLLED = st.builds(lambda c, at: "ab"[:at] + c + "ab"[at:], st.sampled_from(ODD_CHARS), st.integers(0, 2))
NAMES = st.one_of(
    st.sampled_from(["web", "error", "api", "a" * 12, "a" * 13, " a ", " ", "é", "a\x00b", "\x00", "\x7f "]),
    CONTROLLED,
    SCALARS,
)
ISO_TIMESTAMPS = [  # NOW is 2026-11-18T11:06:40Z; texts that read, that do not, and that are not dates
    "2026-11-18T11:06:40Z",
    "2026-11-18T11:06:40.5+00:00",
    "2026-11-18 12:06:39+01:00",
    "2026-11-18t11:06:40",
    "2026-11-18T11:07:41Z",  # 61 s ahead
    "1969-12-31T23:59:59Z",
    "2026-11-18T25:00:00Z",
    "2026-11-18X11:06:40Z",
    "20261118T110640Z",
    "T",
    " ",
    "1795000000000",
    "2026-11-18T11:06:40." + "0" * 44 + "Z",  # 65 characters: refused unread
]
TIMESTAMPS = st.one_of(  # around the window [NOW - 3600 s, NOW + 60 s]
    st.sampled_from([NOW, NOW - 3_600_000, NOW - 3_600_001, NOW + 60_000, NOW + 60_001, 0, -1, float(NOW), NOW + 0.5]),
    st.integers(NOW - 4_000_000, NOW + 100_000),
    st.sampled_from(ISO_TIMESTAMPS),
    SCALARS,
)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.one_of(st.sampled_from(["e-1", "x" * 16, "x" * 17, " ", ""]), NAMES),
    "timestamp": TIMESTAMPS,
    "type": NAMES,
    "source": NAMES,
    "tenant": NAMES,  # ignored: the tenant is the key's
    "received_at": SCALARS,  # ignored: the gateway sets it
    "schema_version": st.one_of(st.sampled_from([1, 2, 0, -1, 2**63, 2**64 - 1, True, 1.0]), SCALARS),
    "data": st.one_of(SCALARS, st.lists(st.integers(), max_size=2), NESTED),
    "extra_field": NESTED,
}
DATA_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "user_id": st.one_of(st.sampled_from(["u1", "u" * 12, "u" * 13, 7, 2**63, 2**65, -3, True]), CONTROLLED, SCALARS),
    "latency_ms": st.one_of(st.sampled_from([0, 0.0, -0.0, -1, -1e-9, 1e308, 12.5, 3, False]), SCALARS),
    "status_code": st.one_of(st.sampled_from([200, 499, 500, 500.0, 503, True]), SCALARS),
    "error": st.one_of(st.sampled_from([True, False, 1, "true"]), SCALARS),
    "k1": NESTED,
    "k2": NESTED,
    "k3": NESTED,
}


def common_event(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "timestamp": NOW - 1000,
        "type": "user_action",
        "source": "web_app",
        "data": {"user_id": "u1", "action": "click", "latency_ms": 12.5},
    }
    doc.update(fields)
    return doc


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """A common event with some fields changed, dropped or added, and a data object likewise."""
    doc = common_event()
    data = dict(doc["data"])
    for name in draw(st.lists(st.sampled_from(sorted(DATA_FIELDS)), max_size=4, unique=True)):
        data[name] = draw(DATA_FIELDS[name])
    for name in draw(st.lists(st.sampled_from(["user_id", "latency_ms", "action"]), max_size=2, unique=True)):
        data.pop(name, None)
    doc["data"] = data
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=3, unique=True)):
        doc[name] = draw(FIELDS[name])
    for name in draw(st.lists(st.sampled_from(["type", "source", "timestamp", "data"]), max_size=1)):
        doc.pop(name, None)
    return doc


def as_decoded(value: Any) -> Any:
    """What the gateway sees: the value sent as JSON (huge integers too) and decoded by orjson."""
    return orjson.loads(json.dumps(value, ensure_ascii=False))
