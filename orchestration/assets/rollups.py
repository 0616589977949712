"""`rollup_hourly` and `rollup_daily`: coarse tables the dashboards read when they answer the question."""

import dagster as dg

from eventpulse.aggregation.spec import WindowSpec
from orchestration.assets.sources import RAW_EVENTS
from orchestration.guards import refuse_days_without_raw_events
from orchestration.partitions import DAILY, day_of
from orchestration.rebuild import rebuild_days
from orchestration.resources import WarehouseResource

_SCHEMA_NOTE = (
    "Same columns as `window_aggregates` (tenant, window_seconds, slide_seconds, window_start, window_end, type, "
    "source, the spec's metrics, is_final, origin, version, emitted_at); tenant-wide rows have type = source = '*'. "
    "Exact metrics (distinct users, percentiles) recomputed from raw events, swapped in per day with REPLACE "
    "PARTITION; refuses days whose raw events were dropped after archival."
)


def _rollup(name: str, window: WindowSpec, what: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        partitions_def=DAILY,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[RAW_EVENTS],
        group_name="aggregates",
        kinds={"clickhouse"},
        pool=f"{name}_swap",
        description=f"{what} rollup of raw events in table `{name}` (window_seconds = {window.seconds}). "
        + _SCHEMA_NOTE,
    )
    def rollup(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        days = [day_of(key) for key in context.partition_keys]
        with warehouse.client() as client:
            refuse_days_without_raw_events(client, days)
            report = rebuild_days(context, client, name, days, (window,))
        return dg.MaterializeResult(metadata=report.metadata())

    return rollup


rollup_hourly = _rollup("rollup_hourly", WindowSpec(3600, 3600), "Hourly")
rollup_daily = _rollup("rollup_daily", WindowSpec(86400, 86400), "Daily")
