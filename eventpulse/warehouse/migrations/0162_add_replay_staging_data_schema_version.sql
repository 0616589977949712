-- The replay staging table keeps the columns of `events` (0161 added data_schema_version there), so a
-- day loaded back from the archive keeps the schema version its events were checked against.
ALTER TABLE events_replay_staging ADD COLUMN IF NOT EXISTS data_schema_version UInt32 DEFAULT 0;
