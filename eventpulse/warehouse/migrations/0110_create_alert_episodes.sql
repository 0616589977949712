-- Alert episodes (orchestration/alerting): one row per rule group from firing to resolved, rewritten
-- by the alert sensor on every change with a later `updated_at` (read with FINAL). A group is a
-- rule (`group_key` = the rule) or a rule and tenant (`rule:tenant`); `series` lists the
-- (tenant[, type/source]) members firing at the last evaluation. `tenant` is the group's tenant,
-- '*' for a rule-wide group (readable by admins only through the tenant-scoped reader).
CREATE TABLE IF NOT EXISTS alert_episodes
(
    episode_id       String,
    rule             LowCardinality(String),
    group_key        String,
    tenant           LowCardinality(String),
    severity         LowCardinality(String),
    status           LowCardinality(String),
    opened_at        DateTime64(3, 'UTC'),
    last_firing_at   DateTime64(3, 'UTC'),
    resolved_at      Nullable(DateTime64(3, 'UTC')),
    series           Array(String),
    tenants          Array(String),
    peak_value       Float64,
    threshold        Float64,
    message          String,
    notifications    UInt32,
    notified_at      Nullable(DateTime64(3, 'UTC')),
    escalated_at     Nullable(DateTime64(3, 'UTC')),
    updated_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(opened_at)
ORDER BY (rule, group_key, episode_id);
