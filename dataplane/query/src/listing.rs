//! The tenants' file lists, cached in the querier and refreshed when the
//! catalog says they changed.
//!
//! Listing a tenant's files costs a query returning every file (hundreds of
//! rows at 10M spans) per request; checking whether the list changed costs
//! one primary-key lookup of the tenant's file-list version, which the
//! catalog bumps in the transaction that registers a file. A list taken
//! after reading version `v` holds everything registered up to `v`, so a
//! cached list is never older than the version it is stored under.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use signaldb_catalog::{Catalog, FileRecord};
use signaldb_config::{Signal, TenantId};

use crate::engine::QueryError;

/// Cached file lists by tenant and signal; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileLists {
    lists: Arc<Mutex<HashMap<(TenantId, Signal), Listed>>>,
}

#[derive(Debug, Clone)]
struct Listed {
    version: i64,
    files: Arc<Vec<FileRecord>>,
}

impl FileLists {
    /// `tenant`'s files of `signal` overlapping `range` (all when `None`),
    /// ordered by `min_time_ns`, then path, as the catalog lists them.
    pub(crate) async fn files(
        &self,
        catalog: &dyn Catalog,
        tenant: &TenantId,
        signal: Signal,
        range: Option<(i64, i64)>,
    ) -> Result<Vec<FileRecord>, QueryError> {
        let version = catalog.files_version(tenant).await?;
        let key = (tenant.clone(), signal);
        let cached = self.lock().get(&key).filter(|l| l.version >= version).cloned();
        let files = match cached {
            Some(listed) => listed.files,
            None => {
                let files = Arc::new(catalog.list_files(tenant, signal, None).await?);
                let mut lists = self.lock();
                // Keep the newest listing when queries race to refresh it.
                if lists.get(&key).is_none_or(|l| l.version < version) {
                    lists.insert(
                        key,
                        Listed {
                            version,
                            files: Arc::clone(&files),
                        },
                    );
                }
                files
            }
        };
        Ok(match range {
            None => files.as_ref().clone(),
            Some((min, max)) => files
                .iter()
                .filter(|f| f.max_time_ns >= min && f.min_time_ns <= max)
                .cloned()
                .collect(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TenantId, Signal), Listed>> {
        // A panic while holding the lock leaves a valid map behind.
        self.lists.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `files` by their latest span, newest first (then by path, so the order
/// is the same every time): the order searches and index warming read them.
pub(crate) fn newest_first(files: &[FileRecord]) -> Vec<&FileRecord> {
    let mut files: Vec<&FileRecord> = files.iter().collect();
    files.sort_by(|a, b| b.max_time_ns.cmp(&a.max_time_ns).then_with(|| a.path.cmp(&b.path)));
    files
}
