-- People who sign in to the platform (dashboards, and the admin commands that check a password):
-- a name, a role, the tenant a tenant role belongs to, and an argon2id hash of the password (never
-- the password). Roles: platform_admin, operator (every tenant), tenant_admin, tenant_analyst (one
-- tenant). Written only by `eventpulse users` with the admin credentials (on a real ClickHouse only
-- the admin user has INSERT here); every change is also an `audit_log` row. Adding, changing or
-- removing a user inserts a row with a higher `version` (`removed` = 1 for a removal): read with FINAL.
CREATE TABLE IF NOT EXISTS users
(
    username      String,
    role          LowCardinality(String),
    tenant        LowCardinality(String),
    password_hash String,
    removed       UInt8 DEFAULT 0,
    created_at    DateTime64(3, 'UTC'),
    updated_at    DateTime64(3, 'UTC'),
    version       UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY username;
