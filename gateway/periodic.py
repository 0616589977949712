"""One background loop for the gateway's periodic work (API key reloads, dead-letter flushes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class PeriodicTask:
    """Awaits ``step`` every ``interval_s`` seconds on the running loop, from `start` until `stop`.

    A step that raises is logged and the loop goes on: one failed reload or flush must not end the
    work for the life of the process. The steps' own error handling (``last_error``) stays theirs.
    """

    def __init__(self, name: str, interval_s: float, step: Callable[[], Awaitable[object]]) -> None:
        if interval_s <= 0:
            raise ValueError(f"{name}: interval_s must be > 0, got {interval_s}")
        self.name = name
        self._interval_s = interval_s
        self._step = step
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Begin the loop (the first step runs one interval from now)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the loop and wait until it has ended (a step in progress is cancelled too)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._step()
            except Exception:
                log.exception("periodic task failed; it runs again next interval", extra={"task": self.name})
