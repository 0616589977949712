"""Send generated traffic through the gateway: NDJSON batches with an API key, retried on 429/503.

Used by ``eventpulse traffic --target gateway``. Every event goes to the API key's tenant (the
gateway ignores a ``tenant`` in the body). A refused request (429, 503, connection error) is
resent unchanged after ``Retry-After``, same ids included, so nothing is duplicated downstream.
Invalid generated messages are sent too: the gateway answers 207 and dead-letters them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import httpx

from devstack.traffic.generator import GeneratedMessage

log = logging.getLogger(__name__)

BATCH_PATH = "/api/events/batch"


@dataclass
class SendStats:
    """What the gateway answered, in events."""

    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    retries: int = 0
    failed_batches: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


def ndjson(batch: Iterable[GeneratedMessage]) -> bytes:
    return b"\n".join(message.value for message in batch)


async def send_batch(
    client: httpx.AsyncClient, body: bytes, count: int, stats: SendStats, *, max_attempts: int = 8
) -> bool:
    """POST one NDJSON batch until it is answered 2xx/207/422 (or ``max_attempts`` run out)."""
    delay = 0.5
    for attempt in range(1, max_attempts + 1):
        try:
            response = await client.post(BATCH_PATH, content=body, headers={"Content-Type": "application/x-ndjson"})
        except httpx.TransportError as exc:
            log.warning("gateway unreachable (%s), attempt %d", exc, attempt)
            stats.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            continue
        stats.statuses[response.status_code] = stats.statuses.get(response.status_code, 0) + 1
        if response.status_code in (202, 207, 422):
            result = response.json()
            stats.accepted += result["accepted"]
            stats.rejected += result["rejected"]
            stats.duplicates += result["duplicates"]
            return True
        if response.status_code in (429, 503):
            stats.retries += 1
            await asyncio.sleep(float(response.headers.get("Retry-After", delay)))
            continue
        raise RuntimeError(f"gateway refused a batch of {count}: {response.status_code} {response.text[:500]}")
    stats.failed_batches += 1
    return False


async def send_batches(
    url: str,
    api_key: str,
    batches: Iterable[list[GeneratedMessage]],
    *,
    progress: Callable[[int], object] | None = None,
    concurrency: int = 4,
    max_batch: int = 1000,
    timeout_s: float = 60.0,
) -> SendStats:
    """Send every batch (split to ``max_batch`` events) with up to ``concurrency`` requests in flight.

    ``batches`` may block (a paced generator): it is read on a worker thread.
    """
    stats = SendStats()
    source: Iterator[list[GeneratedMessage]] = iter(batches)
    queue: asyncio.Queue[list[GeneratedMessage] | None] = asyncio.Queue(concurrency * 2)

    async def feed() -> None:
        try:
            while (batch := await asyncio.to_thread(next, source, None)) is not None:
                for start in range(0, len(batch), max_batch):
                    await queue.put(batch[start : start + max_batch])
        finally:
            for _ in range(concurrency):
                await queue.put(None)

    async def worker(client: httpx.AsyncClient) -> None:
        while (chunk := await queue.get()) is not None:
            await send_batch(client, ndjson(chunk), len(chunk), stats)
            if progress:
                progress(len(chunk))

    headers = {"Authorization": f"Bearer {api_key}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s, limits=limits) as client:
        feeder = asyncio.create_task(feed())
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        await feeder
    return stats
