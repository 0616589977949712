-- SQL functions over the mergeable latency sketch of migration 0100 (eventpulse/aggregation/sketch.py):
--   sketch_quantile((buckets, counts), q): the q quantile of the values counted by a sketch, NULL when it
--   is empty. The sketch is a pair of arrays with ascending buckets, as stored in latency_sketch_buckets /
--   latency_sketch_counts and as sumMap(latency_sketch_buckets, latency_sketch_counts) merges them, e.g.
--     SELECT type, sketch_quantile(sumMap(latency_sketch_buckets, latency_sketch_counts), 0.99) AS p99
--     FROM metrics_1m WHERE type != '*' AND source = '*' AND window_start >= now() - INTERVAL 1 HOUR GROUP BY type
--   Rank rule: the value of 0-based rank min(floor(q * n), n - 1) (ClickHouse's quantileExact), answered
--   within 1 % of it (DDSketch, gamma = (1 + 0.01) / (1 - 0.01) = 1.02020202020202).
--   sketch_bucket_value(bucket): a bucket's representative value, 2 * gamma^bucket / (gamma + 1); 0 for
--   the zero bucket (-2147483647). ln(gamma) = 0.020000666706669435; tests check both constants against
--   the stream's sketch.
-- SQL functions are server-wide (not per database): CREATE OR REPLACE keeps every database on one definition.
CREATE OR REPLACE FUNCTION sketch_bucket_value AS (bucket) ->
    if(bucket = -2147483647, 0., 2 * exp(bucket * 0.020000666706669435) / (1.02020202020202 + 1));
CREATE OR REPLACE FUNCTION sketch_quantile AS (sketch, q) ->
    if(arraySum(tupleElement(sketch, 2)) = 0, NULL,
       sketch_bucket_value(arrayElement(tupleElement(sketch, 1), arrayFirstIndex(
           c -> c > least(toUInt64(floor(q * arraySum(tupleElement(sketch, 2)))), arraySum(tupleElement(sketch, 2)) - 1),
           arrayCumSum(tupleElement(sketch, 2))))));
