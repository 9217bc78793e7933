//! Retention: each tenant's spans are kept for `limits.*.retention` (14
//! days by default, Tempo's `block_retention`). Files whose spans all ended
//! longer ago leave the catalog in one transaction per tenant (queries
//! planned from then on no longer see them) and their objects are
//! scheduled for deletion [`DELETE_DELAY`] later, once queries that planned
//! on them are over, in the same transaction: a process that stops in
//! between loses nothing, as any writer or compactor deletes what is due.

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
        let delete_after_ms = (now + chrono::Duration::from_std(DELETE_DELAY).unwrap_or_default()).timestamp_millis();
        expired.extend(
            catalog
                .remove_files_before(&tenant, Signal::Traces, before_ns, delete_after_ms)
                .await?,
        );
    }
    Ok(expired)
}

/// Deletes the objects whose deferred delete is due at `now` (those
/// already gone count as deleted) and forgets them; returns how many were
/// deleted. One that cannot be deleted stays pending and is tried again.
pub async fn delete_due(
    store: &Arc<dyn ObjectStore>,
    catalog: &Arc<dyn Catalog>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, signaldb_catalog::Error> {
    let due = catalog.pending_deletes(Some(now.timestamp_millis())).await?;
    let mut deleted = Vec::with_capacity(due.len());
    for path in due {
        match store.delete(&Path::from(path.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted.push(path),
            Err(e) => warn!(path, error = %e, "deleting a replaced or expired object failed; retried later"),
        }
    }
    catalog.forget_deletes(&deleted).await?;
    Ok(deleted.len() as u64)
}

/// Applies retention every [`EVERY`] until `stop` fires, and deletes the
/// objects whose deferred delete is due.
pub async fn run(
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
    limits: LimitsConfig,
    expired_files: prometheus_client::metrics::counter::Counter,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match expire(&catalog, &limits, chrono::Utc::now()).await {
            Ok(files) if !files.is_empty() => {
                expired_files.inc_by(files.len() as u64);
                info!(
                    files = files.len(),
                    "files past their tenant's retention left the catalog"
                );
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "applying retention failed; retried later"),
        }
        if let Err(e) = delete_due(&store, &catalog, chrono::Utc::now()).await {
            warn!(error = %e, "deleting due objects failed; retried later");
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
