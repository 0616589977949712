"""Fill a warehouse database without the streaming pipeline: raw events from the traffic
generator, then window rows recomputed from them by the batch SQL (the spec's other engine).

Used where the dataflow is not the point (unit-level page checks, the SQL console, the search)
and as the fallback while the pipeline helpers are unavailable.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from devstack.traffic.generator import EventFactory, TrafficProfile
from eventpulse.aggregation.batch_sql import output_columns, recompute_query
from eventpulse.aggregation.spec import BATCH_VERSION_BASE, window_specs
from eventpulse.config.events import EventLimits
from eventpulse.events import RAW_EVENT_COLUMNS, EventValidator, ValidEvent

PROFILE = TrafficProfile(tenants=4, users_per_tenant=200, invalid_share=0.02)


@dataclass(frozen=True)
class Seeded:
    """What was written: the event-time range and counts."""

    start: datetime
    end: datetime
    events: int
    dead_letters: int


def seed(client: Client, n: int, start_ms: int, rate_per_s: float, seed_value: int = 7) -> Seeded:
    """Insert ``n`` generated messages (valid ones as raw events, invalid as dead letters) and
    their window rows (10 s, 60 s, 300/60 s), all final, with batch versions."""
    validator = EventValidator(EventLimits())
    rows, dead = [], []
    for offset, message in enumerate(EventFactory(PROFILE, seed_value).messages(n, start_ms, rate_per_s)):
        parsed = validator.parse_wire(message.value, default_id=f"events:0:{offset}")
        if isinstance(parsed, ValidEvent):
            row = list(parsed.raw_row(0, offset))
            rows.append(row)
        else:
            received = datetime.fromtimestamp((start_ms + offset * 1000 / rate_per_s) / 1000, tz=UTC)
            payload = message.value.decode("utf-8", "replace")
            reason, field, detail = str(parsed.reason), parsed.field or "", parsed.detail or ""
            dead.append(
                [
                    f"events:0:{offset}",
                    message.tenant,
                    "flow",
                    reason,
                    field,
                    detail,
                    payload,
                    "events",
                    0,
                    offset,
                    received,
                ]
            )
    client.insert("events", rows, column_names=list(RAW_EVENT_COLUMNS))
    if dead:
        names = ["id", "tenant", "stage", "reason", "field", "detail", "payload", "topic"]
        client.insert("dead_letters", dead, column_names=[*names, "topic_partition", "topic_offset", "received_at"])
    start = datetime.fromtimestamp(start_ms // 60_000 * 60 - 300, tz=UTC)
    end = datetime.fromtimestamp((start_ms + n * 1000 / rate_per_s) // 60_000 * 60 + 360, tz=UTC)
    recompute_windows(client, start, end)
    return Seeded(start, end, len(rows), len(dead))


def recompute_windows(client: Client, start: datetime, end: datetime) -> None:
    """Write the batch recomputation of every window family starting in ``[start, end)``."""
    columns = ", ".join(output_columns())
    for spec in window_specs((10, 60), ((300, 60),)):
        sql, params = recompute_query(spec, start, end)
        client.command(
            f"""INSERT INTO window_aggregates ({columns}, is_final, origin, version, emitted_at)
                SELECT {columns}, 1, 'batch', {BATCH_VERSION_BASE + 1}, now64(3) FROM ({sql})""",
            parameters=params,
        )


def reopen_newest_minute(client) -> datetime:
    """Make the newest 60 s windows open again (``is_final`` 0, a newer stream emission), as the
    dataflow leaves the current minute until it closes. Returns that minute's start."""
    newest = client.query(
        "SELECT max(window_start) FROM window_aggregates WHERE window_seconds = 60 AND slide_seconds = 60"
    ).result_rows[0][0]
    client.command(
        """INSERT INTO window_aggregates
           SELECT * REPLACE (0 AS is_final, 'stream' AS origin, version + 1 AS version)
           FROM window_aggregates FINAL
           WHERE window_seconds = 60 AND slide_seconds = 60 AND window_start = {start:DateTime64(3, 'UTC')}""",
        parameters={"start": newest},
    )
    return newest.replace(tzinfo=UTC)
