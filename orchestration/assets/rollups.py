"""`rollup_hourly` and `rollup_daily`: coarse tables the dashboards read when they answer the question."""

import dagster as dg

from eventpulse.aggregation.batch_sql import rollup_source
from eventpulse.aggregation.spec import WindowSpec
from orchestration.guards import refuse_days_without_raw_events
from orchestration.partitions import DAILY, day_of
from orchestration.rebuild import rebuild_days
from orchestration.resources import PlatformResource, WarehouseResource

_SCHEMA_NOTE = (
    "Same columns as `window_aggregates` (tenant, window_seconds, slide_seconds, window_start, window_end, type, "
    "source, the spec's metrics and mergeable states, is_final, origin, version, emitted_at), for the same "
    "grouping sets (a dimension a row does not group by is '*'). Built by merging the day's rows of the longest "
    "tumbling window family of `window_aggregates` that tiles the period: counts and sums add, distinct users "
    "and percentiles come from the merged states (distinct users exact but for 64-bit hash collisions, "
    "percentiles within the sketch's 1 %), never recomputed from raw events. Swapped in per day with REPLACE "
    "PARTITION; refuses days whose raw events were dropped after archival."
)


def _rollup(name: str, window: WindowSpec, what: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        partitions_def=DAILY,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["window_aggregates_batch"],
        group_name="aggregates",
        kinds={"clickhouse"},
        pool=f"{name}_swap",
        description=f"{what} rollup of the window aggregates in table `{name}` (window_seconds = {window.seconds}). "
        + _SCHEMA_NOTE,
    )
    def rollup(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, platform: PlatformResource
    ) -> dg.MaterializeResult:
        days = [day_of(key) for key in context.partition_keys]
        source = rollup_source(platform.window_specs(), window)
        with warehouse.client() as client:
            refuse_days_without_raw_events(client, days)
            report = rebuild_days(context, client, name, days, (window,), merge_from=source)
        return dg.MaterializeResult(metadata={**report.metadata(), "merged_from": f"{source.seconds}s windows"})

    return rollup


rollup_hourly = _rollup("rollup_hourly", WindowSpec(3600, 3600), "Hourly")
rollup_daily = _rollup("rollup_daily", WindowSpec(86400, 86400), "Daily")
