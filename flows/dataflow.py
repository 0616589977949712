"""The events dataflow: topic → validation → raw events, dead letters, event-time windows.

Run it with ``python -m bytewax.run flows.dataflow:flow`` (settings from the environment, see
`eventpulse.settings`), or build it in code with `get_flow`. Nothing is built at import: the
module attribute ``flow`` is created on first access.

Steps::

    kafka (KafkaBatchSource: micro-batches per partition)
      └ decode (every partition's batch of a step at once: raw rows, dead letters, a polars frame)
          ├ raw events sink         → events        (token: topic@incarnation:partition:first-last)
          ├ dead letters sink       → dead_letters  (+ the dead-letter topic when enabled)
          └ route (one slice per tenant bucket, every bucket sees every batch's progress)
              └ windows (stateful_batch: WindowLogic per bucket; each event once; windows started
                  │      without state seeded from the raw events already in the warehouse)
                  ├ aggregates sink → window_aggregates (versioned rows)
                  └ late sink       → late_events
"""

import time
from typing import Any

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow

from eventpulse.aggregation.spec import window_specs
from eventpulse.events import EventValidator
from eventpulse.incidents import IncidentLog
from eventpulse.settings import Settings
from flows.decode import DecodedBatch, decode_batches, warm_up
from flows.metrics import PipelineMetrics
from flows.seeding import WarehouseSeedReader
from flows.sinks import TopicSink, WarehouseSink
from flows.source import KafkaBatchSource, topic_partition_ids
from flows.windowing import (
    Emission,
    Router,
    WindowConfig,
    WindowLogic,
)

__all__ = ["get_flow"]


