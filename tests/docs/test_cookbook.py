"""Every query of the SQL cookbook (docs/cookbook.md) runs on a real warehouse and gives the right answer.

A migrated database is filled once with known data: generated events validated by the real validator
(raw rows, plus a replayed slice stored a second time, as after a crash), the refused ones as dead letters,
window rows written by the stream's own windowing code (`tests.support.stream_fill`: every emission, the
provisional ones included), one window row superseded by a wrong later version, late events and pipeline
metrics. Each query is extracted from the Markdown (a ```sql block whose
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
from eventpulse.aggregation.batch_sql import output_columns
from eventpulse.aggregation.spec import QUANTILE_RELATIVE_ERROR, window_specs
from eventpulse.config.events import EventLimits
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.events.model import DEAD_LETTER_COLUMNS, RAW_EVENT_COLUMNS, ValidEvent
from eventpulse.events.validation import EventValidator
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.support.stream_fill import stream_emissions

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
UNTIL = START + timedelta(minutes=90)  # "now" for the last-hour and last-5-minutes questions


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
    steps: tuple[str, str] = ("", "")  # the funnel's two steps
    arrivals: list[dict[str, Any]] = field(default_factory=list)  # valid events as the stream reads them

    def of_tenant(self, tenant: str = TENANT) -> list[ValidEvent]:
        return [e for e in self.events if e.tenant == tenant]


def schema_version_of(event: ValidEvent) -> int:
    """The registered schema version the rows claim: none (0) for most types, 1 or 2 for the common ones."""
    return 0 if event.type not in ("page_view", "purchase") else 1 + sum(map(ord, event.id)) % 2


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
            known.arrivals.append(
                {
                    "ts": result.timestamp_ms,
                    "tenant": result.tenant,
                    "type": result.type,
                    "source": result.source,
                    "user_id": result.user_id,
                    "latency_ms": result.latency_ms,
                    "is_error": int(result.is_error),
                    "id": result.id,
                    "partition": partition,
                    "offset": offset,
                    "broker_ts": received_ms,
                }
            )
            row = list(result.raw_row(partition, offset))
            row[2], row[11] = _dt(row[2]), _dt(row[11])
            row.append(schema_version_of(result))  # data_schema_version, as the dataflow records it
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
    raw_columns = [*RAW_EVENT_COLUMNS, "data_schema_version"]
    client.insert("events", raw_rows, column_names=raw_columns)
    # A replay after a crash: the same events stored a second time at other offsets.
    replayed = [(*row[:13], row[13] + 1_000_000, row[14]) for row in raw_rows[100:400] + raw_rows[-300:]]
    client.insert("events", replayed, column_names=raw_columns)
    client.insert("dead_letters", dead_rows, column_names=list(DEAD_LETTER_COLUMNS))
    client.insert("dead_letters", dead_rows[:20], column_names=list(DEAD_LETTER_COLUMNS))

    # Window rows as the stream writes them (every emission of its windowing code), then one wrong later version.
    for table in stream_emissions(known.arrivals, window_specs((10, 60), ((300, 60),))):
        client.insert_arrow("window_aggregates", table)
    # Older emissions of the tenant's minute windows, as after a replay: lower versions, half counts.
    columns = ", ".join((*output_columns(), "is_final", "origin", "version", "emitted_at"))
    halved = ", ".join("intDiv(event_count, 2)" if c == "event_count" else c for c in output_columns())
    client.command(
        f"INSERT INTO window_aggregates ({columns}) SELECT {halved}, 0, 'stream', 1, now64(3) "
        "FROM window_aggregates FINAL WHERE tenant = {t:String} AND window_seconds = 60 AND slide_seconds = 60",
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
    ranked = [t for t, _ in Counter(e.type for e in known.of_tenant()).most_common()]
    known.common_type, known.steps = ranked[0], (ranked[0], ranked[1])
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
        "until": UNTIL,
        "step1": known.steps[0],
        "step2": known.steps[1],
        "cohort": DAY.date(),
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


@check("events-per-schema-version")
def _events_per_schema_version(rows: Rows, known: Known) -> None:
    counts = Counter((e.type, schema_version_of(e)) for e in known.of_tenant())
    assert [tuple(r) for r in rows] == sorted((t, v, n) for (t, v), n in counts.items())
    assert {r[1] for r in rows} == {0, 1, 2}


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
    hours: dict[int, list[ValidEvent]] = defaultdict(list)
    for e in known.of_tenant():
        hours[e.timestamp_ms // 3_600_000 * 3_600_000].append(e)
    expected = [
        (h, len(v), sum(e.is_error for e in v), len({e.user_id for e in v if e.user_id}))
        for h, v in sorted(hours.items())
    ]
    assert [(_ms(r[0]), r[1], r[2], r[3]) for r in rows] == expected
    assert len(rows) == 3  # 23:00, 00:00 and 01:00
    busiest_minute = max(len({e.user_id for e in v if e.user_id}) for v in _minutes(known.of_tenant()).values())
    assert all(r[3] > busiest_minute for r in rows)  # more than any one minute: the hashes merged across minutes


def _last_minute() -> int:
    return _minute(_ms(UNTIL))


@check("error-rate-per-tenant-last-5-min")
def _error_rate_last_5_min(rows: Rows, known: Known) -> None:
    until = _last_minute()
    recent: dict[str, list[ValidEvent]] = defaultdict(list)
    for e in known.events:
        if until - 300_000 <= e.timestamp_ms < until:
            recent[e.tenant].append(e)
    expected = [(t, len(v), sum(e.is_error for e in v)) for t, v in recent.items()]
    expected.sort(key=lambda r: (-r[2] / r[1], r[0]))
    assert [(r[0], r[1], r[2]) for r in rows] == expected
    assert [r[3] for r in rows] == pytest.approx([e / n for _, n, e in expected])
    assert len(rows) == 3


@check("p99-per-type-last-hour")
def _p99_last_hour(rows: Rows, known: Known) -> None:
    until = _last_minute()
    by_type: dict[str, list[float]] = defaultdict(list)
    for e in known.of_tenant():
        if until - 3_600_000 <= e.timestamp_ms < until:
            values = by_type[e.type]  # a type with events but no latency still has a row
            if e.latency_ms is not None:
                values.append(e.latency_ms)
    assert [r[0] for r in rows] == sorted(by_type)
    for kind, measured, p99 in rows:
        values = by_type[kind]
        assert measured == len(values)
        if not values:
            assert p99 is None
            continue
        exact = _rank(values, 0.99)
        assert abs(p99 - exact) <= QUANTILE_RELATIVE_ERROR * exact + 1e-9, (kind, p99, exact)
    assert sum(r[1] for r in rows) > 100


@check("distinct-users-per-tenant-per-day")
def _distinct_users_from_windows(rows: Rows, known: Known) -> None:
    _distinct_users(rows, known)


@check("funnel-two-steps")
def _funnel(rows: Rows, known: Known) -> None:
    step1, step2 = known.steps
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for e in known.of_tenant():
        if not e.user_id:
            continue
        if e.type == step1:
            first[e.user_id] = min(first.get(e.user_id, e.timestamp_ms), e.timestamp_ms)
        if e.type == step2:
            last[e.user_id] = max(last.get(e.user_id, e.timestamp_ms), e.timestamp_ms)
    converted = sum(1 for u, t in first.items() if last.get(u, -1) > t)
    ((did, then, rate),) = rows
    assert (did, then) == (len(first), converted)
    assert rate == pytest.approx(round(converted / len(first), 4))
    assert 0 < converted < len(first)


@check("next-day-retention")
def _retention(rows: Rows, known: Known) -> None:
    days: dict[tuple[str, str], set[date]] = defaultdict(set)
    for e in known.events:
        if e.user_id:
            days[(e.tenant, e.user_id)].add(_dt(e.timestamp_ms).date())
    cohort = DAY.date()
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (tenant, _), seen in days.items():
        if min(seen) == cohort:
            stats[tenant][0] += 1
            stats[tenant][1] += (cohort + timedelta(days=1)) in seen
    assert [tuple(r) for r in rows] == [(t, *v) for t, v in sorted(stats.items())]
    assert all(0 < r[2] < r[1] for r in rows)


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
    assert client.command(f"SELECT count() {minute_rows.format('')}") >= 2 * client.command(
        f"SELECT count() {minute_rows.format('FINAL')}"
    )


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_cookbook_query(filled: tuple[Client, Known], name: str) -> None:
    client, known = filled
    sql = cookbook_queries()[name]
    rows = client.query(sql, parameters=_params(known)).result_rows
    assert rows or name == "windows-that-disagree-with-raw", f"{name} returned nothing"
    CHECKS[name](rows, known)
