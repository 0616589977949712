"""Run-status sensors that put every Dagster run's launch, success and failure in ``audit_log``.

Backfills, recomputes, archives, retention: whatever a run materializes, its start and its end are
recorded with the job, the partition (or partition range) and who or what launched it, read from
the tags Dagster puts on each run: a schedule, a sensor, a backfill, or a person in the UI or CLI
(``manual``: Dagster's open-source webserver does not know who is signed in; a ``user`` tag names
them when the launcher sets one).
"""

from collections.abc import Mapping

import dagster as dg

from eventpulse.audit import FAILURE, SUCCESS, Action, Actor, AuditWriter, Role
from orchestration.resources import WarehouseResource

_PARTITION = "dagster/partition"
_RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def launched_by(tags: Mapping[str, str]) -> tuple[str, str]:
    """``(actor, role)`` of the run's launcher, from its tags."""
    if name := tags.get("dagster/schedule_name"):
        return f"schedule:{name}", Role.SYSTEM
    if name := tags.get("dagster/sensor_name"):
        return f"sensor:{name}", Role.SYSTEM
    user = tags.get("dagster/user") or tags.get("user")
    if backfill := tags.get("dagster/backfill"):
        return f"backfill:{backfill}" + (f" by {user}" if user else ""), Role.OPERATOR
    return (f"user:{user}" if user else "manual"), Role.OPERATOR


def partition_of(tags: Mapping[str, str]) -> str:
    """The run's partition key, ``start...end`` for a ranged backfill run, "" when unpartitioned."""
    if key := tags.get(_PARTITION):
        return key
    start, end = (tags.get(t, "") for t in _RANGE)
    return f"{start}...{end}" if start else ""


def record_run(context: dg.RunStatusSensorContext, warehouse: WarehouseResource, action: Action) -> None:
    """One audit row for the run in ``context`` at the status that triggered the sensor."""
    run = context.dagster_run
    tags = dict(run.tags)
    actor, role = launched_by(tags)
    assets = sorted(key.to_user_string() for key in (run.asset_selection or _planned_assets(context)))
    failed = action is Action.RUN_FAILURE
    error = (context.dagster_event.message or "run failed") if failed else ""
    with warehouse.client() as client:
        AuditWriter(client, Actor(actor, role, source="dagster")).record(
            action,
            target=run.job_name,
            tenant="",
            parameters={"run_id": run.run_id, "partition": partition_of(tags), "assets": assets, "launched_by": actor},
            result=FAILURE if failed else SUCCESS,
            error=error,
            request_id=run.run_id,
        )


def _planned_assets(context: dg.RunStatusSensorContext) -> set[dg.AssetKey]:
    """The assets a run planned to materialize (runs of a whole asset job carry no asset selection)."""
    records = context.instance.get_records_for_run(
        context.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=1000
    ).records
    events = (r.event_log_entry.dagster_event for r in records)
    return {event.asset_key for event in events if event is not None and event.asset_key is not None}


def _sensor(status: dg.DagsterRunStatus, action: Action, name: str) -> dg.RunStatusSensorDefinition:
    @dg.run_status_sensor(
        run_status=status,
        name=name,
        minimum_interval_seconds=5,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Records every run's {status.value.lower()} in audit_log ({action.value}).",
    )
    def _record(context: dg.RunStatusSensorContext, warehouse: WarehouseResource) -> None:
        record_run(context, warehouse, action)

    return _record


run_started_audit_sensor = _sensor(dg.DagsterRunStatus.STARTED, Action.RUN_START, "audit_run_started")
run_success_audit_sensor = _sensor(dg.DagsterRunStatus.SUCCESS, Action.RUN_SUCCESS, "audit_run_succeeded")
run_failure_audit_sensor = _sensor(dg.DagsterRunStatus.FAILURE, Action.RUN_FAILURE, "audit_run_failed")

RUN_AUDIT_SENSORS = [run_started_audit_sensor, run_success_audit_sensor, run_failure_audit_sensor]
