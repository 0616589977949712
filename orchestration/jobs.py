"""Jobs the schedules and sensors launch."""

import dagster as dg

from orchestration.assets.sources import STREAM_AGGREGATES

daily_batch_job = dg.define_asset_job(
    "daily_batch_job",
    selection=dg.AssetSelection.assets("window_aggregates_batch", "rollup_hourly", "rollup_daily", "events_archive"),
    description="Yesterday's batch recompute (with its stream-vs-batch check), rollups and verified archive.",
)

late_events_backfill_job = dg.define_asset_job(
    "late_events_backfill_job",
    selection=dg.AssetSelection.assets("window_aggregates_batch", "rollup_hourly", "rollup_daily"),
    description="Recompute the days that received events too late for the stream (launched by late_events_sensor).",
)

retention_job = dg.define_asset_job(
    "retention_job",
    selection=dg.AssetSelection.assets("raw_events_retention"),
    description="Drop raw-event days past retention whose archive is verified; refuse and report the others.",
)

stream_health_job = dg.define_asset_job(
    "stream_health_job",
    selection=dg.AssetSelection.checks_for_assets(STREAM_AGGREGATES.key),
    description="Freshness, dead-letter and late-event rates, and gaps of the stream's aggregates.",
)

JOBS = [daily_batch_job, late_events_backfill_job, retention_job, stream_health_job]
