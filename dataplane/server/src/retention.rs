//! Retention: each tenant's spans are kept for `limits.*.retention` (14
//! days by default, Tempo's `block_retention`). Files whose spans all ended
//! longer ago leave the catalog in one transaction per tenant (queries
//! planned from then on no longer see them); their objects are deleted
//! [`DELETE_DELAY`] later, once queries that planned on them are over. A
//! process that stops in between leaves objects no catalog row names, which
//! orphan collection deletes.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use signaldb_catalog::{Catalog, FileRecord};
use signaldb_config::{LimitsConfig, Signal};
use tokio::sync::watch;
use tracing::{info, warn};

/// How often expired files are looked for.
pub const EVERY: Duration = Duration::from_secs(5 * 60);

/// How long an expired file's object outlives its catalog row: longer than
/// any query may run (`querier.query_timeout`, 1 min by default).
pub const DELETE_DELAY: Duration = Duration::from_secs(5 * 60);

/// Removes from the catalog the files of every tenant that ended before
/// its retention (counted back from `now`), and returns them.
pub async fn expire(
    catalog: &Arc<dyn Catalog>,
    limits: &LimitsConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<FileRecord>, signaldb_catalog::Error> {
    let mut expired = Vec::new();
    for tenant in catalog.list_tenants().await? {
        let retention = limits.of(&tenant).retention;
        if retention.is_zero() {
            continue;
        }
        let Ok(keep) = chrono::Duration::from_std(retention) else {
            continue;
        };
        let Some(before_ns) = (now - keep).timestamp_nanos_opt() else {
            continue;
        };
        expired.extend(catalog.remove_files_before(&tenant, Signal::Traces, before_ns).await?);
    }
    Ok(expired)
}

/// Deletes the objects of `files` (those already gone count as deleted);
/// returns how many were deleted and the first error, if any.
pub async fn delete(store: &Arc<dyn ObjectStore>, files: &[FileRecord]) -> (u64, Option<object_store::Error>) {
    let mut deleted = 0;
    let mut first_error = None;
    for file in files {
        match store.delete(&Path::from(file.path.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    (deleted, first_error)
}

/// Applies retention every [`EVERY`] until `stop` fires, deleting each
/// round's objects [`DELETE_DELAY`] after their files left the catalog.
pub async fn run(
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
    limits: LimitsConfig,
    expired_files: prometheus_client::metrics::counter::Counter,
    mut stop: watch::Receiver<bool>,
) {
    let mut waiting: std::collections::VecDeque<(tokio::time::Instant, Vec<FileRecord>)> =
        std::collections::VecDeque::new();
    loop {
        match expire(&catalog, &limits, chrono::Utc::now()).await {
            Ok(files) if !files.is_empty() => {
                expired_files.inc_by(files.len() as u64);
                info!(
                    files = files.len(),
                    "files past their tenant's retention left the catalog"
                );
                waiting.push_back((tokio::time::Instant::now() + DELETE_DELAY, files));
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "applying retention failed; retried later"),
        }
        while waiting
            .front()
            .is_some_and(|(due, _)| *due <= tokio::time::Instant::now())
        {
            if let Some((_, files)) = waiting.pop_front() {
                let (deleted, error) = delete(&store, &files).await;
                if let Some(e) = error {
                    // Orphan collection deletes what is left.
                    warn!(deleted, error = %e, "deleting expired objects failed; orphan collection retries");
                }
            }
        }
        let next = waiting.front().map_or(EVERY, |(due, _)| {
            due.saturating_duration_since(tokio::time::Instant::now()).min(EVERY)
        });
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(next) => {}
        }
    }
}
