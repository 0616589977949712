"""One background loop for the gateway's periodic work (API key reloads, dead-letter flushes), and the
in-memory mirrors of warehouse tables it reloads (API keys, webhook sources)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

T = TypeVar("T")


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


class WarehouseMirror:
    """A table the gateway keeps in memory, read from the warehouse and reloaded every ``refresh_s``.

    Subclasses implement `reload` (blocking, in a thread) with `_read` for the query and
    `_loaded` once the new contents are in place. The first load happens in `start`; a failed
    load is logged and kept in ``last_error`` (the previous contents stay) and retried next period;
    the contents count as `fresh` for ``max_stale_s`` after the last good load.
    """

    def __init__(
        self,
        name: str,
        client_factory: Callable[[], Client],
        refresh_s: float,
        max_stale_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._client_factory = client_factory
        self._client: Client | None = None
        self._max_stale_s = max_stale_s
        self._clock = clock
        self._loaded_at: float | None = None
        self._refresher = PeriodicTask(f"{name}-refresh", refresh_s, self._reload_logged)
        self.last_error: str | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded_at is not None

    @property
    def fresh(self) -> bool:
        return self._loaded_at is not None and self._clock() - self._loaded_at <= self._max_stale_s

    def reload(self) -> int:
        """Read the table now (blocking); returns how many rows are live."""
        raise NotImplementedError

    def _read(self, query: Callable[[Client], T]) -> T:
        """``query`` on this mirror's client, connected on first use and again after a failure."""
        if self._client is None:
            self._client = self._client_factory()
        try:
            return query(self._client)
        except Exception:
            self._client = None  # reconnect next time
            raise

    def _loaded(self) -> None:
        self._loaded_at = self._clock()
        self.last_error = None

    async def start(self) -> None:
        """Load once (failures are logged, not raised) and keep reloading in the background."""
        await self._reload_logged()
        self._refresher.start()

    async def stop(self) -> None:
        await self._refresher.stop()
        if self._client is not None:
            self._client.close()

    async def _reload_logged(self) -> None:
        try:
            await asyncio.to_thread(self.reload)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("%s reload failed", self._name, extra={"error": self.last_error})
