"""What the sync and the async client share: settings, the queue and its overflow policy, settling
a sent batch, reports, and the exit hook. Callers hold the client's lock (sync) or run on its loop."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import httpx

from eventpulse_sdk._buffer import EventBuffer, Stats
from eventpulse_sdk._delivery import (
    BATCH_PATH,
    Abandon,
    Backoff,
    BatchReport,
    Delivery,
    Failed,
    Outcome,
    Post,
    Reply,
    Sleep,
    Transport,
    deliver,
)
from eventpulse_sdk._version import __version__
from eventpulse_sdk.config import ClientConfig
from eventpulse_sdk.events import QueuedEvent

log = logging.getLogger("eventpulse_sdk")

ReportCallback = Callable[[BatchReport], None]
CLOSED_ERROR = "client closed before the event was delivered"


class QueueFullError(Exception):
    """`capture` under ``overflow="raise"`` found ``max_queue_size`` events queued."""


class ClientClosedError(RuntimeError):
    """`capture` after `close`."""


def _headers(config: ClientConfig) -> dict[str, str]:
    return {"X-API-Key": config.api_key, "User-Agent": f"eventpulse-sdk-python/{__version__}"}


def sync_http(config: ClientConfig, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=config.endpoint, headers=_headers(config), timeout=config.timeout_s, transport=transport
    )


def async_http(config: ClientConfig, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=config.endpoint, headers=_headers(config), timeout=config.timeout_s, transport=transport
    )


def reply_of(response: httpx.Response) -> Reply:
    return Reply(response.status_code, response.headers, response.content)


def request_timeout(config: ClientConfig, deadline: float | None) -> float:
    """The request's timeout: ``timeout_s``, shortened to what is left before a shutdown deadline."""
    if deadline is None:
        return config.timeout_s
    return max(0.001, min(config.timeout_s, deadline - time.monotonic()))


