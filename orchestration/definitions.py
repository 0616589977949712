"""The one `Definitions` of EventPulse's Dagster code location (assembly only).

Loaded lazily (`dg.definitions`): nothing reads the environment until Dagster loads the code
location. Resources left unconfigured read ``EVENTPULSE_*`` settings when a run uses them;
secrets that are set appear as `EnvVar`s so Dagster never shows their values.
"""

import os

import dagster as dg

from orchestration.assets.aggregates import window_aggregates_batch
from orchestration.assets.archive import events_archive
from orchestration.assets.imports import imported_file
from orchestration.assets.replay import events_replay
from orchestration.assets.retention import raw_events_retention
from orchestration.assets.rollups import rollup_daily, rollup_hourly
from orchestration.assets.sources import RAW_EVENTS, STREAM_AGGREGATES
from orchestration.checks.stream_health import STREAM_HEALTH_CHECKS
from orchestration.jobs import JOBS
from orchestration.resources import (
    AlertingResource,
    ArchiveResource,
    BrokerResource,
    ImportResource,
    PlatformResource,
    WarehouseResource,
)
from orchestration.schedules import SCHEDULES
from orchestration.sensors.alerts import alert_rules_sensor
from orchestration.sensors.consumer_lag import consumer_lag_sensor
from orchestration.sensors.imports import import_files_sensor, import_job
from orchestration.sensors.late_events import late_events_sensor
from orchestration.sensors.run_audit import RUN_AUDIT_SENSORS


def _env_secret(name: str) -> dg.EnvVar | None:
    return dg.EnvVar(name) if os.environ.get(name) else None


def resources() -> dict[str, dg.ConfigurableResource]:
    """The production resources: settings from the environment at run time."""
    return {
        "warehouse": WarehouseResource(password=_env_secret("EVENTPULSE_WAREHOUSE_PASSWORD")),
        "broker": BrokerResource(),
        "archive": ArchiveResource(
            s3_access_key_id=_env_secret("EVENTPULSE_ORCHESTRATION_S3_ACCESS_KEY_ID"),
            s3_secret_access_key=_env_secret("EVENTPULSE_ORCHESTRATION_S3_SECRET_ACCESS_KEY"),
        ),
        "alerting": AlertingResource(),
        "imports": ImportResource(),
        "platform": PlatformResource(),
    }


ASSETS: list[dg.AssetSpec | dg.AssetsDefinition] = [
    RAW_EVENTS,
    STREAM_AGGREGATES,
    window_aggregates_batch,
    rollup_hourly,
    rollup_daily,
    events_archive,
    raw_events_retention,
    events_replay,
    imported_file,
]


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=STREAM_HEALTH_CHECKS,
        jobs=[*JOBS, import_job],
        schedules=SCHEDULES,
        sensors=[late_events_sensor, consumer_lag_sensor, alert_rules_sensor, import_files_sensor, *RUN_AUDIT_SENSORS],
        resources=resources(),
    )
