"""`raw_events_retention`: drop raw-event days past retention, only when their archive is verified."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from eventpulse.audit import Action, Actor, AuditWriter
from orchestration.assets.archive import events_archive
from orchestration.resources import ArchiveResource, PlatformResource, WarehouseResource
from orchestration.retention_rules import decide, drop_day, raw_event_days
from orchestration.sensors.run_audit import launched_by


class RetentionConfig(dg.Config):
    """Run options; the defaults come from the settings."""

    retention_days: int | None = Field(None, description="Overrides EVENTPULSE_ORCHESTRATION_RETENTION_DAYS.")
    dry_run: bool = Field(False, description="Decide and report, drop nothing.")


@dg.asset(
    deps=[events_archive],
    group_name="archive",
    kinds={"clickhouse"},
    description=(
        "Drop the raw-event partitions older than the retention period whose archive is verified, the files "
        "are still in the store, and the warehouse still holds exactly the archived rows. Any other old day is "
        "refused: the run lists every refusal with its reason and fails, after dropping the days that qualified."
    ),
)
def raw_events_retention(
    context: dg.AssetExecutionContext,
    config: RetentionConfig,
    warehouse: WarehouseResource,
    archive: ArchiveResource,
    platform: PlatformResource,
) -> dg.MaterializeResult:
    retention_days = config.retention_days or platform.orchestration().retention_days
    store = archive.store()
    today = datetime.now(UTC).date()
    dropped: dict[str, int] = {}
    refused: dict[str, str] = {}
    actor, role = launched_by(context.run.tags)
    with warehouse.client() as client:
        audit = AuditWriter(client, Actor(actor, role, source="dagster"))
        parameters = {"run_id": context.run_id, "retention_days": retention_days, "dry_run": config.dry_run}
        # One row per run, written before the run reports: the days dropped and the days refused.
        with audit.recorded(Action.RETENTION_RUN, target="events", tenant="", parameters=parameters) as recorded:
            recorded.update(dropped=dropped, refused=refused)
            for day in raw_event_days(client):
                decision = decide(client, store, day, today, retention_days)
                if decision.drop:
                    if not config.dry_run:
                        drop_day(client, day)
                    dropped[day.isoformat()] = decision.rows
                    context.log.info(
                        f"{'would drop' if config.dry_run else 'dropped'} {day}: {decision.rows} raw events"
                    )
                elif decision.reason.startswith("refused"):
                    refused[day.isoformat()] = decision.reason
                    context.log.warning(f"kept {day}: {decision.reason}")
            if refused:
                raise dg.Failure(
                    description=f"refused to drop {len(refused)} day(s) without a verified, current archive: "
                    + "; ".join(f"{d}: {r}" for d, r in refused.items()),
                    metadata=_metadata(retention_days, config.dry_run, dropped, refused),
                )
    return dg.MaterializeResult(metadata=_metadata(retention_days, config.dry_run, dropped, refused))


def _metadata(retention_days: int, dry_run: bool, dropped: dict[str, int], refused: dict[str, str]) -> dict[str, Any]:
    return {
        "retention_days": retention_days,
        "dry_run": dry_run,
        "dropped": dg.MetadataValue.json(dropped),
        "refused": dg.MetadataValue.json(refused),
        "rows_dropped": sum(dropped.values()),
    }
