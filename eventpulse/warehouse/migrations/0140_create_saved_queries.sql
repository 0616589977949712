-- The SQL console's saved queries: each signed-in user's own, by name. Written and read by the dashboards
-- only, with the writer's credentials, for the signed-in user (`dashboards.queries.saved`); no tenant
-- column, so the tenant-scoped read path (the console itself, the query API) refuses the table. Saving a
-- name again or removing it inserts a row with a higher `version` (`removed` = 1): read with FINAL.
CREATE TABLE IF NOT EXISTS saved_queries
(
    username String,
    name     String,
    sql      String CODEC(ZSTD(3)),
    removed  UInt8 DEFAULT 0,
    saved_at DateTime64(3, 'UTC'),
    version  UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (username, name);
