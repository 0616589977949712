-- The stream's rows of `window_aggregates` that a batch recompute replaced. REPLACE PARTITION
-- (orchestration/day_swap.py) removes them from `window_aggregates`; the swap copies them here
-- first (the latest version of each key), so the `stream_matches_batch` check of a later recompute
-- of the same day (a late-data repair, a manual re-run) still compares the stream's rows, not
-- the rows of the earlier recompute. Same structure and key as `window_aggregates`.
CREATE TABLE IF NOT EXISTS replaced_stream_rows AS window_aggregates;
