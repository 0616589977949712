-- Every alert firing (orchestration/ alert and consumer-lag sensors), shown by the dashboards.
-- `dedup_key` identifies one firing (rule, tenant, type, window); delivery updates rewrite the
-- row with a later `updated_at` (read with FINAL). `delivered` = 1 once a webhook accepted it.
CREATE TABLE IF NOT EXISTS alerts
(
    dedup_key      String,
    fired_at       DateTime64(3, 'UTC'),
    rule           LowCardinality(String),
    severity       LowCardinality(String),
    tenant         LowCardinality(String),
    type           LowCardinality(String),
    metric         LowCardinality(String),
    value          Float64,
    threshold      Float64,
    comparison     LowCardinality(String),
    window_seconds UInt32,
    window_start   DateTime64(3, 'UTC'),
    status         LowCardinality(String),
    message        String,
    delivered      UInt8,
    attempts       UInt32,
    last_error     String,
    delivered_at   Nullable(DateTime64(3, 'UTC')),
    updated_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(fired_at)
ORDER BY (tenant, fired_at, dedup_key);
