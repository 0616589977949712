"""Tables other components write, declared so lineage and checks can point at them."""

import dagster as dg

RAW_EVENTS = dg.AssetSpec(
    "events",
    description=(
        "Raw events in the warehouse (`events`, ReplacingMergeTree deduplicated by tenant, timestamp, id), "
        "written by the dataflow (flows/). Read with FINAL for exact counts."
    ),
    group_name="warehouse",
    kinds={"clickhouse"},
)

STREAM_AGGREGATES = dg.AssetSpec(
    "window_aggregates",
    description=(
        "Window aggregates as the dataflow publishes them (origin='stream', provisional then final), "
        "superseded per day by window_aggregates_batch (origin='batch', higher version)."
    ),
    group_name="warehouse",
    kinds={"clickhouse"},
    deps=[RAW_EVENTS],
)
