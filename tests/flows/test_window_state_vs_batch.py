"""Property: for event streams with bounded disorder, the stream's final rows equal the batch SQL's.

The expensive part (the real dataflow) is covered by a few end-to-end tests in tests/flows; here
Hypothesis drives the pure aggregation core (`WindowLogic` over `WindowStore`, watermarks
included) and the batch recomputation runs in chDB in-process on the same events.
"""

import uuid
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpulse.aggregation import sketch
from eventpulse.aggregation.batch_sql import recompute_query
from eventpulse.aggregation.compare import compare_rows
from eventpulse.aggregation.spec import GROUPINGS, KEY_COLUMNS, metric_names, state_columns, window_specs
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.events import RAW_EVENT_COLUMNS
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from flows.decode import FRAME_SCHEMA, Progress
from flows.metrics import PipelineMetrics
from flows.windowing import AGGREGATE_COLUMNS, BOOKKEEPING_COLUMNS, Slice, WindowConfig, WindowLogic
from tests.support.stream_fill import raw_rows

FAMILIES = window_specs((10, 60), ((30, 10),))
T0 = 1_767_225_600_000  # 2026-01-01
BOUND_MS = 3000

events = st.lists(
    st.tuples(
        st.integers(0, 150_000),  # event time offset (ms), before disorder
        st.sampled_from(["acme", "globex", "initech"]),
        st.sampled_from(["click", "view", "error"]),
        st.sampled_from(["web", "ios"]),
        st.sampled_from(["", "u1", "u2", "u3", "7"]),
        st.one_of(st.none(), st.just(0.0), st.floats(0.001, 50_000, allow_nan=False)),
        st.integers(0, BOUND_MS),  # disorder
        st.integers(0, 3),  # partition
    ),
    min_size=1,
    max_size=400,
)


@pytest.fixture(scope="module")
def chdb_client(chdb_path):
    settings = WarehouseSettings(url=f"chdb://{chdb_path}", database=f"p_{uuid.uuid4().hex[:10]}")
    migrate(settings)
    client = create_client(settings, role="admin")
    yield client
    client.close()


def _stream_rows(sorted_events: list[tuple], batch: int) -> list[dict]:
    config = WindowConfig(FAMILIES, (0, 1, 2, 3), BOUND_MS, 20_000, 3600, 1.0)
    logic = WindowLogic("b000", config, PipelineMetrics(None, 60), None)
    emitted = []
    for i in range(0, len(sorted_events), batch):
        chunk = sorted_events[i : i + batch]
        for p in range(4):
            part = [e for e in chunk if e["partition"] == p]
            frame = pl.DataFrame(part, schema=FRAME_SCHEMA)
            progress = Progress(p, 0, 0, max((e["ts"] for e in part), default=None), 0)
            emissions, _ = logic.on_batch([Slice([progress], frame)])
            assert not any(len(e.late_rows) for e in emissions), "bounded disorder must not produce late events"
        emitted += logic.on_notify()[0]
    emitted += logic.on_eof()[0]
    columns = {*AGGREGATE_COLUMNS, *metric_names(), *state_columns(), *BOOKKEEPING_COLUMNS}
    latest: dict[tuple, dict] = {}
    for emission in emitted:
        for row in emission.rows.to_pylist():
            assert set(row) == columns
            key = tuple(row[c] for c in KEY_COLUMNS)
            assert key not in latest or latest[key]["version"] < row["version"]
            latest[key] = row
    assert all(r["is_final"] == 1 for r in latest.values())
    return list(latest.values())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=events, batch=st.integers(1, 64))
def test_stream_equals_batch_recompute(chdb_client, generated, batch) -> None:
    chdb_client.command("TRUNCATE TABLE events")
    arrival = []
    for i, (t, tenant, kind, source, user, latency, disorder, partition) in enumerate(generated):
        ts = T0 + t
        arrival.append((t + disorder, i))  # arrives `disorder` ms after its event time (bounded)
        generated[i] = {
            "ts": ts,
            "tenant": tenant,
            "type": kind,
            "source": source,
            "user_id": user,
            "latency_ms": latency,
            "is_error": int(kind == "error"),
            "id": f"e{i}",
            "partition": partition,
            "offset": i,
            "broker_ts": ts,
        }
    ordered = [generated[i] for _, i in sorted(arrival)]
    stream = _stream_rows(ordered, batch)

    raw = raw_rows(generated)
    chdb_client.insert("events", raw, column_names=list(RAW_EVENT_COLUMNS))
    batch_rows = []
    for family in FAMILIES:
        sql, params = recompute_query(
            family,
            datetime.fromtimestamp((T0 - 120_000) / 1000, UTC),
            datetime.fromtimestamp((T0 + 400_000) / 1000, UTC),
        )
        batch_rows += [
            {**r, "window_start": r["window_start"].replace(tzinfo=UTC)}
            for r in chdb_client.query(sql, parameters=params).named_results()
        ]
    differences = compare_rows(stream, batch_rows)
    assert not differences, [d.as_dict() for d in differences[:5]]
    # The mergeable states too, exactly: same hashes, same buckets (same log and division) on both sides.
    by_key = {tuple(r[c] for c in KEY_COLUMNS): r for r in batch_rows}
    for row in stream:
        other = by_key[tuple(row[c] for c in KEY_COLUMNS)]
        assert [row[c] for c in state_columns()] == [other[c] for c in state_columns()], row
    # Every grouping set is written, and each row belongs to exactly one set's filter.
    sets = {tuple(d for d in ("type", "source") if r[d] != "*") for r in stream}
    assert sets == set(GROUPINGS)


@given(st.lists(st.floats(0.0, 1e7, allow_nan=False), min_size=1, max_size=300), st.sampled_from([0.5, 0.95, 0.99]))
def test_sketch_quantile_within_relative_error_of_the_same_rank(values, q) -> None:
    frame = pl.DataFrame({"g": [0] * len(values), "v": values, "bucket": sketch.buckets(np.array(values))})
    buckets = frame.group_by("g", "bucket").agg(n=pl.len().cast(pl.UInt64))
    got = sketch.quantiles(buckets, ["g"], {"x": q})["x"][0]
    exact = sorted(values)[min(int(q * len(values)), len(values) - 1)]
    assert abs(got - exact) <= sketch.RELATIVE_ACCURACY * max(got, exact) + 1e-9
