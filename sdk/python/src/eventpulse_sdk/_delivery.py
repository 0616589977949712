"""Sending one batch until each of its events is resolved, without I/O ("sans-io").

`deliver` is a generator: it yields `Post` (send this body) and `Sleep` (wait this long) and is
sent back a `Reply` or the transport's exception; it returns the batch's `Outcome`. The sync
client drives it with httpx.Client and ``time.sleep``, the async one with httpx.AsyncClient and
``asyncio.sleep``, so both follow the same rules:

* 202/207/422: each event is delivered (``ids[i]``) or rejected (``errors``, with the gateway's
  reason); rejections are final, the gateway keeps them as dead letters.
* 429, 503, 408, 500, 502, 504 and connection errors or timeouts: the events not yet acknowledged
  (a 503 names them in ``not_accepted``) are sent again, with the same ids and timestamps, after
  the ``Retry-After`` the gateway asked for or an exponential backoff with full jitter.
* 413: the batch is split in halves (a single event is sent once more uncompressed, then rejected).
* 415 to a compressed body: compression is turned off and the batch is sent again.
* anything else (400, 401, 403, 404, ...): the batch fails; resending would get the same answer.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import random
import time
from collections import deque
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from eventpulse_sdk.config import ClientConfig
from eventpulse_sdk.events import QueuedEvent, batch_body

BATCH_PATH = "/api/events/batch"
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Post:
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # httpx.Headers: case-insensitive
    body: bytes


class Abandon(Exception):
    """Thrown into `deliver` to stop it (shutdown deadline, cancelled task): it returns at once."""


@dataclass(frozen=True)
class Rejected:
    """An event the gateway refused, with its answer (``reason`` as in the gateway's dead letters)."""

    id: str
    reason: str
    field: str | None
    detail: str


@dataclass(frozen=True)
class Failed:
    """An event given up without an answer for it: why (the last error)."""

    id: str
    error: str


@dataclass
class BatchReport:
    """What became of one batch (`Client` passes it to ``on_report``)."""

    delivered: list[str] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)


@dataclass
class Outcome:
    report: BatchReport
    requests: int = 0
    retries: int = 0
    unresolved: list[QueuedEvent] = field(default_factory=list)  # left when abandoned


Delivery = Generator[Post | Sleep, Reply | BaseException | None, Outcome]
"""A running `deliver`: yields commands, is sent answers, returns the `Outcome`."""


@dataclass
class Transport:
    """Per-client state the rules change: compression goes off after a 415."""

    gzip: bool


class Backoff:
    """Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
    retry ``n`` waits a uniform random time in ``[0, min(max, initial * 2**(n-1))]``, so clients
    that failed together do not come back together. A ``Retry-After`` is waited for in full (capped
    by ``retry_after_max_s``), plus a jitter of up to ``initial``."""

    def __init__(self, config: ClientConfig, rng: random.Random | None = None) -> None:
        self._initial, self._max, self._after_max = (
            config.backoff_initial_s,
            config.backoff_max_s,
            config.retry_after_max_s,
        )
        self._rng = rng or random.Random()

    def delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._after_max) + self._rng.uniform(0, self._initial)
        bound = min(self._max, self._initial * 2 ** min(retry - 1, 62))
        return self._rng.uniform(0, bound)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, inf
        return None
    return max(0.0, seconds)


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


@dataclass
class _Step:
    """What one answer means for the chunk that was sent."""

    retry: list[QueuedEvent] = field(default_factory=list)
    retry_after: float | None = None
    error: str = ""
    split: bool = False
    uncompressed: bool = False


def _judge(reply: Reply | BaseException, chunk: list[QueuedEvent], compressed: bool, report: BatchReport) -> _Step:
    """Record in ``report`` what ``reply`` resolved; return what is left to do."""
    if isinstance(reply, BaseException):
        return _Step(retry=chunk, error=f"{type(reply).__name__}: {reply}")
    status, doc = reply.status, _json(reply.body)
    error = f"HTTP {status} {doc.get('error', '')}: {doc.get('detail', reply.body[:200].decode('utf-8', 'replace'))}"
    if status in (202, 207, 422):
        ids = doc.get("ids")
        if not isinstance(ids, list) or len(ids) != len(chunk):
            ids = [e.id for e in chunk] if status == 202 else [None] * len(chunk)
        errors = {e.get("index"): e for e in doc.get("errors", []) if isinstance(e, dict)}
        for i, event in enumerate(chunk):
            if ids[i] is not None:
                report.delivered.append(event.id)
            else:
                why = errors.get(i, {})
                report.rejected.append(
                    Rejected(event.id, str(why.get("reason", "rejected")), why.get("field"), str(why.get("detail", "")))
                )
        report.duplicates += int(doc.get("duplicates", 0) or 0)
        return _Step()
    retry_after = parse_retry_after(reply.headers.get("retry-after"))
    if status == 503:
        accepted = set(doc.get("accepted") or [])
        report.delivered += [e.id for e in chunk if e.id in accepted]
        return _Step([e for e in chunk if e.id not in accepted], retry_after, error)
    if status in RETRYABLE:
        return _Step(chunk, retry_after, error)
    if status == 413:
        if len(chunk) > 1:
            return _Step(split=True)
        if compressed:
            return _Step(uncompressed=True)
        report.rejected += [Rejected(e.id, "payload_too_large", None, error) for e in chunk]
        return _Step()
    if status == 415 and compressed:
        return _Step(uncompressed=True)
    report.failed += [Failed(e.id, error) for e in chunk]
    return _Step()


def deliver(events: list[QueuedEvent], config: ClientConfig, transport: Transport, backoff: Backoff) -> Delivery:
    """Send ``events`` until every one is delivered, rejected or failed (see the module's rules)."""
    outcome = Outcome(BatchReport())
    work: deque[tuple[list[QueuedEvent], bool]] = deque([(events, transport.gzip)])
    failures = 0  # consecutive failed attempts of the chunk in front
    try:
        while work:
            chunk, compress = work[0]
            body, headers = batch_body(chunk), {"Content-Type": "application/json"}
            if compress:
                body, headers["Content-Encoding"] = gzip.compress(body, config.gzip_level, mtime=0), "gzip"
            outcome.requests += 1
            reply = yield Post(body, headers)
            assert reply is not None, "deliver is sent the answer to each Post"
            step = _judge(reply, chunk, compress, outcome.report)
            work.popleft()
            if step.split:
                half = len(chunk) // 2
                work.extendleft([(chunk[half:], compress), (chunk[:half], compress)])
                failures = 0
            elif step.uncompressed:
                transport.gzip = transport.gzip and not (isinstance(reply, Reply) and reply.status == 415)
                work.appendleft((chunk, False))
            elif step.retry:
                failures += 1
                if config.max_retries is not None and failures > config.max_retries:
                    outcome.report.failed += [
                        Failed(e.id, f"gave up after {failures} attempts: {step.error}") for e in step.retry
                    ]
                    failures = 0
                    continue
                work.appendleft((step.retry, compress))
                outcome.retries += 1
                yield Sleep(backoff.delay(failures, step.retry_after))
            else:
                failures = 0
    except Abandon:
        outcome.unresolved = [e for chunk, _ in work for e in chunk]
    return outcome
