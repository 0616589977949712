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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from eventpulse.aggregation.spec import window_specs
from eventpulse.events import EventValidator
from eventpulse.incidents import IncidentLog
from eventpulse.schemas.registry import SchemaRegistry
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client
from flows.decode import DecodedBatch, decode_batches, warm_up
from flows.metrics import PipelineMetrics
from flows.no_pandas import keep_pandas_out
from flows.placement import ProcessPlace, this_process
from flows.seeding import WarehouseSeedReader
from flows.sinks import TopicSink, WarehouseSink
from flows.source import KafkaBatchSource, topic_partition_ids
from flows.windowing import (
    Emission,
    Router,
    WindowConfig,
    WindowLogic,
)

__all__ = ["FlowSinks", "build_metrics", "flow_place", "get_flow", "kafka_source", "warehouse_sinks"]


@dataclass(frozen=True, slots=True)
class FlowSinks:
    """Where the flow's outputs go.

    ``raw_events`` and ``dead_letters`` get ``(part, DecodedBatch)`` items, ``window_aggregates`` and
    ``late_events`` get ``(part, Emission)`` items (``part`` names this process's sink partition,
    `flows.placement`, or is `WarehouseSink.PART`), and
    ``dead_letter_topic`` (None: no such step) gets the ``(key, value)`` dead-letter messages.
    Production uses `warehouse_sinks`; tests pass Bytewax's ``TestingSink``.
    """

    raw_events: Sink
    dead_letters: Sink
    window_aggregates: Sink
    late_events: Sink
    dead_letter_topic: Sink | None = None


def build_metrics(settings: Settings) -> PipelineMetrics:
    """The flow's metrics, written to the warehouse and served on the metrics port of ``settings``."""
    stream = settings.stream
    return PipelineMetrics(settings.warehouse, stream.metrics_interval_s, stream.metrics_port, stream.metrics_host)


def kafka_source(settings: Settings, metrics: PipelineMetrics) -> KafkaBatchSource:
    """The production source: micro-batches of every partition of the events topic."""
    broker, stream = settings.broker, settings.stream
    return KafkaBatchSource(
        broker,
        broker.events_topic,
        batch_size=stream.batch_size,
        tail=stream.tail,
        idle_ms=stream.poll_idle_ms,
        on_lag=lambda p, lag: metrics.gauge("consumer_lag", lag, str(p)),
        offset_reset=stream.offset_reset,
        check_s=stream.position_check_s,
        token_incarnation=stream.token_incarnation,
        incidents=IncidentLog(settings.warehouse),
        on_reset=lambda incident: metrics.inc("offset_resets", 1, str(incident.partition)),
    )


def flow_place(settings: Settings) -> ProcessPlace | None:
    """This process's place for per-process sink partitions (None: ``sink_parts="single"``)."""
    stream = settings.stream
    return this_process(stream.max_flow_processes) if stream.sink_parts == "process" else None


def warehouse_sinks(settings: Settings, metrics: PipelineMetrics, place: ProcessPlace | None = None) -> FlowSinks:
    """The production sinks: the warehouse tables, and the dead-letter topic when it is enabled.

    ``place``: one sink partition per process (`flows.placement`); None: the single partition."""
    broker, warehouse, stream = settings.broker, settings.warehouse, settings.stream
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
        "place": place,
    }

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

    return FlowSinks(
        raw_events=WarehouseSink(
            warehouse,
            "events",
            lambda d: (d.raw_events, d.token),
            after_write=raw_written,
            **sink_options,
            **raw_options,
        ),
        dead_letters=WarehouseSink(
            warehouse,
            "dead_letters",
            lambda d: (d.dead_letters, d.token),
            after_write=dead_written,
            **sink_options,
            **raw_options,
        ),
        window_aggregates=WarehouseSink(
            warehouse,
            "window_aggregates",
            lambda e: (e.rows, f"{e.bucket}:{e.version}"),
            after_write=aggregates_written,
            **sink_options,
        ),
        late_events=WarehouseSink(warehouse, "late_events", lambda e: (e.late_rows, _late_token(e)), **sink_options),
        dead_letter_topic=TopicSink(broker, broker.dead_letter_topic) if stream.dead_letters_to_topic else None,
    )


def schema_registry(settings: Settings) -> SchemaRegistry:
    """The registry as the warehouse holds it, re-read every ``EVENTPULSE_SCHEMAS_REFRESH_S``."""
    return SchemaRegistry(lambda: create_client(settings.warehouse, role="writer"), settings.schemas.refresh_s)


