-- One row per archived day (latest `recorded_at` wins: read with FINAL). `status` is 'verified'
-- once the Parquet files were read back and matched the warehouse (rows and checksum per
-- tenant); `raw_dropped_at` is set when retention dropped the day's raw events afterwards.
-- `manifest` holds the same JSON as the archive's _manifests/date=YYYY-MM-DD.json.
CREATE TABLE IF NOT EXISTS archive_manifests
(
    day            Date,
    archive_url    String,
    status         LowCardinality(String),
    row_count      UInt64,
    id_checksum    UInt64,
    tenant_count   UInt32,
    file_count     UInt32,
    bytes          UInt64,
    files          Array(String),
    manifest       String CODEC(ZSTD(3)),
    run_id         String,
    archived_at    DateTime64(3, 'UTC'),
    raw_dropped_at Nullable(DateTime64(3, 'UTC')),
    recorded_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY day;
