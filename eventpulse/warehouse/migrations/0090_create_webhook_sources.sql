-- Inbound webhook sources (POST /api/webhooks/{source}): the tenant a source belongs to, its signing
-- secret encrypted with EVENTPULSE_WEBHOOKS_SECRETS_KEY (Fernet: an HMAC is checked with the secret
-- itself, so it cannot be stored as a hash like an API key), and its mapping from the third party's
-- JSON to an event (JSON text). A change inserts a row with a higher `version`; read with FINAL.
-- Every gateway process reloads it every second or so. A secret table: only admin writes it, and the
-- reader (dashboards, the query API) never reads it (eventpulse/access/declaration.py).
CREATE TABLE IF NOT EXISTS webhook_sources
(
    source           String,
    tenant           LowCardinality(String),
    secret_encrypted String,
    mapping          String,
    description      String DEFAULT '',
    created_at       DateTime64(3, 'UTC'),
    revoked          UInt8 DEFAULT 0,
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY source;