def drive_sync(
    gen: Delivery,
    http: httpx.Client,
    config: ClientConfig,
    deadline: Callable[[], float | None],
    pause: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Run a `deliver` generator with blocking I/O. ``pause(s)`` waits up to ``s`` (it may return
    early when a shutdown begins); past the shutdown ``deadline()`` the batch is abandoned."""
    try:
        command: Post | Sleep = next(gen)
        while True:
            limit = deadline()
            if isinstance(command, Sleep):
                end = time.monotonic() + command.seconds
                pause(command.seconds)
                limit = deadline()
                if limit is not None and end > limit:
                    command = gen.throw(Abandon())
                    continue
                time.sleep(max(0.0, end - time.monotonic()))
                command = gen.send(None)
                continue
            if limit is not None and time.monotonic() >= limit:
                command = gen.throw(Abandon())
                continue
            try:
                reply: Reply | BaseException = reply_of(
                    http.post(
                        BATCH_PATH,
                        content=command.body,
                        headers=command.headers,
                        timeout=request_timeout(config, limit),
                    )
                )
            except httpx.TransportError as exc:
                reply = exc
            command = gen.send(reply)
    except StopIteration as stop:
        result: Outcome = stop.value
        return result


TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)


class ClientCore(Generic[TransportT]):
    """Settings, queue, counters and callbacks of one client (``TransportT``: its httpx transport's kind)."""

    def __init__(
        self,
        api_key: str | None = None,
        endpoint: str | None = None,
        *,
        config: ClientConfig | None = None,
        on_report: ReportCallback | None = None,
        transport: TransportT | None = None,
    ) -> None:
        self._http_transport: TransportT | None = transport
        base = config if config is not None else ClientConfig.from_env()
        if api_key is not None:
            base = dataclasses.replace(base, api_key=api_key)
        if endpoint is not None:
            base = dataclasses.replace(base, endpoint=endpoint)
        self.config = base
        self._on_report = on_report
        self._reset_state()
        _register(self)

    def _reset_state(self) -> None:
        self._pid = os.getpid()
        self._buffer = EventBuffer(self.config.max_queue_size)
        self._transport = Transport(self.config.gzip)
        self._backoff = Backoff(self.config)
        self._closing = False
        self._closed = False
        self._deadline: float | None = None
        self._dropped_logged = 0
        self._abandoned = 0  # events given up because a shutdown deadline passed

    @property
    def stats(self) -> Stats:
        """A copy of the counters."""
        return dataclasses.replace(self._buffer.stats)

    @property
    def queued(self) -> int:
        """Events waiting or being sent."""
        return len(self._buffer)

    def _admit_now(self) -> bool | None:
        """Whether an event may be queued now: True (room made if need be), False (dropped: the
        policy says so), None (full, and the policy is to wait)."""
        if self._closing:
            raise ClientClosedError("the client is closed")
        buffer = self._buffer
        if not buffer.full():
            return True
        policy = self.config.overflow
        if policy == "drop_oldest" and buffer.drop_oldest() is not None:
            self._log_drop("the oldest waiting event")
            return True
        if policy == "raise":
            raise QueueFullError(f"{buffer.capacity} events are queued (max_queue_size)")
        if policy == "block":
            return None
        self._drop_newest()
        return False

    def _drop_newest(self) -> None:
        self._buffer.stats.dropped += 1
        self._log_drop("the new event")

    def _log_drop(self, which: str) -> None:
        dropped = self._buffer.stats.dropped
        if dropped >= self._dropped_logged * 2 or dropped - self._dropped_logged >= 10_000:  # 1, 2, 4, 8, ...
            self._dropped_logged = dropped
            log.warning(
                "eventpulse: queue full (%d events), dropped %s (%d dropped so far)",
                self._buffer.capacity,
                which,
                dropped,
            )

    def _take(self) -> list[QueuedEvent] | None:
        """The next batch to send now, or None (see `_wait_s` for how long to wait)."""
        c = self.config
        if self._buffer.ready(c.batch_size, c.batch_max_bytes, c.flush_interval_s, time.monotonic()) == 0 or (
            self._closing and self._buffer.waiting
        ):
            return self._buffer.take(c.batch_size, c.batch_max_bytes)
        return None

    def _wait_s(self) -> float | None:
        c = self.config
        return self._buffer.ready(c.batch_size, c.batch_max_bytes, c.flush_interval_s, time.monotonic())

    def _delivery(self, batch: list[QueuedEvent]) -> Delivery:
        return deliver(batch, self.config, self._transport, self._backoff)

    def _settle(self, outcome: Outcome) -> BatchReport:
        """Count what the batch in flight became; events it left unresolved failed (shutdown)."""
        report = outcome.report
        report.failed += [Failed(e.id, CLOSED_ERROR) for e in outcome.unresolved]
        self._abandoned += len(outcome.unresolved)
        stats = self._buffer.stats
        stats.requests += outcome.requests
        stats.retries += outcome.retries
        stats.delivered += len(report.delivered)
        stats.duplicates += report.duplicates
        stats.rejected += len(report.rejected)
        stats.failed += len(report.failed)
        self._buffer.settle()
        return report

    def _fail_waiting(self) -> BatchReport:
        """Every waiting event failed (the shutdown deadline passed before it was sent)."""
        failed = [Failed(e.id, CLOSED_ERROR) for e in self._buffer.waiting]
        self._buffer.waiting.clear()
        self._buffer.waiting_bytes = 0
        self._buffer.stats.failed += len(failed)
        self._abandoned += len(failed)
        return BatchReport(failed=failed)

    def _report(self, report: BatchReport) -> None:
        """Log what failed and hand the report to ``on_report`` (outside any lock)."""
        if report.failed:
            log.warning("eventpulse: %d event(s) not delivered: %s", len(report.failed), report.failed[0].error)
        if report.rejected:
            first = report.rejected[0]
            log.warning(
                "eventpulse: %d event(s) rejected by the gateway, e.g. %s (%s): %s",
                len(report.rejected),
                first.reason,
                first.field,
                first.detail,
            )
        if self._on_report is not None and (report.delivered or report.rejected or report.failed):
            try:
                self._on_report(report)
            except Exception:
                log.exception("eventpulse: on_report raised")

    def _close_at_exit(self) -> None:
        """Called by the exit hook for a client left open: send what is queued within ``shutdown_timeout_s``."""
        raise NotImplementedError


_live: weakref.WeakSet[ClientCore[Any]] = weakref.WeakSet()
_hook_lock = threading.Lock()
_hooked = False


def _register(client: ClientCore[Any]) -> None:
    """Remember ``client`` for the exit hook (registered once, with the first client, not at import)."""
    global _hooked
    with _hook_lock:
        _live.add(client)
        if not _hooked:
            atexit.register(_close_all)
            _hooked = True


def _close_all() -> None:
    for client in list(_live):
        try:
            client._close_at_exit()
        except Exception:
            log.exception("eventpulse: closing a client at exit failed")
