-- The registered schema version (event_schemas.version) each accepted event's `data` was checked
-- against by the dataflow; 0 when its type had no schema (or checks were off). Not `schema_version`,
-- which is the event format's own version.
ALTER TABLE events ADD COLUMN IF NOT EXISTS data_schema_version UInt32 DEFAULT 0;
