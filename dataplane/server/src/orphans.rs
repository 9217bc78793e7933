//! Orphan collection: Parquet objects under the data prefix that no catalog
//! row names.
//!
//! A writer uploads a file, then registers it in the catalog; a crash (or
//! a catalog that refuses the registration) in between leaves an object no
//! query will ever read and no retention will ever delete. Objects of a
//! signal's data (`<tenant>/<signal>/...parquet`) that the catalog does not
//! name and that are older than the grace period are deleted. The grace
//! period covers uploads still on their way to registration, so any number
//! of writers may collect at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use signaldb_catalog::Catalog;
use signaldb_config::{Signal, TenantId};

/// What one collection found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Objects deleted.
    pub deleted: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Unnamed objects kept because they are younger than the grace period.
    pub young: u64,
}

/// Why a collection stopped.
#[derive(Debug, thiserror::Error)]
pub enum OrphanError {
    #[error("listing {prefix}: {source}")]
    List {
        prefix: String,
        source: object_store::Error,
    },
    #[error("catalog: {0}")]
    Catalog(#[from] signaldb_catalog::Error),
}

/// Deletes the trace Parquet objects of every tenant prefix in `store` that
/// the catalog does not name and that were last modified more than `grace`
/// before `now`.
pub async fn collect(
    store: &Arc<dyn ObjectStore>,
    catalog: &Arc<dyn Catalog>,
    grace: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Collected, OrphanError> {
    let cutoff = now - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let mut out = Collected::default();
    // Tenant prefixes from the store itself: an upload of a brand-new
    // tenant whose registration never happened left no catalog row.
    let top = store
        .list_with_delimiter(None)
        .await
        .map_err(|source| OrphanError::List {
            prefix: String::new(),
            source,
        })?;
    // Objects waiting for their deferred delete are not orphans: queries
    // may still read them, and the delete comes when they are done.
    let pending: HashSet<String> = catalog.pending_deletes(None).await?.into_iter().collect();
    for tenant_prefix in top.common_prefixes {
        let Ok(tenant) = TenantId::new(tenant_prefix.as_ref()) else {
            continue;
        };
        let named: HashSet<String> = catalog
            .list_files(&tenant, Signal::Traces, None)
            .await?
            .into_iter()
            .map(|f| f.path)
            .collect();
        let prefix = Path::from(format!("{tenant}/{}", Signal::Traces));
        let mut objects = store.list(Some(&prefix));
        while let Some(meta) = objects.try_next().await.map_err(|source| OrphanError::List {
            prefix: prefix.to_string(),
            source,
        })? {
            let path = meta.location.to_string();
            if !path.ends_with(".parquet") || named.contains(&path) || pending.contains(&path) {
                continue;
            }
            if meta.last_modified > cutoff {
                out.young += 1;
                continue;
            }
            match store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    tracing::warn!(
                        path,
                        size = meta.size,
                        "deleted an orphan Parquet object no catalog row names"
                    );
                    out.deleted += 1;
                    out.bytes += meta.size;
                }
                // Tried again at the next collection.
                Err(e) => tracing::warn!(path, error = %e, "could not delete an orphan Parquet object"),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use object_store::PutPayload;
    use object_store::memory::InMemory;
    use signaldb_catalog::FileRecord;

    use super::*;

    #[tokio::test]
    async fn deletes_only_old_objects_no_catalog_row_names() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog: Arc<dyn Catalog> = Arc::new(signaldb_catalog::connect("sqlite::memory:", 1).await.unwrap());
        let acme = TenantId::new("acme").unwrap();
        let put = |p: &str| {
            let (store, path) = (Arc::clone(&store), Path::from(p));
            async move { store.put(&path, PutPayload::from_static(b"parquet")).await.unwrap() }
        };
        put("acme/traces/2026-11-29/10/registered.parquet").await;
        put("acme/traces/2026-11-29/10/orphan.parquet").await;
        put("newcomer/traces/2026-11-29/10/orphan.parquet").await;
        put("acme/traces/2026-11-29/10/notes.txt").await;
        put("acme/logs/2026-11-29/10/other-signal.parquet").await;
        put("acme/traces/2026-11-29/10/replaced.parquet").await;
        let record = FileRecord {
            path: "acme/traces/2026-11-29/10/registered.parquet".into(),
            tenant: acme.clone(),
            signal: Signal::Traces,
            min_time_ns: 1,
            max_time_ns: 2,
            rows: 1,
            size_bytes: 7,
            trace_ids: None,
            writer_id: "w".into(),
            created_at_ms: 1,
        };
        catalog.register_file(&record, &[]).await.unwrap();
        // A file compaction replaced: its delete is pending.
        let replaced = FileRecord {
            path: "acme/traces/2026-11-29/10/replaced.parquet".into(),
            ..record.clone()
        };
        catalog.register_file(&replaced, &[]).await.unwrap();
        catalog
            .replace_files(
                &acme,
                Signal::Traces,
                std::slice::from_ref(&replaced.path),
                &[],
                i64::MAX,
            )
            .await
            .unwrap();
        let now = chrono::Utc::now();

        // Within the grace period, nothing goes.
        let young = collect(&store, &catalog, Duration::from_secs(3600), now).await.unwrap();
        assert_eq!(
            young,
            Collected {
                deleted: 0,
                bytes: 0,
                young: 2
            }
        );

        // Past it, the two unnamed trace objects go, of a known tenant and
        // of one the catalog never heard of; the rest stays.
        let later = now + chrono::Duration::hours(2);
        let old = collect(&store, &catalog, Duration::from_secs(3600), later)
            .await
            .unwrap();
        assert_eq!(
            old,
            Collected {
                deleted: 2,
                bytes: 14,
                young: 0
            }
        );
        let mut left: Vec<String> = store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        left.sort();
        assert_eq!(
            left,
            [
                "acme/logs/2026-11-29/10/other-signal.parquet",
                "acme/traces/2026-11-29/10/notes.txt",
                "acme/traces/2026-11-29/10/registered.parquet",
                "acme/traces/2026-11-29/10/replaced.parquet",
            ]
        );
        assert_eq!(
            collect(&store, &catalog, Duration::from_secs(3600), later)
                .await
                .unwrap(),
            Collected::default()
        );
    }
}
