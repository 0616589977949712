"""Event-time watermark over the topic's partitions.

Each partition's watermark is the largest event time it has delivered minus the disorder bound;
the flow's watermark is the minimum over the partitions that are *active*. A partition is
active while it delivered a message within the last ``idle_timeout_s`` of system time (a
partition not heard of yet counts as active from start-up, so it holds the watermark back for
that long). When every partition is idle the watermark follows the most advanced one, so the
last windows close once traffic stops. The watermark never goes back, and it is kept in the
recovery snapshot, so windows that the watermark passed stay closed after a restart and windows
with no new events still close when it moves on.
"""

import time
from collections.abc import Iterable

MIN_WATERMARK = -(2**62)
MAX_WATERMARK = 2**62


class PartitionWatermarks:
    """Per-partition event-time progress and the resulting watermark (epoch ms)."""

    def __init__(
        self,
        partitions: Iterable[int],
        bound_ms: int,
        idle_timeout_s: float,
        state: tuple[dict[int, int | None], int] | None = None,
        now: float | None = None,
    ) -> None:
        self._bound = bound_ms
        self._idle = idle_timeout_s
        now = time.monotonic() if now is None else now
        self._max_ts: dict[int, int | None] = dict.fromkeys(partitions)
        self.watermark = MIN_WATERMARK
        if state is not None:
            self._max_ts.update(state[0])
            self.watermark = state[1]
        self._seen = dict.fromkeys(self._max_ts, now)

    def observe(self, partition: int, max_ts: int | None, now: float | None = None) -> None:
        """Partition ``partition`` delivered messages whose largest event time is ``max_ts``."""
        self._seen[partition] = time.monotonic() if now is None else now
        if max_ts is not None:
            current = self._max_ts.get(partition)
            self._max_ts[partition] = max_ts if current is None else max(current, max_ts)

    def advance(self, now: float | None = None) -> int:
        """Recompute and return the watermark."""
        now = time.monotonic() if now is None else now
        active = [p for p, seen in self._seen.items() if now - seen < self._idle]
        if active:
            seen = [ts for p in active if (ts := self._max_ts.get(p)) is not None]
            candidate = MIN_WATERMARK if len(seen) < len(active) else min(seen) - self._bound
        else:
            seen = [v for v in self._max_ts.values() if v is not None]
            candidate = max(seen) - self._bound if seen else MIN_WATERMARK
        self.watermark = max(self.watermark, candidate)
        return self.watermark

    def state(self) -> tuple[dict[int, int | None], int]:
        return dict(self._max_ts), self.watermark

    def lag_ms(self, now_ms: int) -> float | None:
        """How far the watermark is behind the system clock (None before the first one)."""
        if self.watermark in (MIN_WATERMARK, MAX_WATERMARK):
            return None
        return float(now_ms - self.watermark)
