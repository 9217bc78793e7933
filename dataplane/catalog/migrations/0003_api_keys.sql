-- SignalDB catalog, version 3: API keys.
--
-- A key is `sdb_<id>_<secret>`. The catalog keeps the id, the tenant it
-- acts as, and the SHA-256 of the secret as 64 lowercase hex digits, never
-- the secret itself. revoked_at_ms is NULL while the key is valid.

CREATE TABLE IF NOT EXISTS signaldb_api_keys (
    id            TEXT   NOT NULL PRIMARY KEY,
    tenant        TEXT   NOT NULL,
    secret_sha256 TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);

CREATE INDEX IF NOT EXISTS signaldb_api_keys_by_tenant
    ON signaldb_api_keys (tenant);
