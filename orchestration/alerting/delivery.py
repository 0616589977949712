"""Post firings to webhooks (httpx) with retries; record every firing in ``alerts``, deduplicated.

Deduplication: a firing is identified by its ``dedup_key`` (rule, tenant, type, window). One
already delivered is never posted again; one that could not be delivered is retried on later
evaluations. Each request carries ``Idempotency-Key: <dedup_key>`` so a receiver can drop the
duplicate a retry after a lost response may cause.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from clickhouse_connect.driver.client import Client

from orchestration.alerting.firing import ALERT_COLUMNS, Firing

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class DeliveryPolicy:
    urls: tuple[str, ...]
    attempts: int = 4
    backoff_s: float = 0.5
    timeout_s: float = 5.0


def post_json(
    client: httpx.Client, url: str, body: dict[str, Any], key: str, policy: DeliveryPolicy
) -> tuple[bool, int, str]:
    """POST ``body`` to ``url``, retrying transient failures; ``(delivered, attempts, last error)``."""
    error = ""
    for attempt in range(1, policy.attempts + 1):
        try:
            response = client.post(url, json=body, headers={"Idempotency-Key": key})
            if response.is_success:
                return True, attempt, ""
            error = f"HTTP {response.status_code}"
            if response.status_code not in _RETRY_STATUS:
                return False, attempt, error
        except httpx.TransportError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt < policy.attempts:
            time.sleep(policy.backoff_s * 2 ** (attempt - 1))
    return False, policy.attempts, error


def post(client: httpx.Client, url: str, firing: Firing, policy: DeliveryPolicy) -> tuple[bool, int, str]:
    """POST the firing to ``url`` (see `post_json`)."""
    return post_json(client, url, firing.payload(), firing.dedup_key, policy)


def known(client: Client, keys: list[str]) -> dict[str, Firing]:
    """Firings already recorded, by dedup key."""
    if not keys:
        return {}
    result = client.query(
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts FINAL WHERE dedup_key IN {{keys:Array(String)}}",
        parameters={"keys": keys},
    )
    return {row["dedup_key"]: Firing(**row) for row in result.named_results()}


def pending(client: Client, within: timedelta = timedelta(days=1)) -> list[Firing]:
    """Recent firings no webhook accepted yet."""
    result = client.query(
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts FINAL WHERE delivered = 0 "
        "AND fired_at >= {since:DateTime64(3, 'UTC')}",
        parameters={"since": datetime.now(UTC) - within},
    )
    return [Firing(**row) for row in result.named_results()]


@dataclass
class AlertDeliveryOutcome:
    new: int = 0
    duplicates: int = 0
    delivered: int = 0
    failed: int = 0


def process(client: Client, firings: list[Firing], policy: DeliveryPolicy) -> AlertDeliveryOutcome:
    """Record new firings, deliver them and the pending ones, skip those already delivered."""
    report = AlertDeliveryOutcome()
    seen = known(client, [f.dedup_key for f in firings])
    todo: dict[str, Firing] = {f.dedup_key: f for f in pending(client)} if policy.urls else {}
    for firing in firings:
        previous = seen.get(firing.dedup_key)
        if previous is None:
            report.new += 1
            todo[firing.dedup_key] = firing
        else:
            report.duplicates += 1
    rows = []
    with httpx.Client(timeout=policy.timeout_s) as http:
        for firing in todo.values():
            results = [post(http, url, firing, policy) for url in policy.urls]
            firing.attempts += sum(r[1] for r in results)
            firing.delivered = int(bool(results) and all(r[0] for r in results))
            firing.last_error = "; ".join(r[2] for r in results if r[2])
            firing.delivered_at = datetime.now(UTC) if firing.delivered else None
            firing.updated_at = datetime.now(UTC)
            report.delivered += firing.delivered
            report.failed += bool(policy.urls) and not firing.delivered
            rows.append(firing.row())
    if rows:
        client.insert("alerts", rows, column_names=list(ALERT_COLUMNS))
    return report
