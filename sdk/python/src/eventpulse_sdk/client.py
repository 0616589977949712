"""`Client`: capture from any thread; one background thread batches and sends."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from eventpulse_sdk._core import ClientClosedError, ClientCore, drive_sync, sync_http
from eventpulse_sdk.events import encode_event


class Client(ClientCore[httpx.BaseTransport]):
    """A thread-safe EventPulse client.

    Example:
        >>> client = Client(api_key="ep_...", endpoint="https://events.example.com")  # doctest: +SKIP
        >>> client.capture("user_action", "web_app", {"action": "click"}, user_id="12345")  # doctest: +SKIP
        '0193...'
        >>> client.close()  # doctest: +SKIP

    ``capture`` only queues the event (a few microseconds); a background thread, started with the
    first event, sends batches of ``batch_size`` events or whatever has waited ``flush_interval_s``.
    `flush` waits until everything captured so far is resolved; `close` (also called at
    interpreter exit for a client left open) flushes and stops the thread.

    Args:
        api_key: the ``ingest`` key (overrides ``config.api_key``).
        endpoint: the gateway's base URL (overrides ``config.endpoint``).
        config: the other settings; default `ClientConfig.from_env()`.
        on_report: called on the sending thread with a `BatchReport` after each batch.
        transport: an httpx transport (tests, proxies, custom TLS).
    """

    def _reset_state(self) -> None:
        super()._reset_state()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def capture(
        self,
        type: str,
        source: str,
        data: Mapping[str, Any] | None = None,
        *,
        user_id: str | int | None = None,
        timestamp: datetime | int | None = None,
        id: str | None = None,
    ) -> str | None:
        """Queue an event; return its id, or None if the overflow policy dropped it.

        ``user_id`` goes to ``data.user_id``; ``timestamp`` (a datetime, or epoch milliseconds)
        defaults to now; ``id`` defaults to a new UUIDv7. Raises `ValueError`/`TypeError` for an
        event JSON cannot carry, `QueueFullError` under ``overflow="raise"``, `ClientClosedError`
        after `close`.
        """
        event_id, payload = encode_event(type, source, data, user_id=user_id, timestamp=timestamp, id=id)
        if self._pid != os.getpid():  # a forked child: the parent's thread and queue are not ours
            self._reset_state()
        with self._cond:
            admitted = self._admit_now()
            if admitted is None:  # "block": wait for room
                room = self._cond.wait_for(
                    lambda: not self._buffer.full() or self._closing, self.config.block_timeout_s
                )
                if self._closing:
                    raise ClientClosedError("the client is closed")
                if not room:
                    self._drop_newest()
                    return None
            elif not admitted:
                return None
            buffer = self._buffer
            buffer.append(event_id, payload, time.monotonic())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="eventpulse-sdk", daemon=True)
                self._thread.start()
            # wake the sender only when it has something new to do: a first event to time, a full batch
            waiting, size = len(buffer.waiting), buffer.waiting_bytes
            if (
                waiting == 1
                or waiting == self.config.batch_size
                or size - len(payload) < self.config.batch_max_bytes <= size
            ):
                self._cond.notify_all()
        return event_id

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is queued now and wait until each of those events is delivered, rejected or
        failed; False if ``timeout`` seconds passed first."""
        with self._cond:
            mark = self._buffer.next_seq
            self._buffer.flush_mark = max(self._buffer.flush_mark, mark)
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._buffer.oldest_unresolved() >= mark, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush (for at most ``timeout``, default ``shutdown_timeout_s``) and stop; what could not
        be sent by then is reported failed. True if nothing had to be given up."""
        limit = self.config.shutdown_timeout_s if timeout is None else timeout
        with self._cond:
            if self._closed:
                return True
            self._closing, self._deadline = True, time.monotonic() + limit
            abandoned = self._abandoned
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(limit + 1.0)
        with self._cond:
            complete = self._abandoned == abandoned and self._buffer.oldest_unresolved() >= self._buffer.next_seq
            report = self._fail_waiting()
            self._closed = True
        self._report(report)
        return complete

    def _close_at_exit(self) -> None:
        if not self._closed and self._pid == os.getpid():
            self.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _pause(self, seconds: float) -> None:
        """Wait up to ``seconds``, less if a shutdown begins meanwhile (the deadline is then known)."""
        with self._cond:
            self._cond.wait_for(lambda: self._closing, seconds)

    def _run(self) -> None:
        with sync_http(self.config, self._http_transport) as http:
            while True:
                with self._cond:
                    batch = self._take()
                    while batch is None:
                        if self._closing and not self._buffer.waiting:
                            return
                        self._cond.wait(self._wait_s())
                        batch = self._take()
                outcome = drive_sync(self._delivery(batch), http, self.config, lambda: self._deadline, self._pause)
                with self._cond:
                    report = self._settle(outcome)
                    self._cond.notify_all()
                self._report(report)
