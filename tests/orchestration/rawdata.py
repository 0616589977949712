"""Raw events for orchestration tests, straight into ``events`` (as the dataflow writes them).

The end-to-end tests use the real pipeline (`tests.support.pipeline`) instead when it exists;
these direct inserts keep the unit-sized tests fast and deterministic.
"""

from datetime import UTC, date, datetime, time

from clickhouse_connect.driver.client import Client

from devstack.traffic.generator import EventFactory, TrafficProfile
from eventpulse.config.events import EventLimits
from eventpulse.events.model import RAW_EVENT_COLUMNS
from eventpulse.events.validation import EventValidator

PROFILE = TrafficProfile(tenants=3, types=3, sources=2, users_per_tenant=50, invalid_share=0.0)


def day_start_ms(day: date, hour: int = 0, minute: int = 0) -> int:
    return int(datetime.combine(day, time(hour, minute), tzinfo=UTC).timestamp() * 1000)


def raw_rows(n: int, start_ms: int, *, seed: int = 1, rate_per_s: float = 20.0, offset: int = 0) -> list[tuple]:
    """``n`` valid raw-event rows (timestamps as datetimes) whose event times start at ``start_ms``."""
    validator = EventValidator(EventLimits(max_past_age_s=10 * 365 * 86400))
    rows = []
    for i, message in enumerate(EventFactory(PROFILE, seed).messages(n, start_ms, rate_per_s)):
        event = validator.parse_wire(message.value)
        row = list(event.raw_row(i % 4, offset + i))
        row[2] = datetime.fromtimestamp(row[2] / 1000, UTC)
        row[11] = datetime.fromtimestamp(row[11] / 1000, UTC)
        rows.append(tuple(row))
    return rows


def insert_raw(client: Client, rows: list[tuple]) -> None:
    client.insert("events", rows, column_names=list(RAW_EVENT_COLUMNS))
