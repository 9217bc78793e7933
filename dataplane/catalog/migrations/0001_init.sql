-- SignalDB catalog, version 1: service registry, tenants, file index and
-- the names of the batches stored in each file.
--
-- Portable between SQLite and PostgreSQL: only BIGINT and TEXT columns,
-- booleans as BIGINT 0/1, times as BIGINT unix milliseconds (_ms) or
-- nanoseconds (_ns). The migration runner splits this file on semicolons,
-- so none may appear inside a statement.

CREATE TABLE IF NOT EXISTS signaldb_services (
    id                TEXT   NOT NULL PRIMARY KEY,
    role              TEXT   NOT NULL,
    address           TEXT   NOT NULL,
    -- Comma-separated capability names, with a leading and a trailing comma
    -- (",Storage,QueryExecution,") so that one LIKE pattern finds a name.
    capabilities      TEXT   NOT NULL,
    draining          BIGINT NOT NULL DEFAULT 0,
    started_at_ms     BIGINT NOT NULL,
    last_heartbeat_ms BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS signaldb_services_by_heartbeat
    ON signaldb_services (last_heartbeat_ms);

CREATE TABLE IF NOT EXISTS signaldb_tenants (
    id            TEXT   NOT NULL PRIMARY KEY,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS signaldb_files (
    path          TEXT   NOT NULL PRIMARY KEY,
    tenant        TEXT   NOT NULL,
    signal        TEXT   NOT NULL,
    min_time_ns   BIGINT NOT NULL,
    max_time_ns   BIGINT NOT NULL,
    row_count     BIGINT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    writer_id     TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS signaldb_files_by_time
    ON signaldb_files (tenant, signal, min_time_ns);

-- One row per batch stored in a file: the writer's duplicate check.
CREATE TABLE IF NOT EXISTS signaldb_batches (
    source           TEXT   NOT NULL,
    seq              BIGINT NOT NULL,
    part             BIGINT NOT NULL,
    file_path        TEXT   NOT NULL,
    registered_at_ms BIGINT NOT NULL,
    PRIMARY KEY (source, seq, part)
);

CREATE INDEX IF NOT EXISTS signaldb_batches_by_time
    ON signaldb_batches (registered_at_ms);
