-- API keys of the ingestion gateway. Only a SHA-256 of each key is stored; the key is shown once.
-- Creating, revoking or changing a key inserts a row with a higher `version`; read with FINAL.
-- Every gateway process reloads this table every second or two, so a revoked key stops working
-- everywhere within seconds.
CREATE TABLE IF NOT EXISTS api_keys
(
    key_id      String,
    tenant      LowCardinality(String),
    key_hash    String,
    scopes      Array(String),
    rate_per_s  Float64 DEFAULT 0,
    burst       UInt64 DEFAULT 0,
    description String DEFAULT '',
    created_at  DateTime64(3, 'UTC'),
    revoked     UInt8 DEFAULT 0,
    revoked_at  Nullable(DateTime64(3, 'UTC')),
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY key_id;
