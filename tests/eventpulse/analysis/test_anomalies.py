"""The anomaly rules: quiet on steady synthetic traffic at every volume (small windows too), an injected
latency or error spike found exactly, and the evidence a true upper bound on the binomial tail.

Windows are aggregated here from the traffic generator's events (exact percentiles; the stream's
DDSketch is within 1 % of them), or for high volumes drawn from the same distributions with numpy.
"""

import math
from collections import defaultdict
from functools import cache

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.traffic.generator import EventFactory, TrafficProfile
from eventpulse.analysis.anomalies import AnomalyRules, find_anomalies, score_windows, upper_tail_evidence
from tests.support.examples import examples

MINUTE_MS = 60_000
SPIKE_MINUTE = 25
COLUMNS = ["tenant", "window_start", "event_count", "error_count", "latency_p50", "latency_p95", "latency_p99"]


def _is_error(event: dict) -> bool:
    return event["type"] == "error" or event["data"].get("error") is True


@cache
def generated_windows(
    rate_per_s: float, tenants: int, minutes: int, seed: int = 1, spike: tuple[str, float, float] | None = None
) -> pl.DataFrame:
    """Per-tenant 60 s windows of generated traffic; ``spike`` = (tenant, latency factor, error share)
    applied to minute `SPIKE_MINUTE` of that tenant."""
    factory, rng = EventFactory(TrafficProfile(tenants=tenants), seed=seed), np.random.default_rng(seed)
    latencies: dict[tuple[str, int], list[float]] = defaultdict(list)
    errors: dict[tuple[str, int], int] = defaultdict(int)
    for i in range(int(rate_per_s * 60 * minutes)):
        tenant, event = factory.submission(int(i * 1000 / rate_per_s))
        key = (tenant, event["timestamp"] // MINUTE_MS)
        latency, failed = event["data"]["latency_ms"], _is_error(event)
        if spike and key == (spike[0], SPIKE_MINUTE):
            latency *= spike[1]
            failed = failed or rng.random() < spike[2]
        latencies[key].append(latency)
        errors[key] += failed
    rows = [
        (t, m, len(v), errors[(t, m)], *np.quantile(v, [0.5, 0.95, 0.99]).tolist()) for (t, m), v in latencies.items()
    ]
    return pl.DataFrame(rows, schema=COLUMNS, orient="row")


@cache
def drawn_windows(rate_per_s: float, tenants: int, minutes: int, seed: int) -> pl.DataFrame:
    """Like `generated_windows` (the generator's tenant weights, latency and error distributions), drawn with numpy."""
    rng = np.random.default_rng(seed)
    weights = np.array([1 / (i + 1) for i in range(tenants)])
    weights /= weights.sum()
    rows = []
    for t in range(tenants):
        for m in range(minutes):
            n = int(rng.poisson(rate_per_s * 60 * weights[t]))
            latency = rng.lognormal(0, 0.6, n) * 40 * np.where(rng.random(n) < 0.01, 8, 1)
            rows.append(
                (f"tenant-{t:02d}", m, n, int(rng.binomial(n, 0.068)), *np.quantile(latency, [0.5, 0.95, 0.99]))
            )
    return pl.DataFrame(rows, schema=COLUMNS, orient="row")


def found(frame: pl.DataFrame) -> set[tuple[str, int, bool, bool]]:
    return set(frame.select("tenant", "window_start", "slow", "failing").iter_rows())


@pytest.mark.parametrize(
    ("rate", "tenants", "minutes"),
    [(8, 3, 60), (10, 20, 60), (40, 20, 30)],
    ids=["3 tenants 8 per s", "20 tenants 10 per s", "20 tenants 40 per s"],
)
def test_quiet_on_steady_generated_traffic(rate, tenants, minutes):
    windows = generated_windows(rate, tenants, minutes)
    assert min(windows["event_count"].to_list()) < 100  # small windows, where percentiles and error rates swing widely
    assert find_anomalies(windows).is_empty()


@pytest.mark.parametrize("seed", range(2))
def test_quiet_on_steady_traffic_at_high_volume(seed):
    windows = drawn_windows(1000, 20, 60, seed)
    assert min(windows["event_count"].to_list()) > 500
    assert find_anomalies(windows).is_empty()


def test_without_the_evidence_gate_steady_traffic_raises_alarms():
    """Negative control: with a loose gate and no materiality the same steady traffic has "anomalies",
    so the quiet above is the rules' doing, not traffic too smooth to alarm on."""
    loose = AnomalyRules(alpha=0.05, min_rise=0.0, min_error_rise=0.0)
    windows = pl.concat([generated_windows(10, 20, 60), drawn_windows(1000, 20, 60, 0)])
    assert find_anomalies(windows, loose).height >= 10


@pytest.mark.parametrize(
    ("tenant", "latency", "errors", "verdict"),
    [
        ("tenant-01", 6.0, 0.4, (True, True)),  # the notebook test's spike: six times slower, 40 % errors
        ("tenant-01", 3.0, 0.0, (True, False)),
        ("tenant-02", 1.0, 0.4, (False, True)),
        ("tenant-00", 1.0, 0.25, (False, True)),  # ~260 events: errors from 7 % to ~30 % is plain
    ],
)
def test_an_injected_spike_is_found_and_nothing_else(tenant, latency, errors, verdict):
    windows = generated_windows(8, 3, 30, spike=(tenant, latency, errors))
    assert found(find_anomalies(windows)) == {(tenant, SPIKE_MINUTE, *verdict)}


def test_small_windows_and_the_first_windows_are_not_judged():
    windows = generated_windows(8, 3, 30)
    rules = AnomalyRules(min_events=20, min_history=5)
    burst = pl.DataFrame(
        [("tenant-00", 30, 12, 12, 900.0, 1000.0, 1100.0), ("tenant-09", 0, 300, 300, 900.0, 1000.0, 1100.0)],
        schema=COLUMNS,
        orient="row",
    )  # all errors, very slow: in a window of 12 events, and as a new tenant's first window
    scored = score_windows(pl.concat([windows, burst]), rules)
    assert not scored.filter("anomaly").height
    assert scored.filter(pl.col("tenant") == "tenant-09")["baseline_error_rate"].is_null().all()
    big = burst.with_columns(pl.lit(200, pl.Int64).alias("event_count"), pl.lit(200, pl.Int64).alias("error_count"))
    assert found(find_anomalies(pl.concat([windows, big.head(1)]), rules)) == {("tenant-00", 30, True, True)}


def _binomial_tail(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@settings(max_examples=examples(300), deadline=None)
@given(st.integers(1, 400), st.floats(0.001, 0.5), st.floats(0, 1))
def test_the_evidence_bounds_the_binomial_tail(n, p, share):
    k = round(share * n)
    evidence = pl.select(upper_tail_evidence(pl.lit(k), pl.lit(n), pl.lit(p))).item()
    assert evidence >= 0
    assert math.exp(-evidence) >= _binomial_tail(k, n, p) * (1 - 1e-9)  # never more certain than the truth
    if k <= n * p:
        assert evidence == 0  # no evidence for a rate at or below the baseline


def test_rules_are_checked():
    with pytest.raises(ValueError):
        AnomalyRules(rolling=3, min_history=5)
    with pytest.raises(ValueError):
        AnomalyRules(alpha=0)
    assert AnomalyRules(alpha=1e-6).evidence_needed == pytest.approx(13.8155, abs=1e-3)
