-- Every notification the alert sensor sent (or tried): one row per episode, kind (firing, reminder,
-- escalation, resolved) and channel destination.
CREATE TABLE IF NOT EXISTS alert_notifications
(
    episode_id   String,
    rule         LowCardinality(String),
    tenant       LowCardinality(String),
    kind         LowCardinality(String),
    channel      LowCardinality(String),
    destination  String,
    sent_at      DateTime64(3, 'UTC'),
    ok           UInt8,
    attempts     UInt32,
    error        String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(sent_at)
ORDER BY (rule, sent_at, episode_id);
