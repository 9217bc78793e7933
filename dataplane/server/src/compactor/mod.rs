//! The compactor: merges a tenant's small span files of one time window
//! into large files sorted by trace id, dropping duplicate spans (replicas,
//! replays), and swaps them in the catalog in one transaction.
//!
//! A job holds a lease in the catalog on its window (`compact/<tenant>/
//! <signal>/<window>`), so compactors share the work; the swap itself only
//! succeeds while every input is still registered, so even two compactors
//! that merged the same files (a lease that expired mid-job) never register
//! the same spans twice. The replaced files' objects are scheduled for
//! deletion `compactor.delete_delay` later, in the same transaction, so
//! queries planned on them still finish. A compactor killed at any point
//! leaves either the old files or the new ones registered: an output
//! uploaded but not registered is an orphan that orphan collection deletes.

mod merge;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::{ObjectStore, ObjectStoreExt};
use signaldb_catalog::{Catalog, FileRecord};
use signaldb_config::{CompactorConfig, Signal, TenantId};
use tokio::sync::watch;
use tracing::{info, warn};

pub use merge::MergeError;

use crate::metrics::Metrics;

/// How long after its end a window is settled: it is then compacted even
/// when it holds fewer than `compactor.min_files` small files.
pub const SETTLED_AFTER: Duration = Duration::from_secs(10 * 60);

/// What one round of compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Jobs whose files were swapped in the catalog.
    pub jobs: u64,
    /// Jobs left to others: a lease held elsewhere, or inputs that changed.
    pub skipped: u64,
    pub files_in: u64,
    pub files_out: u64,
    pub rows_in: u64,
    pub rows_out: u64,
    pub duplicates: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Objects of replaced or expired files deleted because they were due.
    pub deleted: u64,
}

impl Report {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Report) {
        self.jobs += other.jobs;
        self.skipped += other.skipped;
        self.files_in += other.files_in;
        self.files_out += other.files_out;
        self.rows_in += other.rows_in;
        self.rows_out += other.rows_out;
        self.duplicates += other.duplicates;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.deleted += other.deleted;
    }
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("catalog: {0}")]
    Catalog(#[from] signaldb_catalog::Error),
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error("compaction task failed: {0}")]
    Join(String),
}

/// Files to merge: small files of one tenant, signal and window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub tenant: TenantId,
    /// Start of the window, unix nanoseconds.
    pub window_start_ns: i64,
    pub files: Vec<FileRecord>,
}

impl Job {
    fn lease(&self) -> String {
        format!("compact/{}/{}/{}", self.tenant, Signal::Traces, self.window_start_ns)
    }
}

/// The jobs for one tenant's span `files` at `now_ns`: per window (by each
/// file's earliest span), the files under half the target size, oldest
/// first, up to `max_files` and about twice the target size in all; a
/// window qualifies with `min_files` such files, or with two once it has
/// been over for [`SETTLED_AFTER`].
pub fn plan(tenant: &TenantId, files: &[FileRecord], config: &CompactorConfig, now_ns: i64) -> Vec<Job> {
    let window = i64::try_from(config.window.as_nanos()).unwrap_or(i64::MAX).max(1);
    let settled = i64::try_from(SETTLED_AFTER.as_nanos()).unwrap_or(i64::MAX);
    let small = i64::try_from(config.target_file_size.as_u64() / 2).unwrap_or(i64::MAX);
    let budget = i64::try_from(config.target_file_size.as_u64().saturating_mul(2)).unwrap_or(i64::MAX);
    let mut windows: BTreeMap<i64, Vec<&FileRecord>> = BTreeMap::new();
    for f in files.iter().filter(|f| f.size_bytes < small) {
        windows.entry(f.min_time_ns.div_euclid(window)).or_default().push(f);
    }
    let mut jobs = Vec::new();
    for (w, mut candidates) in windows {
        let start = w.saturating_mul(window);
        let over = start.saturating_add(window).saturating_add(settled) < now_ns;
        let needed = if over { 2 } else { config.min_files.max(2) };
        if candidates.len() < needed {
            continue;
        }
        candidates.sort_by(|a, b| a.created_at_ms.cmp(&b.created_at_ms).then_with(|| a.path.cmp(&b.path)));
        let mut take = Vec::new();
        let mut bytes = 0i64;
        for f in candidates {
            if take.len() >= config.max_files || (take.len() >= 2 && bytes.saturating_add(f.size_bytes) > budget) {
                break;
            }
            bytes = bytes.saturating_add(f.size_bytes);
            take.push(f.clone());
        }
        if take.len() >= 2 {
            jobs.push(Job {
                tenant: tenant.clone(),
                window_start_ns: start,
                files: take,
            });
        }
    }
    jobs
}

