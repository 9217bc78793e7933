-- Compaction and deferred deletion.

-- A lease: one holder at a time may do the work a name stands for (e.g.
-- compacting one tenant's files of one time window) until it expires.
CREATE TABLE IF NOT EXISTS signaldb_leases (
    name          TEXT   NOT NULL PRIMARY KEY,
    holder        TEXT   NOT NULL,
    expires_at_ms BIGINT NOT NULL
);

-- Objects whose files left the catalog (replaced by compaction, or past
-- retention) and that are deleted once queries planned on them are over.
-- Orphan collection leaves them alone.
CREATE TABLE IF NOT EXISTS signaldb_pending_deletes (
    path            TEXT   NOT NULL PRIMARY KEY,
    tenant          TEXT   NOT NULL,
    delete_after_ms BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS signaldb_pending_deletes_by_time
    ON signaldb_pending_deletes (delete_after_ms)
