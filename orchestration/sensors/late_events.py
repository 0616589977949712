"""Turn events that came too late for the stream into backfill runs of just the days they touched."""

from datetime import UTC, date, datetime

import dagster as dg

from eventpulse.warehouse.client import scalar_int
from orchestration.archive import manifests
from orchestration.jobs import late_events_backfill_job
from orchestration.partitions import DAILY
from orchestration.resources import PlatformResource, WarehouseResource


@dg.sensor(
    job=late_events_backfill_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Reads late_events (written by the dataflow for events past the allowed lateness) since its cursor and "
        "launches one recompute run per affected day (the days of the windows the events missed): "
        "window_aggregates_batch and the rollups, plus events_archive when the day was already archived. "
        "Days not over yet are left to the nightly schedule."
    ),
)
def late_events_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, platform: PlatformResource
) -> dg.SensorResult | dg.SkipReason:
    since = datetime.fromisoformat(context.cursor) if context.cursor else datetime(1970, 1, 1, tzinfo=UTC)
    with warehouse.client() as client:
        exists = scalar_int(
            client, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'late_events'"
        )
        if not exists:
            return dg.SkipReason("no late_events table in this warehouse")
        rows = client.query(
            "SELECT toDate(window_start) AS day, uniqExact(tenant, id), max(detected_at) FROM late_events "
            "WHERE detected_at > {since:DateTime64(3, 'UTC')} GROUP BY day ORDER BY day",
            parameters={"since": since},
        ).result_rows
        if not rows:
            return dg.SkipReason(f"no late events since {since.isoformat()}")
        today = datetime.now(UTC).date()
        first = date.fromisoformat(DAILY.get_first_partition_key() or "1970-01-01")
        cursor = max(r[2] for r in rows)
        cursor = cursor if cursor.tzinfo else cursor.replace(tzinfo=UTC)
        requests = []
        for day, count, _ in rows:
            if not first <= day < today:
                context.log.info(f"{count} late event(s) for {day}: left to the nightly recompute")
                continue
            selection = [
                dg.AssetKey("window_aggregates_batch"),
                dg.AssetKey("rollup_hourly"),
                dg.AssetKey("rollup_daily"),
            ]
            if manifests.latest(client, day) is not None:
                selection.append(dg.AssetKey("events_archive"))
            context.log.info(f"{count} late event(s) for {day}: requesting a recompute")
            requests.append(
                dg.RunRequest(
                    run_key=f"late-events:{day.isoformat()}:{cursor.isoformat()}",
                    partition_key=day.isoformat(),
                    asset_selection=selection,
                    tags={"eventpulse/late_events": str(count)},
                )
            )
    return dg.SensorResult(run_requests=requests, cursor=cursor.isoformat())
