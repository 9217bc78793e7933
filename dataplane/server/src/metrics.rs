//! Prometheus metrics of every role, served on the admin port at `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `grpc` or `http`.
    pub transport: &'static str,
    /// `ok`, `invalid`, `overloaded`, `unavailable`, `unauthenticated`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecodeLabels {
    /// `acceptance` (the request as it arrived) or `delivery` (a logged
    /// request converted again: replayed, or past
    /// `acceptor.max_converted_pending`).
    pub at: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IpcLabels {
    /// `as_received` (the Arrow IPC a `DoPut` carried) or `encoded` (a
    /// put without it).
    pub logged: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub role: &'static str,
}

/// Every metric of the process. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub spans_accepted: Counter,
    pub attributes_truncated: Counter,
    pub spans_refused_trace_too_large: Counter,
    /// Acknowledged WAL entries that could not be converted and were set
    /// aside; validation before the acknowledgement keeps this at zero.
    pub entries_dropped: Counter,
    /// OTLP requests decoded from protobuf or JSON, by where.
    pub acceptor_decodes: Family<DecodeLabels, Counter>,
    /// Bytes of converted span rows accepted entries hold for delivery.
    pub acceptor_converted_pending_bytes: Gauge,
    pub delivery_attempts_failed: Counter,
    pub deliveries: Counter,
    pub delivery_latency_seconds: Histogram,
    pub wal_corrupt_records: Family<RoleLabels, Counter>,
    pub wal_records_skipped: Family<RoleLabels, Counter>,
    pub wal_truncated_bytes: Family<RoleLabels, Counter>,
    pub wal_empty_segments: Family<RoleLabels, Counter>,
    pub wal_replayed_records: Family<RoleLabels, Counter>,
    pub wal_pending_bytes: Family<RoleLabels, Gauge>,
    pub writer_batches: Counter,
    /// Arrow IPC bytes the writer logged, by how it got them.
    pub writer_wal_ipc_bytes: Family<IpcLabels, Counter>,
    pub writer_duplicate_batches: Counter,
    pub writer_rows: Counter,
    pub writer_buffer_bytes: Gauge,
    pub writer_flushes: Counter,
    pub writer_flush_failures: Counter,
    pub writer_flushed_rows: Counter,
    pub writer_flushed_bytes: Counter,
    pub writer_flush_seconds: Histogram,
    /// Shares of split scans this querier's worker ran for a peer (or for
    /// itself as coordinator).
    pub querier_scan_tasks: Counter,
    /// Parquet objects no catalog row named, deleted by the writer.
    pub writer_orphans_deleted: Counter,
    pub writer_files_expired: Counter,
    /// Compaction jobs finished (files swapped in the catalog).
    pub compactor_jobs: Counter,
    /// Files a compaction replaced, and files it wrote.
    pub compactor_files_in: Counter,
    pub compactor_files_out: Counter,
    pub compactor_rows_out: Counter,
    /// Spans dropped by compaction as copies of a span already kept.
    pub compactor_duplicates: Counter,
    /// Replaced or expired objects deleted once due.
    pub compactor_objects_deleted: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("signaldb");
        let m = Self {
            registry: Arc::new(Registry::default()),
            requests: Family::default(),
            spans_accepted: Counter::default(),
            attributes_truncated: Counter::default(),
            spans_refused_trace_too_large: Counter::default(),
            entries_dropped: Counter::default(),
            acceptor_decodes: Family::default(),
            acceptor_converted_pending_bytes: Gauge::default(),
            delivery_attempts_failed: Counter::default(),
            deliveries: Counter::default(),
            delivery_latency_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            wal_corrupt_records: Family::default(),
            wal_records_skipped: Family::default(),
            wal_truncated_bytes: Family::default(),
            wal_empty_segments: Family::default(),
            wal_replayed_records: Family::default(),
            wal_pending_bytes: Family::default(),
            writer_batches: Counter::default(),
            writer_wal_ipc_bytes: Family::default(),
            writer_duplicate_batches: Counter::default(),
            writer_rows: Counter::default(),
            writer_buffer_bytes: Gauge::default(),
            writer_flushes: Counter::default(),
            writer_flush_failures: Counter::default(),
            querier_scan_tasks: Counter::default(),
            writer_orphans_deleted: Counter::default(),
            writer_files_expired: Counter::default(),
            compactor_jobs: Counter::default(),
            compactor_files_in: Counter::default(),
            compactor_files_out: Counter::default(),
            compactor_rows_out: Counter::default(),
            compactor_duplicates: Counter::default(),
            compactor_objects_deleted: Counter::default(),
            writer_flushed_rows: Counter::default(),
            writer_flushed_bytes: Counter::default(),
            writer_flush_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        };
        r.register(
            "acceptor_requests",
            "OTLP export requests by transport and outcome",
            m.requests.clone(),
        );
        r.register(
            "acceptor_spans_accepted",
            "Spans acknowledged to clients",
            m.spans_accepted.clone(),
        );
        r.register(
            "acceptor_attributes_truncated",
            "Attribute values cut to acceptor.max_attribute_value_size",
            m.attributes_truncated.clone(),
        );
        r.register(
            "acceptor_spans_refused_trace_too_large",
            "Spans refused before the acknowledgement because their trace grew past limits max_bytes_per_trace",
            m.spans_refused_trace_too_large.clone(),
        );
        r.register(
            "acceptor_entries_dropped",
            "Acknowledged WAL entries that could not be converted to Arrow and were dropped (a bug or damage)",
            m.entries_dropped.clone(),
        );
        r.register(
            "acceptor_decodes",
            "OTLP requests decoded, by where: at acceptance (once per request) or at delivery (logged requests converted again)",
            m.acceptor_decodes.clone(),
        );
        r.register(
            "acceptor_converted_pending_bytes",
            "Bytes of span rows converted at acceptance and held until delivered (at most acceptor.max_converted_pending)",
            m.acceptor_converted_pending_bytes.clone(),
        );
        r.register(
            "acceptor_delivery_failures",
            "Failed attempts to hand a batch to a writer (retried)",
            m.delivery_attempts_failed.clone(),
        );
        r.register(
            "acceptor_deliveries",
            "WAL entries fully delivered to writers",
            m.deliveries.clone(),
        );
        r.register(
            "acceptor_delivery_latency_seconds",
            "Time from acknowledgement to durable storage in the writers",
            m.delivery_latency_seconds.clone(),
        );
        r.register(
            "wal_records_skipped",
            "WAL records intact on disk that could not be read as a request or batch (wrong schema, bad tenant, \
             undecodable), skipped at start and logged",
            m.wal_records_skipped.clone(),
        );
        r.register(
            "wal_corrupt_records",
            "WAL records found corrupt (bad checksum or impossible length) when opening",
            m.wal_corrupt_records.clone(),
        );
        r.register(
            "wal_truncated_bytes",
            "Bytes of damaged WAL skipped when opening",
            m.wal_truncated_bytes.clone(),
        );
        r.register(
            "wal_empty_segments",
            "Empty or headerless WAL segments removed when opening",
            m.wal_empty_segments.clone(),
        );
        r.register(
            "wal_replayed_records",
            "WAL records replayed at start",
            m.wal_replayed_records.clone(),
        );
        r.register(
            "wal_pending_bytes",
            "Bytes in the WAL not yet done",
            m.wal_pending_bytes.clone(),
        );
        r.register(
            "writer_batches",
            "Batches stored by the writer",
            m.writer_batches.clone(),
        );
        r.register(
            "writer_wal_ipc_bytes",
            "Arrow IPC bytes the writer logged: as_received (what a DoPut carried) or encoded (again, by the writer)",
            m.writer_wal_ipc_bytes.clone(),
        );
        r.register(
            "writer_duplicate_batches",
            "Batches received again and not stored twice",
            m.writer_duplicate_batches.clone(),
        );
        r.register("writer_rows", "Rows stored by the writer", m.writer_rows.clone());
        r.register(
            "writer_buffer_bytes",
            "Bytes held in the writer's memory buffer",
            m.writer_buffer_bytes.clone(),
        );
        r.register("writer_flushes", "Parquet flushes", m.writer_flushes.clone());
        r.register(
            "writer_flush_failures",
            "Parquet flushes that failed (retried)",
            m.writer_flush_failures.clone(),
        );
        r.register(
            "writer_orphans_deleted",
            "Parquet objects no catalog row named (left by a crash between upload and registration), deleted",
            m.writer_orphans_deleted.clone(),
        );
        r.register(
            "writer_files_expired",
            "Parquet files removed from the catalog (and then from storage) for being past their tenant's retention",
            m.writer_files_expired.clone(),
        );
        r.register("compactor_jobs", "Compaction jobs finished", m.compactor_jobs.clone());
        r.register(
            "compactor_files_in",
            "Files replaced by compaction",
            m.compactor_files_in.clone(),
        );
        r.register(
            "compactor_files_out",
            "Files written by compaction",
            m.compactor_files_out.clone(),
        );
        r.register(
            "compactor_rows_out",
            "Spans written by compaction",
            m.compactor_rows_out.clone(),
        );
        r.register(
            "compactor_duplicates",
            "Spans compaction dropped as copies of a span it kept (replicas, replays)",
            m.compactor_duplicates.clone(),
        );
        r.register(
            "compactor_objects_deleted",
            "Objects of replaced or expired files deleted once no query could still read them",
            m.compactor_objects_deleted.clone(),
        );
        r.register(
            "querier_scan_tasks",
            "Shares of split search scans this querier's worker ran",
            m.querier_scan_tasks.clone(),
        );
        r.register(
            "writer_flushed_rows",
            "Rows written to Parquet",
            m.writer_flushed_rows.clone(),
        );
        r.register(
            "writer_flushed_bytes",
            "Parquet bytes written",
            m.writer_flushed_bytes.clone(),
        );
        r.register(
            "writer_flush_seconds",
            "Duration of a flush",
            m.writer_flush_seconds.clone(),
        );
        Self {
            registry: Arc::new(r),
            ..m
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records what opening a WAL found.
    pub fn record_replay(&self, role: &'static str, stats: &signaldb_wal::ReplayStats) {
        let l = RoleLabels { role };
        self.wal_corrupt_records.get_or_create(&l).inc_by(stats.corrupt_records);
        self.wal_truncated_bytes.get_or_create(&l).inc_by(stats.truncated_bytes);
        self.wal_empty_segments.get_or_create(&l).inc_by(stats.empty_segments);
        self.wal_replayed_records.get_or_create(&l).inc_by(stats.records);
    }

    /// Counts a WAL record skipped at start because it could not be read.
    pub fn record_skipped(&self, role: &'static str) {
        self.wal_records_skipped.get_or_create(&RoleLabels { role }).inc();
    }

    pub fn set_wal_pending(&self, role: &'static str, bytes: u64) {
        self.wal_pending_bytes
            .get_or_create(&RoleLabels { role })
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
