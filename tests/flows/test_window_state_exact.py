"""Property: with duplicates on the topic and a second run started without window state, the latest
window rows still equal the batch SQL over the raw table.

Hypothesis drives `WindowLogic` (dedup and seeding included) and the raw table lives in chDB
in-process; the second run's `WarehouseSeedReader` reads it through clickhouse-connect, as the flow
does. The raw inserts of the second run happen either before or after the windows see the same
events (the raw sink of the same process may be ahead of the windows step).
"""

import uuid
from datetime import UTC, datetime

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpulse.aggregation.batch_sql import recompute_query
from eventpulse.aggregation.compare import compare_rows
from eventpulse.aggregation.spec import KEY_COLUMNS, window_specs
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.events import RAW_EVENT_COLUMNS
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from flows.decode import FRAME_SCHEMA, Progress
from flows.metrics import PipelineMetrics
from flows.seeding import WarehouseSeedReader
from flows.windowing import Emission, Slice, WindowConfig, WindowLogic

FAMILIES = window_specs((10, 60), ((30, 10),))
T0 = 1_767_225_600_000  # 2026-01-01
BOUND_MS = 3000
CONFIG = WindowConfig(FAMILIES, (0, 1), BOUND_MS, 20_000, 3600, 1.0, future_skew_ms=300_000)

events = st.lists(
    st.tuples(
        st.integers(0, 120_000),  # event time offset (ms)
        st.sampled_from(["acme", "globex"]),
        st.sampled_from(["click", "error"]),
        st.sampled_from(["", "u1", "u2", "u3"]),
        st.one_of(st.none(), st.floats(0.001, 5_000, allow_nan=False)),
        st.integers(0, BOUND_MS),  # disorder
        st.integers(0, 1),  # partition
        st.one_of(st.none(), st.integers(0, 15_000)),  # sent a second time, this many ms later
    ),
    min_size=1,
    max_size=250,
)


@pytest.fixture(scope="module")
def chdb_client(chdb_path):
    settings = WarehouseSettings(url=f"chdb://{chdb_path}", database=f"x_{uuid.uuid4().hex[:10]}")
    migrate(settings)
    client = create_client(settings, role="admin")
    yield client
    client.close()


def _insert(client, rows: list[dict]) -> None:
    if rows:
        raw = [
            (
                e["tenant"],
                e["id"],
                e["ts"],
                e["type"],
                "web",
                e["user_id"],
                e["latency_ms"],
                e["is_error"],
                "{}",
                "{}",
                1,
                e["ts"],
                e["partition"],
                e["offset"],
            )
            for e in rows
        ]
        client.insert("events", raw, column_names=list(RAW_EVENT_COLUMNS))


def _feed(logic: WindowLogic, chunk: list[dict]) -> list[Emission]:
    out = []
    for p in (0, 1):
        part = [e for e in chunk if e["partition"] == p]
        frame = pl.DataFrame(part, schema=FRAME_SCHEMA)
        progress = Progress(p, 0, 0, max((e["ts"] for e in part), default=None), 0)
        emissions, _ = logic.on_batch([Slice([progress], frame, "b000")])
        assert not any(len(e.late_rows) for e in emissions)
        out += emissions
    return out + logic.on_notify()[0]


def _latest(emitted: list[Emission]) -> list[dict]:
    latest: dict[tuple, dict] = {}
    for emission in emitted:
        if not len(emission.rows):
            continue
        for row in emission.rows.to_pylist():
            key = tuple(row[c] for c in KEY_COLUMNS)
            if key not in latest or latest[key]["version"] < row["version"]:
                latest[key] = row
    return list(latest.values())


def _batch_rows(client) -> list[dict]:
    rows = []
    for family in FAMILIES:
        sql, params = recompute_query(
            family,
            datetime.fromtimestamp((T0 - 120_000) / 1000, UTC),
            datetime.fromtimestamp((T0 + 400_000) / 1000, UTC),
        )
        rows += [
            {**r, "window_start": r["window_start"].replace(tzinfo=UTC)}
            for r in client.query(sql, parameters=params).named_results()
        ]
    return rows


