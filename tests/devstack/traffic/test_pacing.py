"""Pacing follows the requested rate on a simulated clock."""

from devstack.traffic.generator import EventFactory
from devstack.traffic.pacing import paced_batches


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_795_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_rate_and_duration_are_followed_and_events_are_stamped_now() -> None:
    clock = FakeClock()
    start = clock.now
    batches = list(paced_batches(EventFactory(seed=1), 2500.0, 3.0, clock=clock, sleep=clock.sleep))
    total = sum(len(b) for b in batches)
    assert 7000 <= total <= 7750
    first = [m.event for m in batches[0] if m.valid]
    assert all(abs(e["received_at"] - start * 1000) < 200 for e in first)
