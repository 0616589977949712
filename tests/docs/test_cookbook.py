"""Every query of the SQL cookbook (docs/cookbook.md) runs on a real warehouse and gives the right answer.

A migrated database is filled once with known data: generated events validated by the real validator
(raw rows, plus a replayed slice stored a second time, as after a crash), the refused ones as dead letters,
window rows recomputed from the raw events by the batch SQL, one window row superseded by a wrong later
version, late events and pipeline metrics. Each query is extracted from the Markdown (a ```sql block whose
first line is ``-- cookbook: NAME``) and its answer compared with the same answer computed in Python from
what was inserted. Merges are stopped, so the duplicates stay and a query without ``FINAL`` would fail.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from devstack.traffic.generator import EventFactory, TrafficProfile
from eventpulse.aggregation.batch_sql import output_columns, recompute_query
from eventpulse.aggregation.spec import BATCH_VERSION_BASE, window_specs
from eventpulse.config.events import EventLimits
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.events.model import DEAD_LETTER_COLUMNS, RAW_EVENT_COLUMNS, ValidEvent
from eventpulse.events.validation import EventValidator
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate

pytestmark = pytest.mark.integration

COOKBOOK = Path(__file__).resolve().parents[2] / "docs" / "cookbook.md"
_BLOCK = re.compile(r"```sql\n(-- cookbook: ([a-z0-9-]+)\n.*?)```", re.S)

# Two days ago, so the data stays inside every table's TTL (pipeline_metrics keeps 30 days) on any date.
DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
START = DAY + timedelta(hours=23, minutes=20)  # the events cross an hour and a day boundary
PERIOD = (DAY, DAY + timedelta(days=2))
TENANT = "tenant-00"
TAMPERED_TENANT = "tenant-02"
WORD = "share"
PROFILE = TrafficProfile(
    tenants=3, types=4, sources=3, users_per_tenant=40, error_share=0.08, invalid_share=0.05, max_disorder_ms=2000
)
N_MESSAGES = 2500
RATE_PER_S = 0.4  # 2,500 messages over ~104 minutes


def cookbook_queries(text: str | None = None) -> dict[str, str]:
    """Name → SQL of every marked query of the cookbook."""
    text = COOKBOOK.read_text() if text is None else text
    queries: dict[str, str] = {}
    for sql, name in _BLOCK.findall(text):
        assert name not in queries, f"two cookbook queries are named {name!r}"
        queries[name] = sql
    return queries


def _ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _minute(ms: int) -> int:
    return ms // 60_000 * 60_000


@dataclass
class Known:
    """What was inserted, as Python values to compute the expected answers from."""

    events: list[ValidEvent] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    late: list[dict[str, Any]] = field(default_factory=list)
    lag: dict[tuple[str, str], float] = field(default_factory=dict)
    since: datetime = START
    tampered: tuple[str, int, int, int] = ("", 0, 0, 0)  # tenant, window start ms, window count, raw count
    common_type: str = ""

    def of_tenant(self, tenant: str = TENANT) -> list[ValidEvent]:
        return [e for e in self.events if e.tenant == tenant]


def _fill(client: Client) -> Known:
    known = Known()
    validator = EventValidator(EventLimits(max_past_age_s=10 * 365 * 86400))
    raw_rows: list[tuple] = []
    dead_rows: list[tuple] = []
    start_ms = _ms(START)
    for offset, message in enumerate(EventFactory(PROFILE, seed=13).messages(N_MESSAGES, start_ms, RATE_PER_S)):
        partition = offset % 4
        received_ms = start_ms + int(offset * 1000 / RATE_PER_S)
        result = validator.parse_wire(message.value)
        if isinstance(result, ValidEvent):
            assert message.valid
            known.events.append(result)
            row = list(result.raw_row(partition, offset))
            row[2], row[11] = _dt(row[2]), _dt(row[11])
            raw_rows.append(tuple(row))
            continue
        assert not message.valid and result.reason == message.reason
        letter = {
            "id": f"events:{partition}:{offset}",
            "tenant": message.tenant,
            "stage": "flow",
            "reason": result.reason.value,
            "field": result.field or "",
            "detail": result.detail,
            "payload": message.value[:16384].decode(errors="replace"),
            "topic": "events",
            "topic_partition": partition,
            "topic_offset": offset,
            "received_at": _dt(received_ms),
        }
        known.dead_letters.append(letter)
        dead_rows.append(tuple(letter[c] for c in DEAD_LETTER_COLUMNS))
    assert len(known.dead_letters) >= 50 and len({d["reason"] for d in known.dead_letters}) >= 4

    for table in ("events", "dead_letters", "window_aggregates", "late_events"):
        client.command(f"SYSTEM STOP MERGES {table}")  # keep the replayed duplicates: FINAL must matter
    client.insert("events", raw_rows, column_names=list(RAW_EVENT_COLUMNS))
    # A replay after a crash: the same events stored a second time at other offsets.
    replayed = [(*row[:13], row[13] + 1_000_000) for row in raw_rows[100:400] + raw_rows[-300:]]
    client.insert("events", replayed, column_names=list(RAW_EVENT_COLUMNS))
    client.insert("dead_letters", dead_rows, column_names=list(DEAD_LETTER_COLUMNS))
    client.insert("dead_letters", dead_rows[:20], column_names=list(DEAD_LETTER_COLUMNS))

    # Window rows recomputed from the raw events (what a backfill writes), then one wrong later version.
    columns = ", ".join((*output_columns(), "is_final", "origin", "version", "emitted_at"))
    for window in window_specs((10, 60), ((300, 60),)):
        sql, params = recompute_query(window, *PERIOD)
        client.command(
            f"INSERT INTO window_aggregates ({columns}) SELECT *, 1, 'batch', {{version:UInt64}}, now64(3) FROM ({sql})",
            parameters={**params, "version": BATCH_VERSION_BASE + 1},
        )
    # The stream's earlier, provisional emissions of the tenant's minute windows: lower versions, half counts.
    halved = ", ".join("intDiv(event_count, 2)" if c == "event_count" else c for c in output_columns())
    client.command(
        f"INSERT INTO window_aggregates ({columns}) SELECT {halved}, 0, 'stream', 1, now64(3) FROM window_aggregates "
        "WHERE tenant = {t:String} AND window_seconds = 60 AND slide_seconds = 60",
        parameters={"t": TENANT},
    )
    minutes = Counter(_minute(e.timestamp_ms) for e in known.of_tenant(TAMPERED_TENANT))
    minute_ms, raw_count = sorted(minutes.items())[len(minutes) // 2]
    result = client.query(
        "SELECT * FROM window_aggregates FINAL WHERE tenant = {t:String} AND window_seconds = 60 "
        "AND slide_seconds = 60 AND type = '*' AND source = '*' AND window_start = {w:DateTime64(3, 'UTC')}",
        parameters={"t": TAMPERED_TENANT, "w": _dt(minute_ms)},
    )
    (row,) = result.named_results()
    assert row["event_count"] == raw_count
    row.update(event_count=raw_count + 3, version=row["version"] + 1, origin="stream")
    client.insert("window_aggregates", [list(row.values())], column_names=list(row))
    known.tampered = (TAMPERED_TENANT, minute_ms, raw_count + 3, raw_count)

    # Late events: some events missed their 10 s and 60 s windows; a replay records 10 of them again.
    rng = random.Random(5)
    late_rows = []
    for event in rng.sample(known.events, 40):
        for seconds in (10, 60):
            window_start = event.timestamp_ms // (seconds * 1000) * seconds * 1000
            window_end = window_start + seconds * 1000
            lateness = rng.randint(61_000, 900_000)
            late = {
                "tenant": event.tenant,
                "id": event.id,
                "timestamp": _dt(event.timestamp_ms),
                "type": event.type,
                "source": event.source,
                "user_id": event.user_id,
                "latency_ms": event.latency_ms,
                "is_error": int(event.is_error),
                "window_seconds": seconds,
                "slide_seconds": seconds,
                "window_start": _dt(window_start),
                "window_end": _dt(window_end),
                "watermark": _dt(window_end + lateness),
                "lateness_ms": lateness,
                "topic_partition": 0,
                "topic_offset": 0,
            }
            known.late.append(late)
            late_rows.append(late)
    client.insert("late_events", [list(r.values()) for r in late_rows], column_names=list(late_rows[0]))
    client.insert("late_events", [list(r.values()) for r in late_rows[:10]], column_names=list(late_rows[0]))

    # Pipeline metrics of two flow processes: consumer lag per partition every 5 s, and other metrics.
    t0 = DAY + timedelta(days=1, hours=1)
    known.since = t0
    metric_rows = [(t0 - timedelta(hours=1), "flow-old", "consumer_lag", "0", 999.0)]  # before `since`
    for step in range(4):
        at = t0 + timedelta(seconds=5 * step)
        for process in ("flow-0", "flow-1"):
            for partition in ("0", "1", "2", "3"):
                value = float(rng.randint(0, 5000))
                metric_rows.append((at, process, "consumer_lag", partition, value))
                metric_rows.append((at, process, "events_in_per_s", partition, value * 7))
                known.lag[(process, partition)] = value
    client.insert("pipeline_metrics", metric_rows, column_names=["time", "process", "metric", "label", "value"])
    known.common_type = Counter(e.type for e in known.of_tenant()).most_common(1)[0][0]
    return known


@pytest.fixture(scope="module")
def filled(warehouse_url: str) -> Iterator[tuple[Client, Known]]:
    """A fresh migrated database on the session's warehouse server, filled once for every query."""
    settings = WarehouseSettings(url=warehouse_url, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(settings)
    client = create_client(settings, role="admin")
    try:
        yield client, _fill(client)
    finally:
        client.command(f"DROP DATABASE IF EXISTS {settings.database}")
        client.close()


def _params(known: Known) -> dict[str, Any]:
    return {
        "tenant": TENANT,
        "start": PERIOD[0],
        "end": PERIOD[1],
        "type": known.common_type,
        "word": WORD,
        "since": known.since,
    }


# --- What each query must answer, computed from the inserted data ---------------------------------

Rows = list[tuple]
CHECKS: dict[str, Callable[[Rows, Known], None]] = {}


def check(name: str) -> Callable[[Callable[[Rows, Known], None]], Callable[[Rows, Known], None]]:
    def register(fn: Callable[[Rows, Known], None]) -> Callable[[Rows, Known], None]:
        CHECKS[name] = fn
        return fn

    return register


def _rank(values: list[float], q: float) -> float:
    """ClickHouse's quantileExact: the value at 0-based rank min(floor(q·n), n − 1)."""
    ordered = sorted(values)
    return ordered[min(math.floor(q * len(ordered)), len(ordered) - 1)]


def _minutes(events: list[ValidEvent]) -> dict[int, list[ValidEvent]]:
    out: dict[int, list[ValidEvent]] = defaultdict(list)
    for e in events:
        out[_minute(e.timestamp_ms)].append(e)
    return dict(sorted(out.items()))


@check("events-per-type")
def _events_per_type(rows: Rows, known: Known) -> None:
    counts = Counter(e.type for e in known.of_tenant())
    errors = Counter(e.type for e in known.of_tenant() if e.is_error)
    expected = sorted(((t, n, errors[t]) for t, n in counts.items()), key=lambda r: (-r[1], r[0]))
    assert [tuple(r) for r in rows] == expected
    assert sum(r[2] for r in rows) > 0


@check("error-rate-per-minute")
def _error_rate_per_minute(rows: Rows, known: Known) -> None:
    expected = []
    for minute, events in _minutes(known.of_tenant()).items():
        errors = sum(e.is_error for e in events)
        expected.append((minute, len(events), errors, errors / len(events)))
    assert [(_ms(r[0]), r[1], r[2]) for r in rows] == [e[:3] for e in expected]
    assert [r[3] for r in rows] == pytest.approx([e[3] for e in expected])
    assert len(rows) > 90


@check("hourly-from-minute-windows")
def _hourly(rows: Rows, known: Known) -> None:
    hours: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for minute, events in _minutes(known.of_tenant()).items():
        hour = hours[minute // 3_600_000 * 3_600_000]
        hour[0] += len(events)
        hour[1] += sum(e.is_error for e in events)
        hour[2] = max(hour[2], len({e.user_id for e in events if e.user_id}))
    assert [(_ms(r[0]), r[1], r[2], r[3]) for r in rows] == [(h, *v) for h, v in sorted(hours.items())]
    assert len(rows) == 3  # 23:00, 00:00 and 01:00


@check("latency-percentiles-by-source")
def _latency(rows: Rows, known: Known) -> None:
    by_source: dict[str, list[float]] = defaultdict(list)
    for e in known.of_tenant():
        if e.latency_ms is not None:
            by_source[e.source].append(e.latency_ms)
    assert [r[0] for r in rows] == sorted(by_source)
    for source, measured, quantiles in rows:
        values = by_source[source]
        assert measured == len(values)
        assert quantiles == pytest.approx([_rank(values, q) for q in (0.5, 0.95, 0.99)])


@check("distinct-users-per-day")
def _distinct_users(rows: Rows, known: Known) -> None:
    users: dict[tuple[date, str], set[str]] = defaultdict(set)
    for e in known.events:
        if e.user_id:
            users[(_dt(e.timestamp_ms).date(), e.tenant)].add(e.user_id)
    assert [tuple(r) for r in rows] == [(d, t, len(u)) for (d, t), u in sorted(users.items())]
    assert {r[0] for r in rows} == {DAY.date(), (DAY + timedelta(days=1)).date()}


@check("top-users-by-errors")
def _top_users(rows: Rows, known: Known) -> None:
    events = Counter(e.user_id for e in known.of_tenant())
    errors = Counter(e.user_id for e in known.of_tenant() if e.is_error)
    expected = sorted(((u, n, events[u]) for u, n in errors.items()), key=lambda r: (-r[1], r[0]))[:10]
    assert [tuple(r) for r in rows] == expected
    assert len(rows) == 10


@check("payload-field-breakdown")
def _payload_field(rows: Rows, known: Known) -> None:
    actions = Counter(e.data.get("action", "") for e in known.of_tenant() if e.type == known.common_type)
    assert [tuple(r) for r in rows] == sorted(actions.items(), key=lambda r: (-r[1], r[0]))
    assert len(rows) >= 3


@check("search-payload-word")
def _search(rows: Rows, known: Known) -> None:
    def tokens(e: ValidEvent) -> set[str]:
        return set(re.split(rb"[^A-Za-z0-9]+", orjson.dumps(e.data)))

    hits = [e for e in known.of_tenant() if WORD.encode() in tokens(e)]
    hits.sort(key=lambda e: (-e.timestamp_ms, e.id))
    assert len(hits) > 20
    assert [(r[0], _ms(r[1]), r[2], r[3], r[4]) for r in rows] == [
        (e.id, e.timestamp_ms, e.type, e.source, e.user_id) for e in hits[:20]
    ]


@check("dead-letters-by-reason")
def _dead_letters(rows: Rows, known: Known) -> None:
    groups: dict[tuple[str, str, str], list[datetime]] = defaultdict(list)
    for d in known.dead_letters:
        groups[(d["stage"], d["reason"], d["field"])].append(d["received_at"])
    expected = sorted(((*k, len(v), _ms(max(v))) for k, v in groups.items()), key=lambda r: (-r[3], *r[:3]))
    assert [(*r[:4], _ms(r[4])) for r in rows] == expected


@check("late-events-by-day")
def _late(rows: Rows, known: Known) -> None:
    groups: dict[tuple[date, int, int], list[dict[str, Any]]] = defaultdict(list)
    for r in known.late:
        groups[(r["window_start"].date(), r["window_seconds"], r["slide_seconds"])].append(r)
    expected = [
        (*k, len(v), len({(r["tenant"], r["id"]) for r in v}), max(r["lateness_ms"] for r in v))
        for k, v in sorted(groups.items())
    ]
    assert [tuple(r) for r in rows] == expected


@check("consumer-lag-latest")
def _lag(rows: Rows, known: Known) -> None:
    last = known.since + timedelta(seconds=15)
    assert [(r[0], r[1], r[2], _ms(r[3])) for r in rows] == [
        (p, part, lag, _ms(last)) for (p, part), lag in sorted(known.lag.items())
    ]


@check("windows-that-disagree-with-raw")
def _disagree(rows: Rows, known: Known) -> None:
    tenant, minute, window_count, raw_count = known.tampered
    assert [(r[0], _ms(r[1]), r[2], r[3]) for r in rows] == [(tenant, minute, window_count, raw_count)]


# --- Tests ---------------------------------------------------------------------------------------


def test_the_data_holds_duplicates_that_only_final_removes(filled: tuple[Client, Known]) -> None:
    """The replayed rows are still there, so a cookbook query that forgot FINAL would count them."""
    client, known = filled
    for table, unique in (
        ("events", len(known.events)),
        ("dead_letters", len(known.dead_letters)),
        ("late_events", len(known.late)),
    ):
        assert client.command(f"SELECT count() FROM {table} FINAL") == unique
        assert client.command(f"SELECT count() FROM {table}") > unique
    minute_rows = "FROM window_aggregates {} WHERE tenant = 'tenant-00' AND window_seconds = 60 AND slide_seconds = 60"
    assert client.command(f"SELECT count() {minute_rows.format('')}") == 2 * client.command(
        f"SELECT count() {minute_rows.format('FINAL')}"
    )


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_cookbook_query(filled: tuple[Client, Known], name: str) -> None:
    client, known = filled
    sql = cookbook_queries()[name]
    rows = client.query(sql, parameters=_params(known)).result_rows
    assert rows or name == "windows-that-disagree-with-raw", f"{name} returned nothing"
    CHECKS[name](rows, known)
