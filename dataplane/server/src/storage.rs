//! Object storage for Parquet files: the local filesystem or S3 and
//! S3-compatible servers, behind `object_store`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use signaldb_config::{Config, Signal, TenantId};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("creating storage directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("opening storage {url}: {source}")]
    Open { url: String, source: object_store::Error },
    #[error("storage url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
}

/// Opens the configured store. Relative `file://` paths and the default
/// (`<data_dir>/objects`) are created if missing.
pub fn open(config: &Config) -> Result<Arc<dyn ObjectStore>, StorageError> {
    if config.storage.url.as_deref() == Some("file://") {
        return Err(StorageError::BadUrl {
            url: "file://".into(),
            reason: "no path after file://".into(),
        });
    }
    if let Some(dir) = local_root(config) {
        return local(dir);
    }
    let url = config.storage.url.clone().unwrap_or_default();
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = match rest.split_once('/') {
            Some((b, p)) => (b, p.trim_matches('/')),
            None => (rest, ""),
        };
        if bucket.is_empty() {
            return Err(StorageError::BadUrl {
                url,
                reason: "no bucket after s3://".into(),
            });
        }
        let s3 = &config.storage.s3;
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(!s3.path_style)
            .with_allow_http(s3.allow_http);
        if let Some(v) = &s3.endpoint {
            b = b.with_endpoint(v);
        }
        if let Some(v) = &s3.region {
            b = b.with_region(v);
        }
        if let Some(v) = &s3.access_key_id {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = &s3.secret_access_key {
            b = b.with_secret_access_key(v);
        }
        let store = b.build().map_err(|source| StorageError::Open {
            url: url.clone(),
            source,
        })?;
        return Ok(if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        });
    }
    Err(StorageError::BadUrl {
        url,
        reason: "expected file:///PATH or s3://BUCKET[/PREFIX]".into(),
    })
}

/// The directory of the local store, when storage is the local filesystem
/// (the default, or a `file://` url); `None` for S3.
pub fn local_root(config: &Config) -> Option<PathBuf> {
    match &config.storage.url {
        None => Some(config.data_dir.join("objects")),
        Some(url) => url.strip_prefix("file://").filter(|p| !p.is_empty()).map(PathBuf::from),
    }
}

/// Makes a file written into the local store at `location` durable through
/// power loss: fsyncs the file, then every directory from its parent up to
/// `root`, so the new directory entries are on disk too. (`object_store`'s
/// local store renames files into place without syncing them.)
pub fn sync_local(root: &Path, location: &object_store::path::Path) -> std::io::Result<()> {
    let file = root.join(location.as_ref());
    std::fs::File::open(&file)?.sync_all()?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        std::fs::File::open(d)?.sync_all()?;
        if d == root {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

fn local(dir: PathBuf) -> Result<Arc<dyn ObjectStore>, StorageError> {
    std::fs::create_dir_all(&dir).map_err(|source| StorageError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let store = LocalFileSystem::new_with_prefix(&dir).map_err(|source| StorageError::Open {
        url: format!("file://{}", dir.display()),
        source,
    })?;
    Ok(Arc::new(store))
}

/// Where a file of `tenant` and `signal` whose earliest row is at
/// `min_time_ns` goes: `{tenant}/{signal}/{YYYY-MM-DD}/{HH}/{name}.parquet`.
pub fn file_path(tenant: &TenantId, signal: Signal, min_time_ns: i64, name: &str) -> object_store::path::Path {
    let t = chrono::DateTime::from_timestamp_nanos(min_time_ns);
    object_store::path::Path::from(format!(
        "{tenant}/{signal}/{}/{}/{name}.parquet",
        t.format("%Y-%m-%d"),
        t.format("%H")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let t = TenantId::new("acme").unwrap();
        let p = file_path(&t, Signal::Traces, 1_795_567_888_410_106_559, "x");
        assert_eq!(p.as_ref(), "acme/traces/2026-11-25/00/x.parquet");
    }

    #[test]
    fn local_files_are_synced_up_to_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.storage.url = Some(format!("file://{}", dir.path().display()));
        assert_eq!(local_root(&c).as_deref(), Some(dir.path()));
        let t = TenantId::new("acme").unwrap();
        let p = file_path(&t, Signal::Traces, 0, "x");
        std::fs::create_dir_all(dir.path().join("acme/traces/1970-01-01/00")).unwrap();
        std::fs::write(dir.path().join(p.as_ref()), b"PAR1").unwrap();
        sync_local(dir.path(), &p).unwrap();
        let missing = file_path(&t, Signal::Traces, 0, "missing");
        assert!(sync_local(dir.path(), &missing).is_err());
        c.storage.url = Some("s3://bucket".into());
        assert_eq!(local_root(&c), None);
    }

    #[test]
    fn bad_urls_say_why() {
        let mut c = Config::default();
        c.storage.url = Some("s3://".into());
        assert!(open(&c).unwrap_err().to_string().contains("no bucket"));
        c.storage.url = Some("gs://x".into());
        assert!(open(&c).unwrap_err().to_string().contains("expected file:///PATH"));
    }
}
