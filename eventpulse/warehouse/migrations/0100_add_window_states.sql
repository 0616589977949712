-- Mergeable states beside the final values (which stay, for every reader of today), so any rollup
-- or regrouping of window rows is answered in SQL within the stated errors (docs/cookbook.md):
--   latency_sketch_buckets / latency_sketch_counts: the DDSketch of data.latency_ms, bucket i holds the
--     values in (gamma^(i-1), gamma^i], gamma = (1 + 0.01) / (1 - 0.01) (1 % relative error); buckets
--     ascending, bucket -2147483647 holds the zeros. Merge with sumMap(buckets, counts), answer with
--     sketch_quantile(sketch, q) (migration 0101).
--   user_hashes: the sorted distinct reinterpretAsUInt64(MD5(user_id)) of the non-empty user ids; merge
--     with groupUniqArrayArray, count with length() (exact but for 64-bit hash collisions).
-- Rows are also written for the grouping sets (tenant, type) and (tenant, source) (the other column is '*').
-- The staging and rollup twins change the same way (REPLACE PARTITION needs identical structure).
ALTER TABLE window_aggregates
    ADD COLUMN IF NOT EXISTS latency_sketch_buckets Array(Int32) AFTER latency_p99,
    ADD COLUMN IF NOT EXISTS latency_sketch_counts Array(UInt64) AFTER latency_sketch_buckets,
    ADD COLUMN IF NOT EXISTS user_hashes Array(UInt64) CODEC(ZSTD(1)) AFTER latency_sketch_counts;
ALTER TABLE window_aggregates_staging
    ADD COLUMN IF NOT EXISTS latency_sketch_buckets Array(Int32) AFTER latency_p99,
    ADD COLUMN IF NOT EXISTS latency_sketch_counts Array(UInt64) AFTER latency_sketch_buckets,
    ADD COLUMN IF NOT EXISTS user_hashes Array(UInt64) CODEC(ZSTD(1)) AFTER latency_sketch_counts;
ALTER TABLE rollup_hourly
    ADD COLUMN IF NOT EXISTS latency_sketch_buckets Array(Int32) AFTER latency_p99,
    ADD COLUMN IF NOT EXISTS latency_sketch_counts Array(UInt64) AFTER latency_sketch_buckets,
    ADD COLUMN IF NOT EXISTS user_hashes Array(UInt64) CODEC(ZSTD(1)) AFTER latency_sketch_counts;
ALTER TABLE rollup_hourly_staging
    ADD COLUMN IF NOT EXISTS latency_sketch_buckets Array(Int32) AFTER latency_p99,
    ADD COLUMN IF NOT EXISTS latency_sketch_counts Array(UInt64) AFTER latency_sketch_buckets,
    ADD COLUMN IF NOT EXISTS user_hashes Array(UInt64) CODEC(ZSTD(1)) AFTER latency_sketch_counts;
ALTER TABLE rollup_daily
    ADD COLUMN IF NOT EXISTS latency_sketch_buckets Array(Int32) AFTER latency_p99,
    ADD COLUMN IF NOT EXISTS latency_sketch_counts Array(UInt64) AFTER latency_sketch_buckets,
    ADD COLUMN IF NOT EXISTS user_hashes Array(UInt64) CODEC(ZSTD(1)) AFTER latency_sketch_counts;
ALTER TABLE rollup_daily_staging
    ADD COLUMN IF NOT EXISTS latency_sketch_buckets Array(Int32) AFTER latency_p99,
    ADD COLUMN IF NOT EXISTS latency_sketch_counts Array(UInt64) AFTER latency_sketch_buckets,
    ADD COLUMN IF NOT EXISTS user_hashes Array(UInt64) CODEC(ZSTD(1)) AFTER latency_sketch_counts;
