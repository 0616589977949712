"""Checks on what the dataflow publishes, over a trailing period: freshness, error rates, gaps.

They run every few minutes (`stream_health_job`) against `window_aggregates` as the stream
writes it. Windows younger than ``settle_s`` are still open for the stream and are skipped.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
from clickhouse_connect.driver.client import Client

from eventpulse.warehouse.client import scalar_int
from orchestration.assets.sources import STREAM_AGGREGATES
from orchestration.resources import PlatformResource, WarehouseResource


def _table_exists(client: Client, name: str) -> bool:
    return bool(
        client.command(
            "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = {name:String}",
            parameters={"name": name},
        )
    )


def _since(platform: PlatformResource) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=platform.orchestration().check_lookback_s)


@dg.asset_check(
    asset=STREAM_AGGREGATES.key,
    description=(
        "Aggregates keep up with raw events: the newest stream emission trails the newest ingested raw event by "
        "at most freshness_max_lag_s (passes when no event arrived during the lookback: nothing to aggregate)."
    ),
)
def aggregates_are_fresh(warehouse: WarehouseResource, platform: PlatformResource) -> dg.AssetCheckResult:
    limit = platform.orchestration().freshness_max_lag_s
    with warehouse.client() as client:
        params = {"since": _since(platform)}
        latest_event = client.command(
            "SELECT max(ingested_at) FROM events WHERE ingested_at >= {since:DateTime64(3, 'UTC')}", parameters=params
        )
        latest_emission = client.command(
            "SELECT max(emitted_at) FROM window_aggregates WHERE origin = 'stream' "
            "AND emitted_at >= {since:DateTime64(3, 'UTC')} - INTERVAL 1 DAY",
            parameters=params,
        )
    events = client_time(latest_event)
    emission = client_time(latest_emission)
    if events is None:
        return dg.AssetCheckResult(passed=True, description="no raw events during the lookback")
    lag = (events - emission).total_seconds() if emission else float("inf")
    return dg.AssetCheckResult(
        passed=lag <= limit,
        description=f"aggregates trail raw events by {lag:.0f} s (limit {limit:.0f} s)",
        metadata={
            "lag_s": lag if lag != float("inf") else -1,
            "latest_raw_event_ingested_at": str(events),
            "latest_stream_emission": str(emission),
            "limit_s": limit,
        },
    )


def client_time(value: object) -> datetime | None:
    """A timestamp from ``client.command`` (datetime, or text when the server returns TSV)."""
    if value in (None, "", 0) or (isinstance(value, datetime) and value.year < 1971):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    if parsed.year < 1971:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dg.asset_check(
    asset=STREAM_AGGREGATES.key,
    description="Dead letters / (events + dead letters) received during the lookback stays below max_dead_letter_rate.",
)
def dead_letter_rate_is_low(warehouse: WarehouseResource, platform: PlatformResource) -> dg.AssetCheckResult:
    limit = platform.orchestration().max_dead_letter_rate
    params = {"since": _since(platform)}
    with warehouse.client() as client:
        events = scalar_int(
            client,
            "SELECT count() FROM events FINAL WHERE received_at >= {since:DateTime64(3, 'UTC')}",
            parameters=params,
        )
        dead = scalar_int(
            client,
            "SELECT count() FROM dead_letters FINAL WHERE received_at >= {since:DateTime64(3, 'UTC')}",
            parameters=params,
        )
    rate = dead / (events + dead) if events + dead else 0.0
    return dg.AssetCheckResult(
        passed=rate <= limit,
        description=f"dead-letter rate {rate:.4%} (limit {limit:.2%})",
        metadata={"events": events, "dead_letters": dead, "rate": rate, "limit": limit},
    )


@dg.asset_check(
    asset=STREAM_AGGREGATES.key,
    description=(
        "Events that came too late for their window (late_events, recorded by the dataflow) / events received "
        "during the lookback stays below max_late_event_rate. Late days are re-computed by the late-events sensor."
    ),
)
def late_event_rate_is_low(warehouse: WarehouseResource, platform: PlatformResource) -> dg.AssetCheckResult:
    limit = platform.orchestration().max_late_event_rate
    params = {"since": _since(platform)}
    with warehouse.client() as client:
        if not _table_exists(client, "late_events"):
            return dg.AssetCheckResult(
                passed=True, description="no late_events table in this warehouse", metadata={"late_events_table": False}
            )
        events = scalar_int(
            client,
            "SELECT count() FROM events FINAL WHERE received_at >= {since:DateTime64(3, 'UTC')}",
            parameters=params,
        )
        late = scalar_int(
            client,
            "SELECT uniqExact(tenant, id) FROM late_events WHERE detected_at >= {since:DateTime64(3, 'UTC')}",
            parameters=params,
        )
    rate = late / events if events else 0.0
    return dg.AssetCheckResult(
        passed=rate <= limit,
        description=f"late-event rate {rate:.4%} (limit {limit:.2%})",
        metadata={"events": events, "late_events": late, "rate": rate, "limit": limit},
    )


@dg.asset_check(
    asset=STREAM_AGGREGATES.key,
    description=(
        "No gaps: every (tenant, tumbling window) that had raw events during the lookback has its tenant-wide "
        "row in window_aggregates; windows younger than settle_s are skipped. Metadata lists every missing window."
    ),
)
def no_gaps_in_traffic_windows(warehouse: WarehouseResource, platform: PlatformResource) -> dg.AssetCheckResult:
    settings = platform.orchestration()
    until = datetime.now(UTC) - timedelta(seconds=settings.settle_s)
    since = until - timedelta(seconds=settings.check_lookback_s)
    tumbling = [w for w in platform.window_specs() if w.is_tumbling]
    missing: list[dict[str, object]] = []
    checked = 0
    with warehouse.client() as client:
        for window in tumbling:
            params = {"since": since, "until": until, "ms": window.seconds * 1000, "s": window.seconds}
            start = (
                "fromUnixTimestamp64Milli(intDiv(toUnixTimestamp64Milli(timestamp), {ms:Int64}) * {ms:Int64}, 'UTC')"
            )
            traffic = (
                f"SELECT DISTINCT tenant, {start} AS window_start FROM events "
                "WHERE timestamp >= {since:DateTime64(3, 'UTC')} AND timestamp < {until:DateTime64(3, 'UTC')}"
            )
            checked += scalar_int(client, f"SELECT count() FROM ({traffic})", parameters=params)
            rows = client.query(
                f"SELECT tenant, window_start FROM ({traffic}) WHERE window_start + INTERVAL {{s:UInt32}} SECOND "
                "<= {until:DateTime64(3, 'UTC')} AND (tenant, window_start) NOT IN ("
                "SELECT tenant, window_start FROM window_aggregates WHERE window_seconds = {s:UInt32} "
                "AND slide_seconds = {s:UInt32} AND type = '*' AND source = '*' "
                "AND window_start >= {since:DateTime64(3, 'UTC')} - INTERVAL {s:UInt32} SECOND) "
                "ORDER BY tenant, window_start",
                parameters=params,
            ).result_rows
            missing += [{"window_seconds": window.seconds, "tenant": t, "window_start": str(w)} for t, w in rows]
    limit = settings.max_listed_differences
    return dg.AssetCheckResult(
        passed=not missing,
        description=f"{len(missing)} window(s) with traffic but no aggregate row, of {checked} checked",
        metadata={
            "windows_checked": checked,
            "missing_total": len(missing),
            "missing": dg.MetadataValue.json(missing[:limit]),
            "since": str(since),
            "until": str(until),
        },
    )


STREAM_HEALTH_CHECKS = [
    aggregates_are_fresh,
    dead_letter_rate_is_low,
    late_event_rate_is_low,
    no_gaps_in_traffic_windows,
]
