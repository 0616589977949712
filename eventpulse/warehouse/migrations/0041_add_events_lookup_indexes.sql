-- Event search (dashboards/) by event id or user id: neither leads the sorting key, so bloom
-- filters let a lookup skip the granules that cannot hold the value.
ALTER TABLE events ADD INDEX IF NOT EXISTS events_id_bloom id TYPE bloom_filter(0.001) GRANULARITY 4;
ALTER TABLE events ADD INDEX IF NOT EXISTS events_user_bloom user_id TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE events MATERIALIZE INDEX events_id_bloom;
ALTER TABLE events MATERIALIZE INDEX events_user_bloom;
