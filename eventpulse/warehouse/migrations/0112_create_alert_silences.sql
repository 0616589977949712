-- Silences: no notification for episodes of `rule` ('' = any rule) whose tenants are all `tenant`
-- ('' = any tenant) between `starts_at` and `ends_at`. Ending one early rewrites it with a later
-- `updated_at` (read with FINAL).
CREATE TABLE IF NOT EXISTS alert_silences
(
    silence_id  String,
    rule        LowCardinality(String),
    tenant      LowCardinality(String),
    starts_at   DateTime64(3, 'UTC'),
    ends_at     DateTime64(3, 'UTC'),
    created_by  String,
    reason      String,
    updated_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY silence_id;
