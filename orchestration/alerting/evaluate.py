"""Evaluate alert rules in SQL over the closed windows of ``window_aggregates``.

A window is closed at ``now`` when its final row is in and it ended by ``now``; a rule looks at the
closed windows that ended in its ``lookback_s`` (so a missed sensor tick misses nothing, and a
spike keeps its episode open for the lookback after it ends). Tenant-wide rows are those whose type
and source are both the "all" marker ``*``; per type/source rows have neither.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from eventpulse.aggregation.spec import grouping_filter
from eventpulse.alert_rules import AlertRule
from orchestration.alerting.firing import Firing

_BASE = (
    "window_seconds = {ws:UInt32} AND slide_seconds = {ws:UInt32} AND is_final = 1 "
    "AND window_end <= {now:DateTime64(3, 'UTC')} "
    f"AND if({{tenant_wide:Bool}}, {grouping_filter()}, {grouping_filter(('type', 'source'))}) "
    "AND (length({tenants:Array(String)}) = 0 OR has({tenants:Array(String)}, tenant))"
)


def _params(rule: AlertRule, now: datetime) -> dict[str, object]:
    return {
        "ws": rule.window_seconds,
        "now": now,
        "tenant_wide": rule.group_by == "tenant",
        "tenants": list(rule.tenants),
        "since": now - timedelta(seconds=rule.lookback_s),
        "from": now - timedelta(seconds=rule.lookback_s + rule.baseline_s + rule.window_seconds),
        "min_events": rule.min_events,
        "baseline_min_events": rule.baseline_min_events,
        "threshold": rule.threshold,
        "factor": rule.factor,
        "n": rule.baseline_windows,
    }


def _series(event_type: str, source: str) -> str:
    return event_type if source == "*" else f"{event_type}/{source}"


def _firing(rule: AlertRule, row: Sequence[Any], value: float, message: str) -> Firing:
    """A firing of ``rule`` from a result row that starts with tenant, type, source, window start."""
    tenant, event_type, source, start = row[:4]
    return Firing(
        rule=rule.name,
        severity=rule.severity,
        tenant=tenant,
        type=_series(event_type, source),
        metric=rule.metric if rule.kind != "volume_drop" else "event_count",
        value=value,
        threshold=rule.threshold,
        comparison=rule.comparison if rule.kind != "volume_drop" else "<",
        window_seconds=rule.window_seconds,
        window_start=start,
        message=message,
    )


def _threshold(client: Client, rule: AlertRule, now: datetime) -> list[Firing]:
    sql = (
        f"SELECT tenant, type, source, window_start, toFloat64({rule.metric}) AS value FROM window_aggregates FINAL "
        f"WHERE {_BASE} AND window_end > {{since:DateTime64(3, 'UTC')}} AND event_count >= {{min_events:UInt64}} "
        f"AND value {rule.comparison} {{threshold:Float64}} ORDER BY tenant, type, source, window_start"
    )
    rows = client.query(sql, parameters=_params(rule, now)).result_rows
    return [
        _firing(
            rule,
            row,
            float(value),
            f"{rule.name}: {rule.metric} = {value:g} {rule.comparison} {rule.threshold:g} for {tenant} "
            f"{event_type}/{source} in the {rule.window_seconds}s window at {start:%Y-%m-%d %H:%M:%S}",
        )
        for row in rows
        for tenant, event_type, source, start, value in [row]
    ]


def _baseline(client: Client, rule: AlertRule, now: datetime) -> list[Firing]:
    """Windows whose metric is beyond ``factor`` x the event-weighted mean of the ``baseline_s`` before them."""
    metric = f"toFloat64({rule.metric})"  # a name from the aggregation spec (checked by AlertRule)
    cmp = rule.comparison
    # The frame's offset must be a literal: baseline_s is a validated positive int, never text.
    frame = f"RANGE BETWEEN {int(rule.baseline_s)} PRECEDING AND 1 PRECEDING"
    sql = f"""
        SELECT tenant, type, source, window_start, value, baseline FROM (
            SELECT tenant, type, source, window_start, window_end, event_count, {metric} AS value,
                   sum(if(isNull(value), 0, value * event_count)) OVER w
                       / nullIf(sum(if(isNull(value), 0, event_count)) OVER w, 0) AS baseline,
                   sum(if(isNull(value), 0, event_count)) OVER w AS baseline_events
            FROM window_aggregates FINAL
            WHERE {_BASE} AND window_start >= {{from:DateTime64(3, 'UTC')}}
            WINDOW w AS (PARTITION BY tenant, type, source ORDER BY toInt64(toUnixTimestamp(window_start)) {frame})
        )
        WHERE window_end > {{since:DateTime64(3, 'UTC')}} AND event_count >= {{min_events:UInt64}}
          AND baseline_events >= {{baseline_min_events:UInt64}} AND baseline IS NOT NULL
          AND value {cmp} {{factor:Float64}} * baseline AND value {cmp} {{threshold:Float64}}
        ORDER BY tenant, type, source, window_start"""
    rows = client.query(sql, parameters=_params(rule, now)).result_rows
    return [
        _firing(
            rule,
            row,
            float(value),
            f"{rule.name}: {rule.metric} = {value:.4g} for {tenant} {_series(event_type, source)} in the "
            f"{rule.window_seconds}s window at {start:%Y-%m-%d %H:%M:%S}, {value / baseline:.1f} x its baseline of "
            f"{baseline:.4g} (rule: {rule.condition()})",
        )
        for row in rows
        for tenant, event_type, source, start, value, baseline in [row]
    ]


def _volume_drop(client: Client, rule: AlertRule, now: datetime) -> list[Firing]:
    sql = (
        f"WITH (SELECT max(window_start) FROM window_aggregates WHERE {_BASE} "
        "AND window_end > {since:DateTime64(3, 'UTC')}) AS latest "
        "SELECT tenant, type, source, latest, sumIf(event_count, window_start = latest) AS current, "
        "sumIf(event_count, window_start < latest) / {n:UInt32} AS baseline "
        f"FROM window_aggregates FINAL WHERE {_BASE} "
        "AND window_start >= latest - toIntervalSecond({ws:UInt32} * {n:UInt32}) AND window_start <= latest "
        "GROUP BY tenant, type, source "
        "HAVING baseline >= {min_events:UInt64} AND baseline > 0 AND current < {threshold:Float64} * baseline "
        "ORDER BY tenant, type, source"
    )
    rows = client.query(sql, parameters=_params(rule, now)).result_rows
    return [
        _firing(
            rule,
            row,
            float(current) / float(baseline),
            f"{rule.name}: {tenant} had {current} events in the {rule.window_seconds}s window at "
            f"{latest:%Y-%m-%d %H:%M:%S}, {float(current) / float(baseline):.0%} of its mean of {baseline:g} over "
            f"the {rule.baseline_windows} windows before",
        )
        for row in rows
        for tenant, _, _, latest, current, baseline in [row]
    ]


_KINDS = {"baseline": _baseline, "threshold": _threshold, "volume_drop": _volume_drop}


def evaluate(client: Client, rule: AlertRule, now: datetime | None = None) -> list[Firing]:
    """Every firing of ``rule`` among the closed windows of its lookback."""
    return _KINDS[rule.kind](client, rule, now or datetime.now(UTC))
