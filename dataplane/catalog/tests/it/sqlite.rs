use std::sync::Arc;

use crate::conformance;
use signaldb_catalog::{BatchId, Catalog, Error, FileRecord, Signal, SqlCatalog, TenantId, connect};

fn file_url(dir: &tempfile::TempDir) -> (std::path::PathBuf, String) {
    let path = dir.path().join("catalog.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    (path, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_conformance_shared_by_two_pools() {
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = file_url(&dir);
    let first = connect(&url, 4).await.unwrap();
    assert_eq!(first.backend(), "sqlite");
    conformance::run_all(&first).await;

    // A second pool on the same file, as a second process would open it:
    // migrations are applied already, and each sees the other's writes.
    let second = connect(&url, 4).await.unwrap();
    let tenant = TenantId::new(format!("shared-{}", crate::unique())).unwrap();
    first.ensure_tenant(&tenant, 1).await.unwrap();
    assert!(second.list_tenants().await.unwrap().contains(&tenant));
    let file = FileRecord {
        path: format!("{tenant}/traces/x.parquet"),
        tenant: tenant.clone(),
        signal: Signal::Traces,
        min_time_ns: 1,
        max_time_ns: 2,
        rows: 3,
        size_bytes: 4,
        trace_ids: None,
        writer_id: "w".into(),
        created_at_ms: 5,
    };
    let id = BatchId {
        source: format!("shared-{tenant}"),
        seq: 1,
        part: 0,
    };
    second.register_file(&file, std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(
        first.batches_seen(std::slice::from_ref(&id)).await.unwrap(),
        vec![id.clone()]
    );
    assert_eq!(
        first.list_files(&tenant, Signal::Traces, None).await.unwrap(),
        vec![file]
    );
    conformance::run_all(&second).await;

    let wal = path.with_file_name("catalog.db-wal");
    assert!(
        wal.exists(),
        "the SQLite catalog must use WAL journaling ({} missing)",
        wal.display()
    );

    concurrent_writers(first, second).await;
}

/// Two pools write at once (each with several connections): the busy timeout
/// and WAL make them wait for each other instead of failing.
async fn concurrent_writers(first: SqlCatalog, second: SqlCatalog) {
    let tenant = TenantId::new(format!("busy-{}", crate::unique())).unwrap();
    let mut tasks = Vec::new();
    for (p, catalog) in [first.clone(), second.clone()].into_iter().enumerate() {
        for task in 0..3 {
            let catalog = catalog.clone();
            let tenant = tenant.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25u64 {
                    let file = FileRecord {
                        path: format!("{tenant}/logs/{p}-{task}-{i}.parquet"),
                        tenant: tenant.clone(),
                        signal: Signal::Logs,
                        min_time_ns: i64::try_from(i).unwrap(),
                        max_time_ns: i64::try_from(i).unwrap() + 10,
                        rows: 1,
                        size_bytes: 1,
                        trace_ids: None,
                        writer_id: format!("{p}-{task}"),
                        created_at_ms: 1,
                    };
                    let ids: Vec<BatchId> = (0..20)
                        .map(|part| BatchId {
                            source: format!("{tenant}-{p}-{task}"),
                            seq: i,
                            part,
                        })
                        .collect();
                    assert!(catalog.batches_seen(&ids).await.unwrap().is_empty());
                    catalog.register_file(&file, &ids).await.unwrap();
                    catalog.list_files(&tenant, Signal::Logs, Some((0, 5))).await.unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(first.list_files(&tenant, Signal::Logs, None).await.unwrap().len(), 150);
    assert_eq!(second.list_files(&tenant, Signal::Logs, None).await.unwrap().len(), 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_conformance() {
    let catalog = connect("sqlite::memory:", 8).await.unwrap();
    assert_eq!(catalog.backend(), "sqlite");
    conformance::run_all(&catalog).await;
    // Twice against the same database.
    conformance::run_all(&catalog).await;
    // Each in-memory catalog is its own.
    let other = connect("sqlite::memory:", 8).await.unwrap();
    assert!(other.list_tenants().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_first_start() {
    let dir = tempfile::tempdir().unwrap();
    // No `mode` parameter: the file is created anyway.
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { connect(&url, 2).await })
        })
        .collect();
    let mut catalogs = Vec::new();
    for s in starts {
        catalogs.push(s.await.unwrap().unwrap());
    }
    conformance::run_all(&catalogs[3]).await;
    assert!(dir.path().join("fresh.db-wal").exists());
}

#[tokio::test]
async fn bad_urls() {
    let e = connect("mysql://user:hunter2@localhost/db", 1).await.unwrap_err();
    assert!(matches!(e, Error::UnsupportedUrl { .. }), "{e:?}");
    assert!(!e.to_string().contains("hunter2"), "{e}");

    // A "server" that hangs up at once: connecting fails without retries.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let e = connect(&format!("postgres://user:hunter2@127.0.0.1:{port}/db"), 1)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("user:***@127.0.0.1:{port}/db")), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("missing/dir/c.db").display());
    let e = connect(&url, 1).await.unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
}

#[tokio::test]
async fn usable_as_trait_object() {
    let catalog: Arc<dyn Catalog> = Arc::new(connect("sqlite::memory:", 1).await.unwrap());
    conformance::run_all(catalog.as_ref()).await;
    assert!(format!("{catalog:?}").contains("SqlCatalog"));
}
