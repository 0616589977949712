"""The views of migration 0102 and the sketch functions of 0101 answer re-aggregated questions correctly.

The warehouse is filled as the pipeline fills it (raw events plus every emission of the stream's windowing
code, superseded versions included), then the two questions of the acceptance are asked of the views and
compared, in the same statement, with the exact answer from the raw events:

* "p99 latency per type over the last hour": ``sketch_quantile(sumMap(...), 0.99)`` over the hour's
  per-type 1-minute rows must be within the sketch's 1 % of ``quantileExact(0.99)`` over the raw events
  (same rank rule); the readings from the final values alone (max or latency-weighted mean of the
  per-(type, source) p99) are shown to be wrong on the same data (negative control);
* "distinct users per tenant per day": ``length(groupUniqArrayArray(user_hashes))`` over a day of
  tenant-wide 1-minute rows must equal ``uniqExact(user_id)`` over the raw events (exact but for 64-bit
  hash collisions), where summing the per-window ``distinct_users`` overcounts.
"""

import random
import uuid
from datetime import UTC, datetime

import pytest

from eventpulse.aggregation import sketch
from eventpulse.aggregation.spec import QUANTILE_RELATIVE_ERROR, window_specs
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.support.stream_fill import fill

FAMILIES = window_specs((60,))
TYPES = ("click", "view", "purchase", "error")
SOURCES = ("web", "ios", "android")


def _events(now_ms: int) -> list[dict]:
    rng = random.Random(7)
    out = []
    # Two days of sparse history, then a dense last hour (where latency depends on the source: a per-source
    # p99 then says little about the type's p99).
    times = [now_ms - rng.randrange(3_600_000, 2 * 86_400_000) for _ in range(6000)]
    times += [now_ms - rng.randrange(1, 3_700_000) for _ in range(14000)]
    times.sort()
    scale = {"web": 40.0, "ios": 120.0, "android": 600.0}
    for i, ts in enumerate(times):
        tenant = f"tenant-{rng.randrange(3)}"
        kind, source = rng.choice(TYPES), rng.choices(SOURCES, (0.7, 0.25, 0.05))[0]
        out.append(
            {
                "ts": ts,
                "tenant": tenant,
                "type": kind,
                "source": source,
                "user_id": "" if rng.random() < 0.05 else f"u{rng.randrange(400)}",
                "latency_ms": None if rng.random() < 0.1 else rng.lognormvariate(0, 1) * scale[source],
                "is_error": int(kind == "error"),
                "id": f"e{i}",
                "partition": i % 4,
                "offset": i // 4,
                "broker_ts": ts,
            }
        )
    return out


@pytest.fixture(scope="module")
def filled(chdb_path):
    settings = WarehouseSettings(url=f"chdb://{chdb_path}", database=f"v_{uuid.uuid4().hex[:10]}")
    migrate(settings)
    client = create_client(settings, role="admin")
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    assert fill(client, _events(now_ms), FAMILIES) > 0
    yield client
    client.close()


P99_PER_TYPE = """
WITH
    toStartOfMinute(now64(3)) - INTERVAL 1 HOUR AS since,
    toStartOfMinute(now64(3)) AS until,
    views AS (
        SELECT type, sketch_quantile(sumMap(latency_sketch_buckets, latency_sketch_counts), 0.99) AS p99
        FROM metrics_1m
        WHERE type != '*' AND source = '*' AND window_start >= since AND window_start < until
        GROUP BY type
    ),
    finals AS (
        SELECT type, max(latency_p99) AS max_p99, sum(latency_p99 * latency_count) / sum(latency_count) AS mean_p99
        FROM metrics_1m
        WHERE type != '*' AND source != '*' AND window_start >= since AND window_start < until
        GROUP BY type
    ),
    exact AS (
        SELECT type, quantileExact(0.99)(latency_ms) AS p99
        FROM events FINAL
        WHERE timestamp >= since AND timestamp < until AND latency_ms IS NOT NULL
        GROUP BY type
    )
SELECT exact.type, views.p99, exact.p99, finals.max_p99, finals.mean_p99
FROM exact LEFT JOIN views USING (type) LEFT JOIN finals USING (type)
ORDER BY exact.type
"""


