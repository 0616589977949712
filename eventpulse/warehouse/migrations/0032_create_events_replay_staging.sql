-- Raw events loaded back from the Parquet archive so the batch SQL can recompute a day whose
-- raw events are gone from `events`. Same columns and sorting as `events`, no TTL (archived
-- days are old by definition); the replay drops its partitions when done.
CREATE TABLE IF NOT EXISTS events_replay_staging
(
    tenant          LowCardinality(String),
    id              String,
    timestamp       DateTime64(3, 'UTC'),
    type            LowCardinality(String),
    source          LowCardinality(String),
    user_id         String,
    latency_ms      Nullable(Float64),
    is_error        UInt8,
    data            String CODEC(ZSTD(3)),
    extra           String CODEC(ZSTD(3)),
    schema_version  UInt16,
    received_at     DateTime64(3, 'UTC'),
    topic_partition UInt32,
    topic_offset    UInt64,
    ingested_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toDate(timestamp)
ORDER BY (tenant, timestamp, id);
