-- SignalDB catalog, version 2: each file's trace-id range, and a per-tenant
-- version of the file list.
--
-- min_trace_id / max_trace_id: the smallest and largest trace id in the
-- file as 32 lowercase hex digits (so text order is byte order), NULL when
-- unknown (files registered before this version, signals without trace
-- ids). A trace-by-id skips every file whose range excludes the id.
--
-- files_version: bumped in the transaction that registers (and, later,
-- removes) a file of the tenant, so a querier's cached file list is checked
-- with one primary-key lookup instead of listing the files per query.

ALTER TABLE signaldb_files ADD COLUMN min_trace_id TEXT;

ALTER TABLE signaldb_files ADD COLUMN max_trace_id TEXT;

ALTER TABLE signaldb_tenants ADD COLUMN files_version BIGINT NOT NULL DEFAULT 0;