def test_p99_per_type_over_the_last_hour_from_the_view_is_within_the_sketch_error(filled) -> None:
    rows = filled.query(P99_PER_TYPE).result_rows
    assert [r[0] for r in rows] == sorted(TYPES)
    wrong = 0
    for kind, from_view, exact, max_p99, mean_p99 in rows:
        assert from_view is not None, kind
        assert abs(from_view - exact) <= QUANTILE_RELATIVE_ERROR * exact + 1e-9, (kind, from_view, exact)
        # Negative control: what the final values alone give is off by far more than the stated error.
        wrong += all(abs(v - exact) > 5 * QUANTILE_RELATIVE_ERROR * exact for v in (max_p99, mean_p99))
    assert wrong >= 3, rows


DISTINCT_PER_DAY = """
WITH
    views AS (
        SELECT tenant, toDate(window_start) AS day, length(groupUniqArrayArray(user_hashes)) AS users,
               sum(distinct_users) AS summed
        FROM metrics_1m WHERE type = '*' AND source = '*' GROUP BY tenant, day
    ),
    exact AS (
        SELECT tenant, toDate(timestamp) AS day, uniqExactIf(user_id, user_id != '') AS users
        FROM events FINAL GROUP BY tenant, day
    )
SELECT tenant, day, views.users, exact.users, views.summed
FROM exact LEFT JOIN views USING (tenant, day)
ORDER BY tenant, day
"""


def test_distinct_users_per_tenant_per_day_from_the_view_are_exact(filled) -> None:
    rows = filled.query(DISTINCT_PER_DAY).result_rows
    assert len(rows) >= 6  # 3 tenants over at least 2 days
    for tenant, day, from_view, exact, summed in rows:
        assert from_view == exact, (tenant, day)
        assert summed >= exact
    # Negative control: summing the per-window distinct counts overcounts wherever users come back.
    assert sum(r[4] > 2 * r[3] for r in rows) >= 3, rows


def test_the_views_need_no_final_and_read_one_family(filled) -> None:
    raw = filled.query("SELECT count() FROM window_aggregates WHERE window_seconds = 60").result_rows[0][0]
    final = filled.query("SELECT count() FROM window_aggregates FINAL WHERE window_seconds = 60").result_rows[0][0]
    view = filled.query("SELECT count() FROM metrics_1m").result_rows[0][0]
    assert raw > final == view  # superseded provisional versions are in the table; the view hides them


@pytest.mark.parametrize("q", [0.0, 0.5, 0.95, 0.99, 1.0])
def test_sketch_quantile_matches_the_stream_sketch(filled, q) -> None:
    """The SQL function and the stream's sketch (gamma, zero bucket, rank rule) give the same answer."""
    buckets = [sketch.ZERO_BUCKET, -3, 0, 5, 120, 121, 400]
    counts = [2, 1, 4, 7, 1, 3, 9]
    got = filled.query(
        "SELECT sketch_quantile(({b:Array(Int32)}, {c:Array(UInt64)}), {q:Float64})",
        parameters={"b": buckets, "c": counts, "q": q},
    ).result_rows[0][0]
    n = sum(counts)
    rank = min(int(q * n), n - 1)
    cumulative, expected = 0, None
    for b, c in zip(buckets, counts, strict=True):
        cumulative += c
        if cumulative > rank:
            expected = sketch.bucket_value(b)
            break
    assert got == pytest.approx(expected, rel=1e-12)
    empty = "SELECT sketch_quantile((CAST([] AS Array(Int32)), CAST([] AS Array(UInt64))), 0.5)"
    assert filled.query(empty).result_rows[0][0] is None
