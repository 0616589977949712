-- The dataflow's own health, written every few seconds by each flow process: one row per
-- (time, process, metric, label). Gauges and rates as `value`; latency percentiles as
-- metric names ending in _p50/_p95/_p99 (milliseconds).
CREATE TABLE IF NOT EXISTS pipeline_metrics
(
    time            DateTime64(3, 'UTC'),
    process         LowCardinality(String),
    metric          LowCardinality(String),
    label           String,
    value           Float64
)
ENGINE = MergeTree
PARTITION BY toDate(time)
ORDER BY (metric, time, process, label)
TTL toDateTime(time) + INTERVAL 30 DAY;
