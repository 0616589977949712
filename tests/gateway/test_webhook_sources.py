"""The per-process replay memory: a signature is claimed once until its window passes; a release frees it."""

from gateway.metrics import GatewayMetrics
from gateway.webhook_sources import ReplayGuard
from tests.gateway.conftest import run


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_signature_is_claimed_once_within_its_window() -> None:
    clock = Clock()
    guard = ReplayGuard(None, prefix="t:", retry_s=1.0, metrics=GatewayMetrics(), clock=clock)
    assert run(guard.claim("src", "abc", 10.0)) is True
    assert run(guard.claim("src", "abc", 10.0)) is False  # the replay
    assert run(guard.claim("other", "abc", 10.0)) is True  # another source's signature space
    clock.now += 10.5
    assert run(guard.claim("src", "abc", 10.0)) is True  # past its window (stale by then anyway)


def test_a_released_claim_can_be_claimed_again() -> None:
    guard = ReplayGuard(None, prefix="t:", retry_s=1.0, metrics=GatewayMetrics(), clock=Clock())
    assert run(guard.claim("src", "abc", 10.0))
    run(guard.release("src", "abc"))  # the broker did not acknowledge: the resend is no replay
    assert run(guard.claim("src", "abc", 10.0))
