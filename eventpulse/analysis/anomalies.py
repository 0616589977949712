"""Latency and error-rate spikes in window aggregates, judged against each tenant's recent past.

A window is compared with the windows before it (the previous ``rolling`` windows of the same tenant):

- **Errors**: the baseline rate is the pooled rate of those windows, ``(errors + 0.5) / (events + 1)``.
  Under that rate a window's error count is binomial, and the chance of ``k`` or more errors in ``n``
  events is at most ``exp(-n * KL(k/n || p))`` (the Chernoff bound; ``KL`` is the Kullback-Leibler
  divergence of two Bernoulli rates).
- **Latency**: the baseline p95 and p99 are the medians of those windows' own. If the window's p50 is
  above the baseline p95, half its events were slower than a level that, unchanged, at most
  `TAIL_95` of events exceed; the same for p50 above the baseline p99 (`TAIL_99`), and for p95 above
  the baseline p99 (5 % of the events). Each gives a Chernoff bound as above; the strongest counts.
  (`TAIL_95` and `TAIL_99` are twice the nominal 5 % and 1 %: a median of small windows' percentiles
  sits below the true one, and the test must not lean on it.)

The evidence is ``-ln`` of the bound, in nats: a window is an anomaly when it exceeds ``ln(1 / alpha)``
*and* the change matters (p95 ``min_rise`` above the baseline p95, or the error rate ``min_error_rise``
above the baseline rate), in a window of ``min_events`` events or more after ``min_history`` windows.

Why not a z-score of the percentiles against their rolling median and MAD: it ignores how many events a
window holds, and a small window's p95 or error rate swings widely on steady traffic (the heavy latency
tail, the binomial noise of a 7 % error rate on 40 events). With a materiality floor (p95 2.5 times the
median, errors +10 points) it still flagged 33 to 62 of 6,000 steady windows of 20 tenants at 10 to 30
events/s (the issue saw 19 of 261 before the floor); these rules flagged none at 3 to 3,000 events/s. The
bound shrinks with the window's size: quiet on small windows unless the shift is large, sensitive on large ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

TAIL_95 = 0.10
"""The share of events assumed above the baseline p95 (nominally 5 %)."""
TAIL_99 = 0.02
"""The share of events assumed above the baseline p99 (nominally 1 %)."""
_RATE_FLOOR = 1e-9


@dataclass(frozen=True)
class AnomalyRules:
    """When a window is an anomaly (see the module docstring)."""

    rolling: int = 30
    """Previous windows of the same tenant that form its baseline."""
    min_history: int = 5
    """Windows of history needed before a window is judged."""
    alpha: float = 1e-6
    """The largest chance of the window on unchanged traffic for it to count as evidence."""
    min_rise: float = 0.5
    """p95 at least this much above the baseline p95 (0.5: 1.5 times) for a latency anomaly."""
    min_error_rise: float = 0.05
    """Error rate at least this many points (0.05: 5 points) above the baseline for an error anomaly."""
    min_events: int = 20
    """Windows with fewer events are not judged."""

    def __post_init__(self) -> None:
        if self.rolling < self.min_history or self.min_history < 1:
            raise ValueError("need 1 <= min_history <= rolling")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha is a probability in (0, 1)")

    @property
    def evidence_needed(self) -> float:
        """Nats of evidence a window needs: ``ln(1 / alpha)``."""
        return math.log(1 / self.alpha)


def bernoulli_kl(q: pl.Expr, p: pl.Expr) -> pl.Expr:
    """``KL(q || p)`` of two Bernoulli rates when ``q > p`` (the upper tail), else 0."""
    p = p.clip(_RATE_FLOOR, 1 - _RATE_FLOOR)
    up = pl.when(q > 0).then(q * (q / p).log()).otherwise(0.0)
    down = pl.when(q < 1).then((1 - q) * ((1 - q) / (1 - p)).log()).otherwise(0.0)
    return pl.when(q > p).then(up + down).otherwise(0.0)


def upper_tail_evidence(k: pl.Expr, n: pl.Expr, p: pl.Expr) -> pl.Expr:
    """``-ln`` of the Chernoff bound on P(X >= k) for X ~ Binomial(n, p): ``n * KL(k/n || p)``."""
    return pl.when(n > 0).then(n * bernoulli_kl(k / n, p)).otherwise(0.0)


def score_windows(windows: pl.DataFrame, rules: AnomalyRules | None = None) -> pl.DataFrame:
    """``windows`` (tenant, window_start, event_count, error_count, latency_p50/p95/p99, and
    ``latency_count`` if known) with each window's baseline, evidence and verdict: ``baseline_error_rate``,
    ``baseline_p95``, ``baseline_p99``, ``error_evidence``, ``latency_evidence`` (nats), ``slow``,
    ``failing``, ``anomaly`` and ``score`` (the larger evidence)."""
    rules = rules or AnomalyRules()
    n_latency = pl.col("latency_count") if "latency_count" in windows.columns else pl.col("event_count")

    def past_sum(column: str) -> pl.Expr:
        return pl.col(column).shift(1).rolling_sum(rules.rolling, min_samples=rules.min_history).over("tenant")

    def past_median(column: str) -> pl.Expr:
        return pl.col(column).shift(1).rolling_median(rules.rolling, min_samples=rules.min_history).over("tenant")

    def exceeds(share: float, observed: str, level: str, tail: float) -> pl.Expr:
        """Evidence that at least ``share`` of the events were above ``level`` (which ``tail`` exceed)."""
        k = (n_latency * share).floor()
        return pl.when(pl.col(observed) > pl.col(level)).then(upper_tail_evidence(k, n_latency, pl.lit(tail)))

    scored = (
        windows.sort("tenant", "window_start")
        .with_columns(
            ((past_sum("error_count") + 0.5) / (past_sum("event_count") + 1)).alias("baseline_error_rate"),
            past_median("latency_p95").alias("baseline_p95"),
            past_median("latency_p99").alias("baseline_p99"),
        )
        .with_columns(
            # a baseline needs min_history windows before this one
            (pl.col("baseline_error_rate").is_not_null() & (pl.col("event_count") >= rules.min_events)).alias("judged"),
            upper_tail_evidence(pl.col("error_count"), pl.col("event_count"), pl.col("baseline_error_rate"))
            .fill_null(0.0)
            .alias("error_evidence"),
            pl.max_horizontal(
                exceeds(0.5, "latency_p50", "baseline_p95", TAIL_95),
                exceeds(0.5, "latency_p50", "baseline_p99", TAIL_99),
                exceeds(0.05, "latency_p95", "baseline_p99", TAIL_99),
            )
            .fill_null(0.0)
            .alias("latency_evidence"),
        )
    )
    needed = rules.evidence_needed
    slow = (pl.col("latency_evidence") > needed) & (
        pl.col("latency_p95") >= (1 + rules.min_rise) * pl.col("baseline_p95")
    )
    failing = (pl.col("error_evidence") > needed) & (
        pl.col("error_count") / pl.col("event_count") >= pl.col("baseline_error_rate") + rules.min_error_rise
    )
    return scored.with_columns(
        (pl.col("judged") & slow).fill_null(False).alias("slow"),
        (pl.col("judged") & failing).fill_null(False).alias("failing"),
        pl.max_horizontal("error_evidence", "latency_evidence").alias("score"),
    ).with_columns((pl.col("slow") | pl.col("failing")).alias("anomaly"))


def find_anomalies(windows: pl.DataFrame, rules: AnomalyRules | None = None) -> pl.DataFrame:
    """The anomalous windows of `score_windows`, strongest first."""
    return score_windows(windows, rules).filter("anomaly").sort("score", descending=True)