/// A compactor: see the module docs.
#[derive(Clone)]
pub struct Compactor {
    id: String,
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
    local_root: Option<std::path::PathBuf>,
    config: CompactorConfig,
    metrics: Metrics,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Compactor {
    /// A compactor named `id` (the holder of its leases; unique per process).
    pub fn new(
        id: String,
        store: Arc<dyn ObjectStore>,
        catalog: Arc<dyn Catalog>,
        local_root: Option<std::path::PathBuf>,
        config: CompactorConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            id,
            store,
            catalog,
            local_root,
            config,
            metrics,
        }
    }

    /// One round at `now`: every tenant's jobs whose lease this compactor
    /// gets, then the deletes that are due. A job that fails is logged and
    /// left for a later round; the round goes on with the others.
    pub async fn compact_once(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Report, CompactError> {
        let mut report = Report::default();
        let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        for tenant in self.catalog.list_tenants().await? {
            let files = self.catalog.list_files(&tenant, Signal::Traces, None).await?;
            for job in plan(&tenant, &files, &self.config, now_ns) {
                match self.run_job(&job, now).await {
                    Ok(Some(done)) => report.add(&done),
                    Ok(None) => report.skipped += 1,
                    Err(e) => {
                        report.skipped += 1;
                        warn!(tenant = %job.tenant, window = job.window_start_ns, error = %e,
                              "compaction job failed; retried in a later round");
                    }
                }
            }
        }
        report.deleted = crate::retention::delete_due(&self.store, &self.catalog, now).await?;
        self.metrics.compactor_objects_deleted.inc_by(report.deleted);
        Ok(report)
    }

    /// Runs `job` under its lease; None when another compactor holds the
    /// lease or the job's files changed meanwhile.
    async fn run_job(&self, job: &Job, now: chrono::DateTime<chrono::Utc>) -> Result<Option<Report>, CompactError> {
        let lease = job.lease();
        let ttl_ms = i64::try_from(self.config.lease_ttl.as_millis()).unwrap_or(i64::MAX);
        if !self
            .catalog
            .try_lease(&lease, &self.id, now.timestamp_millis(), ttl_ms)
            .await?
        {
            return Ok(None);
        }
        let result = self.run_leased(job, &lease, now).await;
        if let Err(e) = self.catalog.release_lease(&lease, &self.id).await {
            warn!(lease, error = %e, "releasing a compaction lease failed; it expires by itself");
        }
        result
    }

    async fn run_leased(
        &self,
        job: &Job,
        lease: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Report>, CompactError> {
        // Under the lease, the files as they are now: another compactor may
        // have merged some between our listing and our lease.
        let registered: std::collections::HashSet<String> = self
            .catalog
            .list_files(&job.tenant, Signal::Traces, None)
            .await?
            .into_iter()
            .map(|f| f.path)
            .collect();
        if !job.files.iter().all(|f| registered.contains(&f.path)) {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let rows_in: i64 = job.files.iter().map(|f| f.rows).sum();
        let bytes_in: i64 = job.files.iter().map(|f| f.size_bytes).sum();
        let target = self.config.target_file_size.as_u64();
        // Rows per output from the inputs' bytes per row.
        let rows_per_file = if bytes_in > 0 {
            usize::try_from((target as u128 * rows_in.max(1) as u128 / bytes_in as u128).max(1)).unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        let tenant = job.tenant.clone();
        let min_time_ns = job.files.iter().map(|f| f.min_time_ns).min().unwrap_or(0);
        let target = merge::Target {
            store: Arc::clone(&self.store),
            local_root: self.local_root.clone(),
            rows_per_file,
            next_path: Box::new(move || {
                let name = format!("compacted-{}", uuid::Uuid::new_v4());
                crate::storage::file_path(&tenant, Signal::Traces, min_time_ns, &name)
            }),
        };
        let inputs = job.files.clone();
        let rt = tokio::runtime::Handle::current();
        // At a lower priority: queries and ingest come first.
        let merging = crate::background::run("compactor-merge", move || merge::merge(&rt, &inputs, target));
        // Keep the lease while the merge runs.
        let renew_every = self.config.lease_ttl / 3;
        let ttl_ms = i64::try_from(self.config.lease_ttl.as_millis()).unwrap_or(i64::MAX);
        tokio::pin!(merging);
        let merged = loop {
            tokio::select! {
                done = &mut merging => break done.map_err(CompactError::Join)??,
                () = tokio::time::sleep(renew_every) => {
                    let at = crate::now_ms().max(now.timestamp_millis());
                    match self.catalog.try_lease(lease, &self.id, at, ttl_ms).await {
                        Ok(true) => {}
                        // The swap still refuses inputs someone else replaced.
                        Ok(false) => warn!(lease, "compaction lease taken over; the swap decides"),
                        Err(e) => warn!(lease, error = %e, "renewing a compaction lease failed"),
                    }
                }
            }
        };
        let created_at_ms = crate::now_ms().max(now.timestamp_millis());
        let added: Vec<FileRecord> = merged
            .outputs
            .iter()
            .map(|o| FileRecord {
                path: o.path.to_string(),
                tenant: job.tenant.clone(),
                signal: Signal::Traces,
                min_time_ns: o.summary.min_time_ns,
                max_time_ns: o.summary.max_time_ns,
                rows: i64::try_from(o.summary.rows).unwrap_or(i64::MAX),
                size_bytes: i64::try_from(o.size).unwrap_or(i64::MAX),
                trace_ids: o.summary.trace_ids,
                writer_id: self.id.clone(),
                created_at_ms,
            })
            .collect();
        let removed: Vec<String> = job.files.iter().map(|f| f.path.clone()).collect();
        let delete_after_ms = now
            .timestamp_millis()
            .saturating_add(i64::try_from(self.config.delete_delay.as_millis()).unwrap_or(i64::MAX));
        match self
            .catalog
            .replace_files(&job.tenant, Signal::Traces, &removed, &added, delete_after_ms)
            .await
        {
            Ok(()) => {}
            Err(signaldb_catalog::Error::Conflict { what }) => {
                info!(tenant = %job.tenant, window = job.window_start_ns, what,
                      "compaction inputs changed meanwhile; the merged files are dropped");
                for f in added {
                    let _ = self
                        .store
                        .delete(&object_store::path::Path::from(f.path.as_str()))
                        .await;
                }
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        let report = Report {
            jobs: 1,
            skipped: 0,
            files_in: job.files.len() as u64,
            files_out: added.len() as u64,
            rows_in: merged.rows_in,
            rows_out: added.iter().map(|f| f.rows as u64).sum(),
            duplicates: merged.duplicates,
            bytes_in: bytes_in as u64,
            bytes_out: added.iter().map(|f| f.size_bytes as u64).sum(),
            deleted: 0,
        };
        let m = &self.metrics;
        m.compactor_jobs.inc();
        m.compactor_files_in.inc_by(report.files_in);
        m.compactor_files_out.inc_by(report.files_out);
        m.compactor_rows_out.inc_by(report.rows_out);
        m.compactor_duplicates.inc_by(report.duplicates);
        info!(
            tenant = %job.tenant,
            window = job.window_start_ns,
            files_in = report.files_in,
            files_out = report.files_out,
            rows = report.rows_out,
            duplicates = report.duplicates,
            bytes_in = report.bytes_in,
            bytes_out = report.bytes_out,
            seconds = started.elapsed().as_secs_f64(),
            "compacted"
        );
        Ok(Some(report))
    }

    /// Compacts every `compactor.interval` until `stop` fires.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            // Stopping mid-job is safe: see the module docs.
            let round = tokio::select! {
                _ = stop.changed() => return,
                round = self.compact_once(chrono::Utc::now()) => round,
            };
            match round {
                Ok(r) if r.jobs > 0 || r.deleted > 0 => info!(
                    jobs = r.jobs,
                    files_in = r.files_in,
                    files_out = r.files_out,
                    deleted = r.deleted,
                    "compaction round"
                ),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "compaction round failed; retried later"),
            }
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn file(name: &str, min_time_ns: i64, size_bytes: i64, created_at_ms: i64) -> FileRecord {
        FileRecord {
            path: name.into(),
            tenant: TenantId::new("t").unwrap(),
            signal: Signal::Traces,
            min_time_ns,
            max_time_ns: min_time_ns + 1,
            rows: 10,
            size_bytes,
            trace_ids: None,
            writer_id: "w".into(),
            created_at_ms,
        }
    }

    const HOUR: i64 = 3_600_000_000_000;

    #[test]
    fn plans_small_files_per_window_oldest_first() {
        let t = TenantId::new("t").unwrap();
        let config = CompactorConfig {
            target_file_size: signaldb_config::ByteSize::mib(100),
            min_files: 3,
            max_files: 4,
            ..CompactorConfig::default()
        };
        let mib = 1024 * 1024;
        let files = vec![
            // Window 0: three small files and one large one.
            file("a", 10, 5 * mib, 3),
            file("b", 20, 5 * mib, 1),
            file("c", HOUR - 1, 5 * mib, 2),
            file("big", 30, 60 * mib, 0),
            // Window 1: two small files, not settled yet at `now` below.
            file("d", HOUR, mib, 4),
            file("e", HOUR + 5, mib, 5),
            // Window 2: six small files, more than max_files.
            file("f1", 2 * HOUR, mib, 10),
            file("f2", 2 * HOUR, mib, 11),
            file("f3", 2 * HOUR, mib, 12),
            file("f4", 2 * HOUR, mib, 13),
            file("f5", 2 * HOUR, mib, 14),
        ];
        let now = 2 * HOUR + 60_000_000_000;
        let jobs = plan(&t, &files, &config, now);
        let names: Vec<Vec<&str>> = jobs
            .iter()
            .map(|j| j.files.iter().map(|f| f.path.as_str()).collect())
            .collect();
        assert_eq!(names, vec![vec!["b", "c", "a"], vec!["f1", "f2", "f3", "f4"]]);
        assert_eq!(jobs[1].window_start_ns, 2 * HOUR);
        assert_ne!(jobs[0].lease(), jobs[1].lease());

        // Once window 1 has been over for a while, two files are enough.
        let later = 2 * HOUR + i64::try_from(SETTLED_AFTER.as_nanos()).unwrap() + 1;
        let jobs = plan(&t, &files, &config, later);
        assert!(jobs.iter().any(|j| j.window_start_ns == HOUR && j.files.len() == 2));

        // A budget of about twice the target: 30 MiB files, 100 MiB target.
        let heavy: Vec<FileRecord> = (0..10).map(|i| file(&format!("h{i}"), 0, 30 * mib, i)).collect();
        let jobs = plan(&t, &heavy, &config, now);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].files.len(), 4, "max_files caps before the byte budget here");
        let config = CompactorConfig {
            max_files: 32,
            ..config
        };
        let jobs = plan(&t, &heavy, &config, now);
        assert_eq!(jobs[0].files.len(), 6, "180 MiB, the seventh would pass 200 MiB");
    }
}
