"""The traffic generator: deterministic, realistic, and its invalid messages fail as labelled."""

from collections import Counter

from devstack.traffic.generator import INVALID_KINDS, EventFactory, TrafficProfile
from eventpulse.config.events import EventLimits
from eventpulse.events import EventValidator, Rejection, ValidEvent

START = 1_795_000_000_000


def test_same_seed_same_messages() -> None:
    a = [m.value for m in EventFactory(seed=7).messages(200, START)]
    b = [m.value for m in EventFactory(seed=7).messages(200, START)]
    c = [m.value for m in EventFactory(seed=8).messages(200, START)]
    assert a == b and a != c


def test_every_message_validates_as_labelled() -> None:
    validator = EventValidator(EventLimits())
    messages = list(EventFactory(TrafficProfile(invalid_share=0.05), seed=3).messages(20_000, START))
    reasons: Counter = Counter()
    for m in messages:
        result = validator.parse_wire(m.value)
        if m.valid:
            assert isinstance(result, ValidEvent)
            assert m.key == result.partition_key()
        else:
            assert isinstance(result, Rejection) and result.reason == m.reason
            reasons[m.reason] += 1
    assert set(reasons) == set(INVALID_KINDS)
    assert 0.03 < sum(reasons.values()) / len(messages) < 0.07


def test_traffic_is_realistic() -> None:
    profile = TrafficProfile(tenants=20, types=10, sources=5)
    events = [m.event for m in EventFactory(profile, seed=1).messages(20_000, START) if m.valid]
    tenants = Counter(e["tenant"] for e in events)
    assert len(tenants) == 20 and tenants.most_common(1)[0][1] > 3 * min(tenants.values())
    assert len({e["type"] for e in events}) == 10 and len({e["source"] for e in events}) == 5
    errors = sum(1 for e in events if e["data"].get("error"))
    assert 0.01 < errors / len(events) < 0.03
    latencies = sorted(e["data"]["latency_ms"] for e in events)
    assert 20 < latencies[len(latencies) // 2] < 80
    assert max(abs(e["timestamp"] - e["received_at"]) for e in events) <= profile.max_disorder_ms
