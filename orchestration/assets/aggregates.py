"""`window_aggregates_batch`: recompute a day's window aggregates from raw events and swap them in."""

import dagster as dg

from orchestration.assets.sources import RAW_EVENTS
from orchestration.guards import refuse_days_without_raw_events
from orchestration.partitions import DAILY, day_of
from orchestration.rebuild import rebuild_days
from orchestration.reconciliation import check_result, reconcile_stream_day
from orchestration.resources import PlatformResource, WarehouseResource

RECONCILIATION_CHECK = "stream_matches_batch"


@dg.asset(
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[RAW_EVENTS],
    group_name="aggregates",
    kinds={"clickhouse"},
    pool="window_aggregates_swap",
    check_specs=[
        dg.AssetCheckSpec(
            RECONCILIATION_CHECK,
            asset="window_aggregates_batch",
            description=(
                "Stream vs batch, per day: the rows the stream wrote (kept in replaced_stream_rows when a "
                "recompute replaced them) against the recompute from raw events of the same data (events the "
                "stream recorded as too late for a window are left out of it). Counts exact, percentiles within "
                "the sketch's stated error; metadata lists every difference. A day without stream rows is not "
                "compared."
            ),
        )
    ],
    description=(
        "Recompute every window family of each day from raw events (`events FINAL`) with the spec's batch SQL, "
        "build it in `window_aggregates_staging` and swap it into `window_aggregates` with REPLACE PARTITION: "
        "origin='batch', is_final=1, version above any streaming emission. Re-running a day is safe. Refuses a "
        "day whose raw events were dropped after archival (use events_replay)."
    ),
)
def window_aggregates_batch(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, platform: PlatformResource
):
    days = [day_of(key) for key in context.partition_keys]
    windows = platform.window_specs()
    with warehouse.client() as client:
        refuse_days_without_raw_events(client, days)
        report = rebuild_days(context, client, "window_aggregates", days, windows, reconcile=reconcile_stream_day)
    yield dg.MaterializeResult(metadata=report.metadata())
    yield check_result(
        RECONCILIATION_CHECK,
        report.reconciliations,
        platform.orchestration().max_listed_differences,
        what="the stream's rows",
    )
