-- Events that arrived after the allowed lateness of one of their windows: one row per
-- (event, window). The event is still in `events`; the window row is not updated, so a
-- backfill of that day (orchestration/) recomputes it from raw events. Replays rewrite the
-- same key, so ReplacingMergeTree keeps one row.
CREATE TABLE IF NOT EXISTS late_events
(
    tenant          LowCardinality(String),
    id              String,
    timestamp       DateTime64(3, 'UTC'),
    type            LowCardinality(String),
    source          LowCardinality(String),
    user_id         String,
    latency_ms      Nullable(Float64),
    is_error        UInt8,
    window_seconds  UInt32,
    slide_seconds   UInt32,
    window_start    DateTime64(3, 'UTC'),
    window_end      DateTime64(3, 'UTC'),
    watermark       DateTime64(3, 'UTC'),
    lateness_ms     Int64,
    topic_partition UInt32,
    topic_offset    UInt64,
    detected_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(detected_at)
PARTITION BY toDate(timestamp)
ORDER BY (tenant, window_seconds, slide_seconds, window_start, id)
SETTINGS non_replicated_deduplication_window = 10000;
