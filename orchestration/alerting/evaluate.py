"""Evaluate alert rules in SQL over the closed windows of ``window_aggregates``."""

from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from eventpulse.aggregation.spec import grouping_filter
from eventpulse.alert_rules import AlertRule
from orchestration.alerting.firing import Firing

_BASE = (
    "window_seconds = {ws:UInt32} AND slide_seconds = {ws:UInt32} AND is_final = 1 "
    f"AND if({{tenant_wide:Bool}}, {grouping_filter()}, {grouping_filter(('type', 'source'))}) "
    "AND (length({tenants:Array(String)}) = 0 OR has({tenants:Array(String)}, tenant))"
)


def _params(rule: AlertRule, now: datetime) -> dict[str, object]:
    return {
        "ws": rule.window_seconds,
        "tenant_wide": rule.group_by == "tenant",
        "tenants": list(rule.tenants),
        "since": now - timedelta(seconds=rule.lookback_s),
        "min_events": rule.min_events,
        "threshold": rule.threshold,
        "n": rule.baseline_windows,
    }


def _threshold(client: Client, rule: AlertRule, now: datetime) -> list[Firing]:
    sql = (
        f"SELECT tenant, type, source, window_start, toFloat64({rule.metric}) AS value FROM window_aggregates FINAL "
        f"WHERE {_BASE} AND window_start >= {{since:DateTime64(3, 'UTC')}} AND event_count >= {{min_events:UInt64}} "
        f"AND value {rule.comparison} {{threshold:Float64}} ORDER BY tenant, type, source, window_start"
    )
    rows = client.query(sql, parameters=_params(rule, now)).result_rows
    return [
        Firing(
            rule=rule.name,
            severity=rule.severity,
            tenant=tenant,
            type=event_type if source == "*" else f"{event_type}/{source}",
            metric=rule.metric,
            value=float(value),
            threshold=rule.threshold,
            comparison=rule.comparison,
            window_seconds=rule.window_seconds,
            window_start=start,
            message=f"{rule.name}: {rule.metric} = {value:g} {rule.comparison} {rule.threshold:g} "
            f"for {tenant} {event_type}/{source} in the {rule.window_seconds}s window at {start:%Y-%m-%d %H:%M:%S}",
        )
        for tenant, event_type, source, start, value in rows
    ]


def _volume_drop(client: Client, rule: AlertRule, now: datetime) -> list[Firing]:
    sql = (
        f"WITH (SELECT max(window_start) FROM window_aggregates WHERE {_BASE} "
        "AND window_start >= {since:DateTime64(3, 'UTC')}) AS latest "
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
        Firing(
            rule=rule.name,
            severity=rule.severity,
            tenant=tenant,
            type=event_type if source == "*" else f"{event_type}/{source}",
            metric="event_count",
            value=float(current) / float(baseline),
            threshold=rule.threshold,
            comparison="<",
            window_seconds=rule.window_seconds,
            window_start=latest,
            message=f"{rule.name}: {tenant} had {current} events in the {rule.window_seconds}s window at "
            f"{latest:%Y-%m-%d %H:%M:%S}, {float(current) / float(baseline):.0%} of its mean of {baseline:g} over "
            f"the {rule.baseline_windows} windows before",
        )
        for tenant, event_type, source, latest, current, baseline in rows
    ]


def evaluate(client: Client, rule: AlertRule, now: datetime | None = None) -> list[Firing]:
    """Every firing of ``rule`` among the closed windows of its lookback."""
    now = now or datetime.now(UTC)
    return _volume_drop(client, rule, now) if rule.kind == "volume_drop" else _threshold(client, rule, now)
