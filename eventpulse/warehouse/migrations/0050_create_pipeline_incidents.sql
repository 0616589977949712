-- Faults the pipeline detected and how it went on: a source position beyond the log end or
-- before its start (broker lost data, topic recreated or truncated), written by the dataflow
-- (component 'flow') and by the consumer-lag sensor (component 'dagster'). Offsets are -1 when
-- unknown. `incident_id` identifies one incident (a retried write is one row: read with FINAL).
-- The health page lists the recent ones; the consumer-lag sensor raises an alert per incident.
CREATE TABLE IF NOT EXISTS pipeline_incidents
(
    incident_id     String,
    time            DateTime64(3, 'UTC'),
    component       LowCardinality(String),
    process         String,
    kind            LowCardinality(String),
    topic           String,
    partition       Int32,
    expected_offset Int64,
    log_start       Int64,
    log_end         Int64,
    action          String,
    detail          String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, incident_id)
TTL toDateTime(time) + INTERVAL 90 DAY;

-- Each incarnation a source partition read: the broker's topic id when it reports one, else an
-- id the source generated (kept in its recovery state). Insert deduplication tokens carry the
-- incarnation, so a recreated topic (offsets from 0 again) never collides with an older one.
CREATE TABLE IF NOT EXISTS topic_incarnations
(
    topic        String,
    partition    Int32,
    incarnation  String,
    topic_id     String,
    start_offset Int64,
    reason       LowCardinality(String),
    started_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (topic, partition, incarnation);
