"""The Bytewax dataflows (flows/)."""

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class StreamSettings(Section):
    """Windowing, batching, emission, recovery switches and metrics of the dataflow.

    Environment: ``EVENTPULSE_STREAM_<FIELD>``, e.g. ``EVENTPULSE_STREAM_BATCH_SIZE``,
    ``EVENTPULSE_STREAM_TAIL``, ``EVENTPULSE_STREAM_METRICS_PORT``, ``EVENTPULSE_STREAM_DEDUP``,
    ``EVENTPULSE_STREAM_SEED_FROM_WAREHOUSE``. Tuples are JSON in the
    environment: ``EVENTPULSE_STREAM_WINDOW_SECONDS='[10, 60]'``,
    ``EVENTPULSE_STREAM_SLIDING_WINDOWS='[[300, 60]]'``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_STREAM_")

    batch_size: int = Field(20_000, gt=0, description="Most messages the source hands over at once.")
    window_seconds: tuple[int, ...] = Field((10, 60), description="Tumbling window lengths (s).")
    sliding_windows: tuple[tuple[int, int], ...] = Field(
        ((300, 60),), description="Hopping windows as (length, slide) in seconds."
    )
    max_out_of_order_s: float = Field(5.0, ge=0, description="Watermark bound on disorder (s).")
    allowed_lateness_s: float = Field(60.0, ge=0, description="How late an event may still update.")
    provisional_interval_s: float = Field(1.0, gt=0, description="Emission period of open windows.")
    insert_batch_rows: int = Field(200_000, gt=0, description="Rows per warehouse insert at most.")
    raw_insert_min_rows: int = Field(
        50_000,
        ge=0,
        description=(
            "Raw events (and dead letters) gathered before one insert, up to RAW_INSERT_MAX_DELAY_S: fewer, larger "
            "parts for the warehouse to merge (~20-30 % less warehouse CPU per event than one insert per micro-batch). "
            "Window rows are inserted at once."
        ),
    )
    raw_insert_max_delay_s: float = Field(
        0.25,
        gt=0,
        description=(
            "Longest a raw event waits for RAW_INSERT_MIN_ROWS before it is inserted anyway. Also bounds what a "
            "recovery snapshot waits for: a snapshot inserts what is held before the epoch commits."
        ),
    )
    insert_compress: bool = Field(
        False,
        description=(
            "lz4-compress warehouse inserts. Off by default: on one machine compression costs more CPU than "
            "it saves (inserts into the local warehouse server were 2-4x faster uncompressed); turn it on "
            "when the warehouse is across a network."
        ),
    )
    tail: bool = Field(
        True,
        description=(
            "Keep reading new messages for ever. False: stop at the end of every partition after "
            "closing every window and flushing everything (tests, benchmarks, one-off replays)."
        ),
    )
    idle_partition_timeout_s: float = Field(
        10.0,
        gt=0,
        description=(
            "A partition that delivered nothing for this long (system time) stops holding the "
            "watermark back; when every partition is idle the watermark follows the most advanced one."
        ),
    )
    key_buckets: int = Field(
        1,
        ge=1,
        description=(
            "Tenant hash buckets the window state is split into. Buckets spread over Bytewax workers, so with"
            " -w N or several processes set it to the total worker count (or a multiple); every bucket adds"
            " per-batch work, so 1 worker is fastest with 1 bucket."
        ),
    )
    sink_parts: Literal["process", "single"] = Field(
        "process",
        description=(
            "Warehouse-sink partitions: 'process' gives every Bytewax process its own, so each writes the rows"
            " it made (flows/placement.py); 'single' sends every row to one worker (the old layout, for"
            " comparison: rows then cross processes)."
        ),
    )
    max_flow_processes: int = Field(
        64,
        ge=1,
        description=(
            "Most Bytewax processes the flow may ever run with (-i/-a). It fixes the set of sink partitions,"
            " so it must not shrink below a process count a recovery store was written with."
        ),
    )
    poll_idle_ms: int = Field(20, ge=1, description="Pause of a source partition that found nothing to read.")
    dead_letters_to_topic: bool = Field(False, description="Also produce dead letters to the dead-letter topic.")
    dead_letter_payload_bytes: int = Field(16 * 1024, gt=0, description="Payload kept in a dead letter at most.")
    sink_max_backoff_s: float = Field(5.0, gt=0, description="Longest pause between two insert retries.")
    metrics_port: int = Field(0, ge=0, description="Prometheus /metrics port of a flow process (0 = off).")
    metrics_host: str = Field("127.0.0.1", description="Listen address of the Prometheus endpoint.")
    metrics_interval_s: float = Field(5.0, gt=0, description="How often pipeline_metrics rows are written.")
    snapshot_windows: bool = Field(
        True,
        description=(
            "Keep window state in recovery snapshots. Only the exactly-once test's negative control "
            "turns this off (offsets recover, window state does not, so windows lose events)."
        ),
    )
    offset_reset: Literal["earliest", "latest"] = Field(
        "earliest",
        description=(
            "Where a source partition goes when its resumed position is no longer valid: beyond the log end or "
            "before its start (the broker lost data, the topic was recreated or truncated). 'earliest' replays "
            "what the log holds (raw events dedupe by id), 'latest' skips to the end (what the log held is not "
            "processed). Either way the flow records an incident (pipeline_incidents, offset_resets) and goes on."
        ),
    )
    token_incarnation: bool = Field(
        True,
        description=(
            "Put the topic's incarnation (broker topic id, or an id the source generates and keeps in its "
            "recovery state) in every insert deduplication token. Test-only switch: false brings back "
            "topic:partition:first-last tokens, which collide when a topic is recreated (the negative control)."
        ),
    )
    position_check_s: float = Field(
        10.0,
        gt=0,
        description=(
            "How often a running source partition asks the broker for the topic id, to notice a topic "
            "recreated under it (e.g. a broker restarted with memory storage) before it reads a wrong log."
        ),
    )
    dedup: bool = Field(
        True,
        description=(
            "Count each event once in the windows, as the raw table does: drop events whose (tenant, timestamp, id)"
            " a window already holds, for as long as any of its windows is in state (the allowed lateness)."
            " False is the negative control: duplicates on the topic are counted twice."
        ),
    )
    seed_from_warehouse: bool = Field(
        True,
        description=(
            "A flow started without window state (fresh recovery store, second `eventpulse up` on one warehouse)"
            " first reads, for every window it first touches that a previous process can have written, the raw"
            " events already in the warehouse, so it never overwrites a window row with fewer events."
            " False is the negative control."
        ),
    )
