"""`AsyncClient`: the asyncio client; one task on the running loop batches and sends."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from eventpulse_sdk._core import (
    ClientClosedError,
    ClientCore,
    async_http,
    drive_sync,
    reply_of,
    request_timeout,
    sync_http,
)
from eventpulse_sdk._delivery import BATCH_PATH, Abandon, Delivery, Outcome, Post, Reply, Sleep
from eventpulse_sdk.config import ClientConfig
from eventpulse_sdk.events import encode_event


async def drive_async(
    gen: Delivery,
    http: httpx.AsyncClient,
    config: ClientConfig,
    deadline: Callable[[], float | None],
    pause: Callable[[float], Awaitable[None]],
) -> Outcome:
    """`eventpulse_sdk._core.drive_sync` with awaits: the same rules, the same deadline."""
    try:
        command: Post | Sleep = next(gen)
        while True:
            limit = deadline()
            if isinstance(command, Sleep):
                end = time.monotonic() + command.seconds
                await pause(command.seconds)
                limit = deadline()
                if limit is not None and end > limit:
                    command = gen.throw(Abandon())
                    continue
                await asyncio.sleep(max(0.0, end - time.monotonic()))
                command = gen.send(None)
                continue
            if limit is not None and time.monotonic() >= limit:
                command = gen.throw(Abandon())
                continue
            try:
                response = await http.post(
                    BATCH_PATH, content=command.body, headers=command.headers, timeout=request_timeout(config, limit)
                )
                reply: Reply | BaseException = reply_of(response)
            except httpx.TransportError as exc:
                reply = exc
            command = gen.send(reply)
    except StopIteration as stop:
        result: Outcome = stop.value
        return result


async def _wait(event: asyncio.Event, timeout: float | None) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


class AsyncClient(ClientCore[httpx.AsyncBaseTransport]):
    """The asyncio EventPulse client. Use it from one event loop (the one it first captures on).

    Example:
        >>> async with AsyncClient(api_key="ep_...", endpoint="https://events.example.com") as client:  # doctest: +SKIP
        ...     await client.capture("user_action", "web_app", {"action": "click"}, user_id="12345")

    Same settings, batching, retries and reports as `eventpulse_sdk.Client`; the sending runs in a
    task of the loop. Close it (``async with`` or `aclose`): if the loop ends first, the task puts
    its batch back and the exit hook sends what is left with a blocking client.
    """

    def _reset_state(self) -> None:
        super()._reset_state()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def _bind(self) -> None:
        """Events and the sending task of the running loop (new ones if the loop changed)."""
        loop = asyncio.get_running_loop()
        if self._pid != os.getpid():
            self._reset_state()
        if loop is not self._loop:
            self._loop = loop
            self._wake, self._room, self._progress, self._stop = (asyncio.Event() for _ in range(4))
            self._task = None
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="eventpulse-sdk")

    async def capture(
        self,
        type: str,
        source: str,
        data: Mapping[str, Any] | None = None,
        *,
        user_id: str | int | None = None,
        timestamp: datetime | int | None = None,
        id: str | None = None,
    ) -> str | None:
        """Queue an event (as `eventpulse_sdk.Client.capture`); under ``overflow="block"`` wait for room."""
        event_id, payload = encode_event(type, source, data, user_id=user_id, timestamp=timestamp, id=id)
        self._bind()
        admitted = self._admit_now()
        if admitted is None:
            end = time.monotonic() + self.config.block_timeout_s
            while self._buffer.full() and not self._closing and (left := end - time.monotonic()) > 0:
                self._room.clear()
                await _wait(self._room, left)
            if self._closing:
                raise ClientClosedError("the client is closed")
            if self._buffer.full():
                self._drop_newest()
                return None
        elif not admitted:
            return None
        return self._append(event_id, payload)

    def capture_nowait(
        self,
        type: str,
        source: str,
        data: Mapping[str, Any] | None = None,
        *,
        user_id: str | int | None = None,
        timestamp: datetime | int | None = None,
        id: str | None = None,
    ) -> str | None:
        """`capture` without awaiting, from code on the loop that cannot await (``block`` drops the new event)."""
        event_id, payload = encode_event(type, source, data, user_id=user_id, timestamp=timestamp, id=id)
        self._bind()
        admitted = self._admit_now()
        if admitted is None:
            self._drop_newest()
            return None
        return self._append(event_id, payload) if admitted else None

    def _append(self, event_id: str, payload: bytes) -> str:
        self._buffer.append(event_id, payload, time.monotonic())
        self._wake.set()
        return event_id

    async def flush(self, timeout: float | None = None) -> bool:
        """Send what is queued now and wait until each of those events is resolved (False: ``timeout`` passed)."""
        if self._loop is None:
            return True  # nothing was ever captured
        self._bind()
        mark = self._buffer.next_seq
        self._buffer.flush_mark = max(self._buffer.flush_mark, mark)
        self._wake.set()
        end = None if timeout is None else time.monotonic() + timeout
        while self._buffer.oldest_unresolved() < mark:
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._progress.clear()
            await _wait(self._progress, left)
        return True

    async def aclose(self, timeout: float | None = None) -> bool:
        """Flush for at most ``timeout`` (default ``shutdown_timeout_s``) and stop (as `eventpulse_sdk.Client.close`)."""
        if self._closed:
            return True
        limit = self.config.shutdown_timeout_s if timeout is None else timeout
        self._closing, self._deadline = True, time.monotonic() + limit
        abandoned = self._abandoned
        if self._loop is not None:
            self._bind()
            for event in (self._stop, self._wake, self._room):
                event.set()
            if self._task is not None:
                await asyncio.wait({self._task}, timeout=limit + 1.0)
        complete = self._abandoned == abandoned and self._buffer.oldest_unresolved() >= self._buffer.next_seq
        report = self._fail_waiting()
        self._closed = True
        self._report(report)
        return complete

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _pause(self, seconds: float) -> None:
        if not self._closing:
            await _wait(self._stop, seconds)

    async def _run(self) -> None:
        async with async_http(self.config, self._http_transport) as http:
            while True:
                batch = self._take()
                while batch is None:
                    if self._closing and not self._buffer.waiting:
                        return
                    self._wake.clear()
                    await _wait(self._wake, self._wait_s())
                    batch = self._take()
                try:
                    outcome = await drive_async(
                        self._delivery(batch), http, self.config, lambda: self._deadline, self._pause
                    )
                except asyncio.CancelledError:  # the loop is ending: keep the batch for the exit hook
                    self._buffer.requeue(self._buffer.in_flight)
                    self._buffer.settle()
                    raise
                report = self._settle(outcome)
                self._progress.set()
                self._room.set()
                self._report(report)

    def _close_at_exit(self) -> None:
        """The loop ended with the client open: send what is left with a blocking client, within ``shutdown_timeout_s``."""
        if self._closed or self._pid != os.getpid():
            return
        self._closing, self._deadline = True, time.monotonic() + self.config.shutdown_timeout_s
        with sync_http(self.config) as http:
            while self._buffer.waiting:
                batch = self._buffer.take(self.config.batch_size, self.config.batch_max_bytes)
                outcome = drive_sync(self._delivery(batch), http, self.config, lambda: self._deadline)
                self._report(self._settle(outcome))
        self._closed = True
