-- One row per (window, tenant, type, source); tenant-wide rows have type = '*' and source = '*'.
-- Tumbling windows have slide_seconds = window_seconds; hopping windows a smaller slide.
-- Re-emitting a window (live update, late event, replay after a crash, batch recompute) writes
-- the same key with a higher version, so the latest emission wins: read with FINAL.
CREATE TABLE IF NOT EXISTS window_aggregates
(
    tenant          LowCardinality(String),
    window_seconds  UInt32,
    slide_seconds   UInt32,
    window_start    DateTime64(3, 'UTC'),
    window_end      DateTime64(3, 'UTC'),
    type            LowCardinality(String),
    source          LowCardinality(String),
    event_count     UInt64,
    error_count     UInt64,
    error_rate      Float64,
    distinct_users  UInt64,
    latency_count   UInt64,
    latency_sum     Float64,
    latency_min     Nullable(Float64),
    latency_max     Nullable(Float64),
    latency_p50     Nullable(Float64),
    latency_p95     Nullable(Float64),
    latency_p99     Nullable(Float64),
    is_final        UInt8,
    origin          LowCardinality(String),
    version         UInt64,
    emitted_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toDate(window_start)
ORDER BY (tenant, window_seconds, slide_seconds, window_start, type, source)
SETTINGS non_replicated_deduplication_window = 10000;