def _differences(client, generated: list[tuple], batch: int, split: float, ahead: list[bool], **switches) -> list:
    """Run the two runs over ``generated`` and compare the latest window rows with the batch SQL.

    ``switches``: ``dedup=False`` and/or ``seed=False`` (the negative controls).
    """
    client.command("TRUNCATE TABLE events")
    config = WindowConfig(**{**CONFIG.__dict__, "dedup": switches.get("dedup", True)})
    arrivals = []
    for i, (t, tenant, kind, user, latency, disorder, partition, resend) in enumerate(generated):
        event = {
            "ts": T0 + t,
            "tenant": tenant,
            "type": kind,
            "source": "web",
            "user_id": user,
            "latency_ms": latency,
            "is_error": int(kind == "error"),
            "id": f"e{i}",
            "partition": partition,
            "offset": i,
            "broker_ts": T0 + t,
        }
        arrivals.append((t + disorder, i, event))
        if resend is not None:
            arrivals.append((t + disorder + resend, i, {**event, "offset": 10_000 + i}))
    ordered = [e for *_, e in sorted(arrivals, key=lambda a: a[:2])]
    cut = int(len(ordered) * split)
    first, second = ordered[:cut], ordered[cut:]

    metrics = PipelineMetrics(None, 60)
    one = WindowLogic("b000", config, metrics, None)
    emitted = []
    for i in range(0, len(first), batch):
        emitted += _feed(one, first[i : i + batch])
    _insert(client, first)
    emitted += one.on_eof()[0]

    # A second run on the same warehouse without window state (fresh recovery store).
    reader = WarehouseSeedReader(WarehouseSettings(url="chdb://unused"), factory=lambda _: client)
    two = WindowLogic(None, config, metrics, None, reader if switches.get("seed", True) else None)
    for n, i in enumerate(range(0, len(second), batch)):
        chunk = second[i : i + batch]
        before = ahead[n % len(ahead)]
        if before:
            _insert(client, chunk)
        emitted += _feed(two, chunk)
        if not before:
            _insert(client, chunk)
    emitted += two.on_eof()[0]

    stream = _latest(emitted)
    assert all(r["is_final"] == 1 for r in stream)
    return compare_rows(stream, _batch_rows(client))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    generated=events,
    batch=st.integers(1, 40),
    split=st.floats(0, 1),
    ahead=st.lists(st.booleans(), min_size=1, max_size=8),
)
def test_duplicates_and_a_stateless_second_run_equal_the_batch_recompute(
    chdb_client, generated, batch, split, ahead
) -> None:
    differences = _differences(chdb_client, generated, batch, split, ahead)
    assert not differences, [d.as_dict() for d in differences[:5]]


# Events every 400 ms for 100 s, every third one sent twice 2 s later, split in the middle.
FIXED = [(i * 400, "acme", "click", f"u{i % 4}", float(i), 0, i % 2, 2_000 if i % 3 == 0 else None) for i in range(250)]


def test_the_fixed_scenario_passes_with_both_fixes(chdb_client) -> None:
    assert not _differences(chdb_client, FIXED, 20, 0.5, [True, False])


def test_without_dedup_duplicates_count_twice(chdb_client) -> None:
    """Negative control."""
    differences = _differences(chdb_client, FIXED, 20, 0.5, [True, False], dedup=False)
    assert any(d.metric == "event_count" and d.left > d.right for d in differences)


def test_without_seeding_the_second_run_overwrites_windows_with_fewer_events(chdb_client) -> None:
    """Negative control."""
    differences = _differences(chdb_client, FIXED, 20, 0.5, [True, False], seed=False)
    assert any(d.metric == "event_count" and d.left < d.right for d in differences)
