-- One view per window family with FINAL built in, so a plain SELECT reads the latest version of each row
-- and only that family (the default families of StreamSettings: 10 s and 60 s tumbling, 300 s sliding by
-- 60 s; the rollups). Columns: the window_aggregates columns but the version bookkeeping (version,
-- emitted_at); is_final = 0 marks an open (provisional) window. Grouping sets: type = '*' AND source = '*'
-- is the tenant-wide row, type != '*' AND source = '*' per type, type = '*' AND source != '*' per source,
-- type != '*' AND source != '*' per (type, source). Percentiles of any merge: sketch_quantile (0101);
-- distinct users of any merge: length(groupUniqArrayArray(user_hashes)). Recipes: docs/cookbook.md.
-- A view's columns are fixed when it is created: a migration that adds columns to window_aggregates
-- recreates these views (CREATE OR REPLACE VIEW) if the columns should show here.
CREATE OR REPLACE VIEW metrics_10s AS
SELECT tenant, window_start, window_end, type, source, window_seconds, slide_seconds, event_count, error_count, error_rate, distinct_users, latency_count, latency_sum, latency_min, latency_max, latency_p50, latency_p95, latency_p99, latency_sketch_buckets, latency_sketch_counts, user_hashes, is_final, origin
FROM window_aggregates FINAL
WHERE window_seconds = 10 AND slide_seconds = 10;
CREATE OR REPLACE VIEW metrics_1m AS
SELECT tenant, window_start, window_end, type, source, window_seconds, slide_seconds, event_count, error_count, error_rate, distinct_users, latency_count, latency_sum, latency_min, latency_max, latency_p50, latency_p95, latency_p99, latency_sketch_buckets, latency_sketch_counts, user_hashes, is_final, origin
FROM window_aggregates FINAL
WHERE window_seconds = 60 AND slide_seconds = 60;
CREATE OR REPLACE VIEW metrics_5m AS
SELECT tenant, window_start, window_end, type, source, window_seconds, slide_seconds, event_count, error_count, error_rate, distinct_users, latency_count, latency_sum, latency_min, latency_max, latency_p50, latency_p95, latency_p99, latency_sketch_buckets, latency_sketch_counts, user_hashes, is_final, origin
FROM window_aggregates FINAL
WHERE window_seconds = 300 AND slide_seconds = 60;
CREATE OR REPLACE VIEW metrics_hourly AS
SELECT tenant, window_start, window_end, type, source, window_seconds, slide_seconds, event_count, error_count, error_rate, distinct_users, latency_count, latency_sum, latency_min, latency_max, latency_p50, latency_p95, latency_p99, latency_sketch_buckets, latency_sketch_counts, user_hashes, is_final, origin
FROM rollup_hourly FINAL
WHERE window_seconds = 3600 AND slide_seconds = 3600;
CREATE OR REPLACE VIEW metrics_daily AS
SELECT tenant, window_start, window_end, type, source, window_seconds, slide_seconds, event_count, error_count, error_rate, distinct_users, latency_count, latency_sum, latency_min, latency_max, latency_p50, latency_p95, latency_p99, latency_sketch_buckets, latency_sketch_counts, user_hashes, is_final, origin
FROM rollup_daily FINAL
WHERE window_seconds = 86400 AND slide_seconds = 86400;
