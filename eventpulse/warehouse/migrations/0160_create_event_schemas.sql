-- The schema registry (eventpulse/schemas): JSON Schemas (draft 2020-12) of an event's `data`, per tenant
-- and event type, each registration a new `version` (1, 2, ...), never changed once written. Gateways and
-- the dataflow read the latest version of each (tenant, event_type) every EVENTPULSE_SCHEMAS_REFRESH_S.
-- `fingerprint` is the SHA-256 of the schema's canonical JSON: registering the same schema again
-- returns its version instead of adding one (as Confluent's Schema Registry does).
CREATE TABLE IF NOT EXISTS event_schemas
(
    tenant      LowCardinality(String),
    event_type  String,
    version     UInt32,
    schema      String CODEC(ZSTD(3)),
    fingerprint String,
    created_at  DateTime64(3, 'UTC'),
    created_by  String
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, event_type, version);

-- The compatibility mode of an event type (backward, forward, full, their _transitive forms, none),
-- checked when a new version is registered. A change inserts a row with a higher `version`; read with
-- FINAL. A type without a row has EVENTPULSE_SCHEMAS_DEFAULT_COMPATIBILITY.
CREATE TABLE IF NOT EXISTS event_schema_modes
(
    tenant     LowCardinality(String),
    event_type String,
    mode       LowCardinality(String),
    updated_at DateTime64(3, 'UTC'),
    version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, event_type);
