-- Raw events, one row per accepted event; deduplicated by (tenant, timestamp, id).
-- Exact counts: SELECT count() FROM events FINAL (or uniqExact(id)).
CREATE TABLE IF NOT EXISTS events
(
    tenant          LowCardinality(String),
    id              String,
    timestamp       DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    type            LowCardinality(String),
    source          LowCardinality(String),
    user_id         String CODEC(ZSTD(1)),
    latency_ms      Nullable(Float64) CODEC(ZSTD(1)),
    is_error        UInt8,
    data            String CODEC(ZSTD(3)),
    extra           String CODEC(ZSTD(3)),
    schema_version  UInt16,
    received_at     DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    topic_partition UInt32,
    topic_offset    UInt64,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toDate(timestamp)
ORDER BY (tenant, timestamp, id)
TTL toDateTime(timestamp) + INTERVAL ${raw_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;
