-- Acknowledgements of alert episodes (CLI `eventpulse alerts ack`, the Alerts page). Kept apart from
-- `alert_episodes`, which only the alert sensor writes, so an acknowledgement never races its rewrite.
CREATE TABLE IF NOT EXISTS alert_acks
(
    episode_id  String,
    tenant      LowCardinality(String),
    acked_at    DateTime64(3, 'UTC'),
    acked_by    String,
    note        String
)
ENGINE = MergeTree
ORDER BY (episode_id, acked_at);
