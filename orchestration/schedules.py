"""Schedules: yesterday's batch work each night, retention after it, stream health every 5 minutes."""

import dagster as dg

from orchestration.jobs import daily_batch_job, retention_job, stream_health_job

daily_batch_schedule = dg.build_schedule_from_partitioned_job(
    daily_batch_job,
    hour_of_day=0,
    minute_of_hour=30,
    name="daily_batch_schedule",
    description=(
        "00:30 UTC: recompute yesterday's window aggregates and rollups from raw events and archive yesterday "
        "(the stream's allowed lateness has long passed by then)."
    ),
)

retention_schedule = dg.ScheduleDefinition(
    name="retention_schedule",
    job=retention_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    description="03:00 UTC: drop raw-event days past retention that have a verified archive.",
)

stream_health_schedule = dg.ScheduleDefinition(
    name="stream_health_schedule",
    job=stream_health_job,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    description="Every 5 minutes: freshness, dead-letter and late-event rates, gaps of the stream's aggregates.",
)

SCHEDULES = [daily_batch_schedule, retention_schedule, stream_health_schedule]
