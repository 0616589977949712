"""Pace generated traffic at a steady rate in real time, in small ticks."""

import time
from collections.abc import Callable, Iterator

from devstack.traffic.generator import EventFactory, GeneratedMessage

TICK_S = 0.1


def paced_batches(
    factory: EventFactory,
    rate_per_s: float,
    duration_s: float | None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[GeneratedMessage]]:
    """Yield one batch per tick, sized so the total follows ``rate_per_s``; events are stamped now.

    Runs for ``duration_s`` seconds, or forever when it is None. A slow consumer of the batches
    lowers the achieved rate rather than building a backlog.
    """
    started = clock()
    sent = 0.0
    while duration_s is None or clock() - started < duration_s:
        tick_start = clock()
        due = (tick_start - started + TICK_S) * rate_per_s
        count = int(due - sent)
        if count > 0:
            sent += count
            yield list(factory.messages(count, int(tick_start * 1000), rate_per_s))
        sleep(max(0.0, TICK_S - (clock() - tick_start)))
