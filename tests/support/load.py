"""Generated load through the gateway with known ids, retried with the same ids, acknowledgements recorded.

What a careful client does: every event carries an id it chose (``<run>-<n>``), a batch that fails
(connection refused or reset, timeout, 5xx) is sent again unchanged after a short pause, so the
gateway and the stream may see an id twice but never lose one, and an event counts as
*acknowledged* only when the gateway answered 2xx for it (or listed it in a 503's ``accepted``).
The fault tests then check the warehouse against the acknowledged ids::

    with LoadDriver(gateway_url, [key], run="a", rate_per_s=500) as load:
        ...  # inject faults while the load runs
    assert load.acknowledged.keys() <= stored_ids
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx
import orjson

from devstack.traffic.generator import EventFactory, TrafficProfile

BATCH_PATH = "/api/events/batch"


@dataclass
class LoadStats:
    """What the driver saw, in requests and events."""

    requests: int = 0
    retries: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    gave_up: int = 0  # events still unacknowledged when the driver was stopped

    def count(self, status: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


class LoadDriver:
    """Send ``rate_per_s`` events/s in batches of ``batch_size`` from ``workers`` threads until stopped.

    Args:
        url: the gateway's base URL (it may be down at times: that is the point).
        keys: API keys; batches go to them in turn (each key is a tenant).
        run: prefix of the event ids, unique per scenario.
        timestamp_lag_s: event times are send time minus a random lag in this range (seconds).
        time_range: instead, event times drawn from this wall-clock range (``time.time()`` seconds).
        retry_pause_s: pause before a batch is sent again.
    """

    def __init__(
        self,
        url: str,
        keys: Sequence[str],
        *,
        run: str,
        rate_per_s: float = 500.0,
        batch_size: int = 50,
        workers: int = 4,
        timestamp_lag_s: tuple[float, float] = (0.0, 2.0),
        time_range: tuple[float, float] | None = None,
        retry_pause_s: float = 0.2,
        timeout_s: float = 15.0,  # above the gateway's 10 s ack timeout: its 503 arrives
        seed: int = 0,
    ) -> None:
        self.url, self.keys, self.run = url, list(keys), run
        self.batch_size, self.workers = batch_size, workers
        self._interval = batch_size * workers / rate_per_s  # seconds between two batches of one worker
        self._lag, self._range = timestamp_lag_s, time_range
        self._retry_pause, self._timeout = retry_pause_s, timeout_s
        self._factory = EventFactory(TrafficProfile(invalid_share=0.0), seed=seed)
        self._rng = random.Random(seed)
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._threads: list[threading.Thread] = []
        self.acknowledged: dict[str, float] = {}  # id -> wall-clock time of its acknowledgement
        self.sent: set[str] = set()
        self.stats = LoadStats()
        self.on_ack: Callable[[list[str]], Any] | None = None
        self.errors: list[BaseException] = []
        self._drain_deadline = float("inf")

    # -- control ---------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start sending (again, after `stop`: the same ids are never reused)."""
        self._stop.clear()
        self._drain_deadline = float("inf")
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, args=(n,), name=f"load-{self.run}-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, drain_s: float = 60.0) -> None:
        """Stop sending new batches; batches in flight keep retrying for up to ``drain_s`` seconds."""
        self._drain_deadline = time.monotonic() + drain_s
        self._stop.set()
        for thread in self._threads:
            thread.join(drain_s + self._timeout + 5)
        self._threads.clear()
        if self.errors:
            raise self.errors[0]

    def pause(self) -> None:
        """Send no new batch until `resume` (batches in flight finish)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """Block until at least ``count`` events are acknowledged."""
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.acknowledged)} of {count} events acknowledged after {timeout}s")
            time.sleep(0.05)

    def send_now(self, count: int) -> list[str]:
        """Send one batch of ``count`` events from the calling thread (retried until acknowledged); its ids."""
        size, self.batch_size = self.batch_size, count
        try:
            key, ids, body = self._batch()
        finally:
            self.batch_size = size
        with httpx.Client(base_url=self.url, timeout=self._timeout) as client:
            self._send(client, key, ids, body)
        return ids

    def acknowledged_after(self, moment: float) -> list[str]:
        """Ids acknowledged after the wall-clock time ``moment``."""
        with self._lock:
            return [i for i, at in self.acknowledged.items() if at > moment]

    # -- sending ---------------------------------------------------------------------------------

    def _batch(self) -> tuple[str, list[str], bytes]:
        now_ms = time.time_ns() // 1_000_000
        ids, lines = [], []
        with self._lock:
            key = self.keys[next(self._seq) % len(self.keys)]
            for _ in range(self.batch_size):
                if self._range is None:
                    timestamp = now_ms - int(self._rng.uniform(*self._lag) * 1000)
                else:
                    timestamp = int(self._rng.uniform(*self._range) * 1000)
                _, event = self._factory.submission(timestamp)
                event["id"] = f"{self.run}-{next(self._seq):07d}"
                ids.append(event["id"])
                lines.append(orjson.dumps(event))
            self.sent.update(ids)
        return key, ids, b"\n".join(lines)

    def _work(self, n: int) -> None:
        try:
            self._loop(n)
        except BaseException as exc:  # surfaced by stop()
            self.errors.append(exc)
            self._stop.set()

    def _loop(self, n: int) -> None:
        time.sleep(self._interval * n / self.workers)  # spread the workers over the interval
        with httpx.Client(base_url=self.url, timeout=self._timeout) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                if self._paused.is_set():
                    time.sleep(0.02)
                    next_at = time.monotonic()
                    continue
                key, ids, body = self._batch()
                self._send(client, key, ids, body)
                next_at = max(next_at + self._interval, time.monotonic())  # no catching up after an outage
                time.sleep(max(0.0, next_at - time.monotonic()))

    def _send(self, client: httpx.Client, key: str, ids: list[str], body: bytes) -> None:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
        while True:
            self.stats.requests += 1
            try:
                response = client.post(BATCH_PATH, content=body, headers=headers)
            except httpx.TransportError as exc:
                self.stats.count(type(exc).__name__)
            else:
                self.stats.count(str(response.status_code))
                if response.status_code in (202, 207):
                    self._acknowledge(response.json()["ids"])
                    if response.status_code == 207:
                        raise AssertionError(f"valid events refused: {response.text[:500]}")
                    return
                if response.status_code == 503:  # some may be in: they are acknowledged; resend all
                    self._acknowledge(response.json().get("accepted", []))
                elif response.status_code not in (401, 429, 502, 504):  # 401: key cache not loaded yet
                    raise AssertionError(f"gateway answered {response.status_code}: {response.text[:500]}")
            if self._stop.is_set() and time.monotonic() > self._drain_deadline:
                with self._lock:
                    self.stats.gave_up += sum(1 for i in ids if i not in self.acknowledged)
                return
            self.stats.retries += 1
            time.sleep(self._retry_pause)

    def _acknowledge(self, ids: list[str]) -> None:
        now = time.time()
        with self._lock:
            for i in ids:
                self.acknowledged.setdefault(i, now)
        if self.on_ack is not None:
            self.on_ack(ids)
