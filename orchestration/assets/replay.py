"""`events_replay`: recompute a day's window aggregates from its Parquet archive."""

import dagster as dg

from orchestration.archive import replay
from orchestration.assets.archive import events_archive
from orchestration.partitions import DAILY, day_of
from orchestration.rebuild import rebuild_days
from orchestration.reconciliation import check_result, reconcile_day
from orchestration.resources import ArchiveResource, PlatformResource, WarehouseResource

REPLAY_CHECK = "replay_matches_published"


@dg.asset(
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[events_archive],
    group_name="archive",
    kinds={"parquet", "clickhouse"},
    pool="events_replay_staging",
    check_specs=[
        dg.AssetCheckSpec(
            REPLAY_CHECK,
            asset="events_replay",
            description=(
                "The aggregates recomputed from the archive against the rows published before the replay "
                "(tolerances of the spec); every difference listed."
            ),
        )
    ],
    description=(
        "For each day: load its verified Parquet archive into `events_replay_staging` (checked against the "
        "manifest's rows and checksum; the neighbouring days' edges that hopping windows reach come from their "
        "archive or from `events`), recompute every window family with the spec's batch SQL and swap the day "
        "into `window_aggregates`. This is how aggregates are rebuilt after retention dropped the raw events."
    ),
)
def events_replay(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    archive: ArchiveResource,
    platform: PlatformResource,
):
    windows = platform.window_specs()
    reach_s = max(w.seconds for w in windows)
    store = archive.store()
    reports = []
    with warehouse.client() as client:
        for key in context.partition_keys:
            day = day_of(key)
            try:
                loaded = replay.load_day(client, store, day, reach_s)
            except replay.ReplayError as exc:
                raise dg.Failure(description=str(exc), metadata={"day": key}) from exc
            context.log.info(f"{day}: loaded {loaded.rows} archived events (checksum verified)")
            try:
                reports.append(
                    rebuild_days(
                        context,
                        client,
                        "window_aggregates",
                        [day],
                        windows,
                        events_table=replay.STAGING,
                        reconcile=reconcile_day,
                    )
                )
            finally:
                replay.clear(client, day)
    rows_by_day = {d: n for r in reports for d, n in r.rows_by_day.items()}
    yield dg.MaterializeResult(
        metadata={"rows": sum(rows_by_day.values()), "rows_by_day": dg.MetadataValue.json(rows_by_day)}
    )
    yield check_result(
        REPLAY_CHECK,
        [rec for r in reports for rec in r.reconciliations],
        platform.orchestration().max_listed_differences,
        what="published rows before the replay",
    )
