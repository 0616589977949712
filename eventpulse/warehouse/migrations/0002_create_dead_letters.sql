-- Every refused event with its reason. `id` is deterministic (topic:partition:offset for the
-- dataflow), so a replay after a crash rewrites the same row instead of adding one.
CREATE TABLE IF NOT EXISTS dead_letters
(
    id              String,
    tenant          LowCardinality(String),
    stage           LowCardinality(String),
    reason          LowCardinality(String),
    field           String,
    detail          String,
    payload         String CODEC(ZSTD(3)),
    topic           LowCardinality(String),
    topic_partition Int32,
    topic_offset    Int64,
    received_at     DateTime64(3, 'UTC'),
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toDate(received_at)
ORDER BY (stage, id)
SETTINGS non_replicated_deduplication_window = 10000;
