-- Who did what, when, from where: one row per admin action (API key and user changes, sign-ins,
-- SQL console and query-API queries, Dagster run launches and outcomes, retention runs, alert-rule
-- changes, applied migrations). Written only through `eventpulse.audit` (AuditWriter).
--
-- APPEND-ONLY: no component updates or deletes a row (plain MergeTree, no versions, no FINAL). On a
-- real ClickHouse grant the writing users INSERT and SELECT on this table only, never ALTER
-- (docs/operations/audit-log.md). Rows are kept 730 days (the TTL below), then dropped by whole
-- monthly partitions; a longer or shorter period is a new migration (ALTER TABLE ... MODIFY TTL).
-- `parameters` is a JSON object; `result` is 'success' or 'failure' (then `error` says why).
CREATE TABLE IF NOT EXISTS audit_log
(
    time       DateTime64(6, 'UTC'),
    event_id   String,
    actor      String,
    role       LowCardinality(String),
    tenant     LowCardinality(String),
    action     LowCardinality(String),
    target     String,
    parameters String CODEC(ZSTD(3)),
    result     LowCardinality(String),
    error      String,
    request_id String,
    source     String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, event_id)
TTL toDateTime(time) + INTERVAL 730 DAY
SETTINGS ttl_only_drop_parts = 1;
