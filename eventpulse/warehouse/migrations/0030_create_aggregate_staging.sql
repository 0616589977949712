-- Staging tables for atomic day swaps (orchestration/): a batch recompute builds a day here,
-- then `ALTER TABLE <target> REPLACE PARTITION <day> FROM <target>_staging` swaps it in.
-- REPLACE PARTITION needs identical structure, partition key and sorting key, hence `AS`.
-- A later migration that changes window_aggregates must change these tables the same way.
CREATE TABLE IF NOT EXISTS window_aggregates_staging AS window_aggregates;

-- Rollups read by the dashboards: the window_aggregates columns, one row per (tenant, hour or
-- day, type, source) with window_seconds = 3600 or 86400, recomputed from raw events per day.
CREATE TABLE IF NOT EXISTS rollup_hourly AS window_aggregates;
CREATE TABLE IF NOT EXISTS rollup_hourly_staging AS window_aggregates;
CREATE TABLE IF NOT EXISTS rollup_daily AS window_aggregates;
CREATE TABLE IF NOT EXISTS rollup_daily_staging AS window_aggregates;