def get_flow(settings: Settings | None = None) -> Dataflow:
    """Build the events dataflow for ``settings`` (default: `Settings()` from the environment)."""
    settings = settings or Settings()
    broker, warehouse, stream = settings.broker, settings.warehouse, settings.stream
    topic = broker.events_topic
    metrics = PipelineMetrics(warehouse, stream.metrics_interval_s, stream.metrics_port, stream.metrics_host)
    validator = EventValidator(settings.events)
    config = WindowConfig(
        families=window_specs(stream.window_seconds, stream.sliding_windows),
        partitions=tuple(topic_partition_ids(broker, topic)),
        bound_ms=int(stream.max_out_of_order_s * 1000),
        lateness_ms=int(stream.allowed_lateness_s * 1000),
        idle_timeout_s=stream.idle_partition_timeout_s,
        interval_s=stream.provisional_interval_s,
        snapshot_windows=stream.snapshot_windows,
        key_buckets=stream.key_buckets,
        dedup=stream.dedup,
        future_skew_ms=settings.events.max_future_skew_s * 1000,
    )
    seeder = WarehouseSeedReader(warehouse) if stream.seed_from_warehouse else None
    router = Router(stream.key_buckets)
    raw_options: dict[str, Any] = {
        "min_rows": stream.raw_insert_min_rows,
        "max_delay_s": stream.raw_insert_max_delay_s,
        "max_pending": 1024,  # item lists; the bound that matters is on rows:
        "max_pending_rows": 3 * max(stream.raw_insert_min_rows, stream.batch_size),
    }
    sink_options: dict[str, Any] = {
        "max_backoff_s": stream.sink_max_backoff_s,
        "chunk_rows": stream.insert_batch_rows,
        "on_build": metrics.start,
        "compress": stream.insert_compress,
        "on_insert": lambda table, rows, seconds: metrics.observe(f"insert_ms_{table}", [seconds * 1000]),
        "on_snapshot": lambda table, seconds: metrics.observe(f"snapshot_wait_ms_{table}", [seconds * 1000]),
    }

    def decode(batches: list) -> list[DecodedBatch]:
        sizes = [len(b.offsets) for b in batches]
        metrics.inc("events_in", sum(sizes))
        metrics.observe("batch_size", sizes)
        return [decode_batches(validator, batches, stream.dead_letter_payload_bytes)]

    def raw_written(items: list[DecodedBatch], rows: int) -> None:
        metrics.inc("events_out", rows)

    def dead_written(items: list[DecodedBatch], rows: int) -> None:
        metrics.inc("dead_letters", rows)

    def aggregates_written(items: list[Emission], rows: int) -> None:
        metrics.inc("window_rows", rows)
        now = time.time_ns() // 1_000_000
        for e in items:
            if e.event_ts.size:
                metrics.observe("freshness_event_ms", now - e.event_ts.astype(np.float64))
            if e.broker_ts.size:
                metrics.observe("freshness_broker_ms", now - e.broker_ts.astype(np.float64))

    warm_up()
    flow = Dataflow("eventpulse_events")
    batches = op.input(
        "kafka",
        flow,
        KafkaBatchSource(
            broker,
            topic,
            batch_size=stream.batch_size,
            tail=stream.tail,
            idle_ms=stream.poll_idle_ms,
            on_lag=lambda p, lag: metrics.gauge("consumer_lag", lag, str(p)),
            offset_reset=stream.offset_reset,
            check_s=stream.position_check_s,
            token_incarnation=stream.token_incarnation,
            incidents=IncidentLog(warehouse),
            on_reset=lambda incident: metrics.inc("offset_resets", 1, str(incident.partition)),
        ),
    )
    decoded = op.flat_map_batch("decode", batches, decode)
    keyed = op.key_on("for_warehouse", decoded, _sink_part)
    op.output(
        "raw_events",
        keyed,
        WarehouseSink(
            warehouse,
            "events",
            lambda d: (d.raw_events, d.token),
            after_write=raw_written,
            **sink_options,
            **raw_options,
        ),
    )
    op.output(
        "dead_letters",
        keyed,
        WarehouseSink(
            warehouse,
            "dead_letters",
            lambda d: (d.dead_letters, d.token),
            after_write=dead_written,
            **sink_options,
            **raw_options,
        ),
    )
    if stream.dead_letters_to_topic:
        payloads = op.flat_map("dead_letter_messages", decoded, lambda d: d.dead_payloads)
        op.output("dead_letter_topic", payloads, TopicSink(broker, broker.dead_letter_topic))
    slices = op.flat_map("route", decoded, router.route)
    # The builder gets only the resume state: the logic names its bucket from it or from the first slice.
    emitted = op.stateful_batch("windows", slices, lambda state: WindowLogic(None, config, metrics, state, seeder))
    emissions = op.key_on("emissions_for_warehouse", op.map("unkey", emitted, _tag_bucket), _sink_part)
    op.output(
        "window_aggregates",
        emissions,
        WarehouseSink(
            warehouse,
            "window_aggregates",
            lambda e: (e.rows, f"{e.bucket}:{e.version}"),
            after_write=aggregates_written,
            **sink_options,
        ),
    )
    op.output(
        "late_events",
        emissions,
        WarehouseSink(warehouse, "late_events", lambda e: (e.late_rows, _late_token(e)), **sink_options),
    )
    return flow


def _sink_part(_item: object) -> str:
    return WarehouseSink.PART


def _tag_bucket(item: tuple[str, Emission]) -> Emission:
    bucket, emission = item
    emission.bucket = bucket
    return emission


def _late_token(e: Emission) -> str:
    """The bucket, the topic incarnations and the positions of the first and last late row (what replays repeat)."""
    rows = e.late_rows
    if isinstance(rows, list) or not len(rows):  # a list only when empty
        return f"{e.bucket}:late::0"
    part, offset = rows.column("topic_partition"), rows.column("topic_offset")
    first, last = (part[0].as_py(), offset[0].as_py()), (part[-1].as_py(), offset[-1].as_py())
    return f"{e.bucket}:late:{e.incarnations}:{first}:{last}:{len(rows)}"


def __getattr__(name: str) -> Dataflow:
    """``flows.dataflow:flow`` for ``python -m bytewax.run``: built from `Settings()` on first use."""
    if name == "flow":
        value = get_flow()
        globals()["flow"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
