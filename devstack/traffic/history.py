"""Synthetic history for past days: the generator's traffic, validated as the dataflow validates it, into ``events``.

A fresh stack has no past, so nothing that works on finished days (the batch recompute and its
check, rollups, comparisons, the archive, retention) has anything to show. `load_day` fills one
day with the traffic generator's shapes (`devstack.traffic.generator`: skewed tenants, types and
users, log-normal latencies with spikes, errors), shaped over the day (a daytime peak, quieter
weekends), passed through the dataflow's own validator (`validate_wire_batch`) and inserted as
the dataflow inserts raw events (Arrow, an insert deduplication token per block).

Everything derives from the day and the seed: the same day gives the same events with the same
ids (``hist-YYYYMMDD-…``), and the same blocks carry the same tokens, so loading a day twice
changes nothing (the server drops the repeated blocks; ``events`` is deduplicated by id anyway).
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from devstack.traffic.generator import EventFactory, TrafficProfile
from eventpulse.config.events import EventLimits
from eventpulse.events.arrow import RAW_EVENT_SCHEMA
from eventpulse.events.validation import EventValidator
from eventpulse.events.wire_batch import WIRE_COLUMNS, validate_wire_batch

ID_PREFIX = "hist"
BLOCK_ROWS = 50_000
"""Rows per insert (each with its own deduplication token)."""


def id_prefix(day: date) -> str:
    """The prefix of every history event id of ``day`` (``hist-20261201``)."""
    return f"{ID_PREFIX}-{day:%Y%m%d}"


def hourly_counts(day: date, events_per_day: int) -> list[int]:
    """Events per UTC hour of ``day``: a daytime peak around 14:00, weekends at 70 %."""
    weights = [0.35 + 0.65 * max(0.0, math.cos((hour - 14) * math.pi / 12)) ** 2 for hour in range(24)]
    scale = events_per_day * (0.7 if day.weekday() >= 5 else 1.0) / sum(weights)
    return [round(w * scale) for w in weights]


def expected_events(day: date, events_per_day: int) -> int:
    """How many events `load_day` inserts for ``day``."""
    return sum(hourly_counts(day, events_per_day))


@dataclass(frozen=True)
class LoadedDay:
    day: date
    events: int
    rejected: int


def day_messages(day: date, events_per_day: int, profile: TrafficProfile, seed: int) -> list[bytes]:
    """The wire messages of ``day``, hour by hour, from one generator seeded by the day and ``seed``."""
    factory = EventFactory(profile, seed=seed * 100_003 + day.toordinal(), id_prefix=id_prefix(day))
    midnight_ms = int(datetime.combine(day, time(), tzinfo=UTC).timestamp() * 1000)
    messages: list[bytes] = []
    for hour, count in enumerate(hourly_counts(day, events_per_day)):
        if count:
            start = midnight_ms + hour * 3_600_000 + profile.max_disorder_ms  # disorder stays within the day
            messages += [m.value for m in factory.messages(count, start, rate_per_s=count / 3590.0)]
    return messages


def day_table(messages: list[bytes], limits: EventLimits) -> tuple[pa.Table, int]:
    """The raw-event rows of the valid messages (as the dataflow writes them), and how many were refused."""
    batch = validate_wire_batch(EventValidator(limits), messages, default_id=lambda i: f"history-{i}")
    columns = {name: batch.columns[name] for name in WIRE_COLUMNS}
    columns["topic_partition"] = [0] * len(batch)  # not from the topic: position = index in the day
    columns["topic_offset"] = list(range(len(batch)))
    return pa.table(columns, schema=RAW_EVENT_SCHEMA), len(batch.rejections)


def insert_day(client: Client, day: date, table: pa.Table, token_base: str) -> None:
    """Insert ``table`` in blocks, each with a deduplication token naming the day and the block."""
    for first in range(0, table.num_rows, BLOCK_ROWS):
        block = table.slice(first, BLOCK_ROWS)
        token = f"{token_base}:{day.isoformat()}:{first}:{block.num_rows}"
        client.insert_arrow("events", block, settings={"insert_deduplication_token": token})


def load_day(
    client: Client, day: date, events_per_day: int, profile: TrafficProfile, limits: EventLimits, seed: int = 0
) -> LoadedDay:
    """Generate, validate and insert the history of ``day``."""
    table, rejected = day_table(day_messages(day, events_per_day, profile, seed), limits)
    insert_day(client, day, table, token_base=f"history:{seed}:{events_per_day}:{profile.tenants}")
    return LoadedDay(day, table.num_rows, rejected)


def history_counts(client: Client, days: Iterable[date]) -> dict[date, int]:
    """History events (ids ``hist-…``) already in ``events`` per day, for the days asked."""
    wanted = sorted(set(days))
    if not wanted:
        return {}
    rows = client.query(
        "SELECT toDate(timestamp) AS day, uniqExact(id) FROM events "
        "WHERE timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')} "
        "AND startsWith(id, {prefix:String}) GROUP BY day",
        parameters={
            "start": datetime.combine(wanted[0], time(), tzinfo=UTC),
            "end": datetime.combine(wanted[-1] + timedelta(days=1), time(), tzinfo=UTC),
            "prefix": f"{ID_PREFIX}-",
        },
    ).result_rows
    found = {row[0]: int(row[1]) for row in rows}
    return {day: found.get(day, 0) for day in wanted}