def get_flow(
    settings: Settings | None = None,
    *,
    source: Source | None = None,
    sinks: FlowSinks | None = None,
    partitions: Sequence[int] | None = None,
    metrics: PipelineMetrics | None = None,
    place: ProcessPlace | None = None,
    schemas: SchemaRegistry | None = None,
) -> Dataflow:
    """Build the events dataflow for ``settings`` (default: `Settings()` from the environment).

    Every part the production flow takes from the broker and the warehouse can be passed in (tests
    use Bytewax's ``TestingSource``/``TestingSink``): ``source`` yields `SourceBatch` items (default
    `kafka_source`), ``sinks`` takes the outputs (default `warehouse_sinks`), ``partitions`` are the
    topic partitions the watermark waits for (default: asked of the broker), ``metrics`` counts
    (default `build_metrics`), ``place`` is this process's place, which names the sink partition the
    rows are keyed by (default `flow_place`; it must match the ``sinks``' own). Window seeding still
    follows ``stream.seed_from_warehouse``. ``schemas`` is the registry events are checked against
    (default: read from the warehouse every ``EVENTPULSE_SCHEMAS_REFRESH_S`` when the sinks are the
    warehouse's and ``EVENTPULSE_SCHEMAS_VALIDATE_EVENTS`` holds; none with other sinks).
    """
    settings = settings or Settings()
    if schemas is None and sinks is None and settings.schemas.validate_events:
        schemas = schema_registry(settings)
    stream = settings.stream
    metrics = metrics or build_metrics(settings)
    source = source or kafka_source(settings, metrics)
    if place is None and sinks is None:
        place = flow_place(settings)
    sinks = sinks or warehouse_sinks(settings, metrics, place)
    part = WarehouseSink.PART if place is None else place.part

    def sink_part(_item: object) -> str:
        return part

    if partitions is None:
        partitions = topic_partition_ids(settings.broker, settings.broker.events_topic)
    validator = EventValidator(settings.events, schemas)
    config = WindowConfig(
        families=window_specs(stream.window_seconds, stream.sliding_windows),
        partitions=tuple(partitions),
        bound_ms=int(stream.max_out_of_order_s * 1000),
        lateness_ms=int(stream.allowed_lateness_s * 1000),
        idle_timeout_s=stream.idle_partition_timeout_s,
        interval_s=stream.provisional_interval_s,
        snapshot_windows=stream.snapshot_windows,
        key_buckets=stream.key_buckets,
        dedup=stream.dedup,
        future_skew_ms=settings.events.max_future_skew_s * 1000,
    )
    seeder = WarehouseSeedReader(settings.warehouse) if stream.seed_from_warehouse else None
    router = Router(stream.key_buckets)

    def decode(batches: list) -> list[DecodedBatch]:
        sizes = [len(b.offsets) for b in batches]
        metrics.inc("events_in", sum(sizes))
        metrics.observe("batch_size", sizes)
        checker = validator
        if schemas is not None:
            schemas.refresh_if_due()  # between batches; the batch is checked against one snapshot
            checker = validator.with_schemas(schemas.pinned())
        return [decode_batches(checker, batches, stream.dead_letter_payload_bytes)]

    warm_up()
    flow = Dataflow("eventpulse_events")
    batches = op.input("kafka", flow, source)
    decoded = op.flat_map_batch("decode", batches, decode)
    keyed = op.key_on("for_warehouse", decoded, sink_part)
    op.output("raw_events", keyed, sinks.raw_events)
    op.output("dead_letters", keyed, sinks.dead_letters)
    if sinks.dead_letter_topic is not None:
        payloads = op.flat_map("dead_letter_messages", decoded, lambda d: d.dead_payloads)
        op.output("dead_letter_topic", payloads, sinks.dead_letter_topic)
    slices = op.flat_map("route", decoded, router.route)
    # The builder gets only the resume state: the logic names its bucket from it or from the first slice.
    emitted = op.stateful_batch("windows", slices, lambda state: WindowLogic(None, config, metrics, state, seeder))
    emissions = op.key_on("emissions_for_warehouse", op.map("unkey", emitted, _tag_bucket), sink_part)
    op.output("window_aggregates", emissions, sinks.window_aggregates)
    op.output("late_events", emissions, sinks.late_events)
    return flow


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
        keep_pandas_out()  # the flow's own process: start-up without pandas (flows.no_pandas)
        value = get_flow()
        globals()["flow"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
