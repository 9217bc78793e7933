//! Compaction on the real path: spans stored by the writer in many small
//! files (some sent twice) are merged by two compactors working at once
//! into few files, duplicates gone, and the Tempo API answers exactly as
//! before; the replaced objects stay until their delete is due. Run on
//! SQLite with local files, and on PostgreSQL with S3; a third test kills
//! compactor processes at random points.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use signaldb::compactor::{Compactor, Report};
use signaldb_catalog::Catalog;
use signaldb_config::{Config, Signal, TenantId};

use crate::common::*;
use crate::multiprocess::{fresh_catalog, new_bucket, required_env};

const TENANT: &str = "single-tenant";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_on_sqlite_and_local_files() {
    let dir = tempfile::tempdir().unwrap();
    compacts_and_answers_the_same(test_config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_on_postgres_and_s3() {
    let pg = required_env("SIGNALDB_TEST_POSTGRES_URL");
    let s3 = required_env("SIGNALDB_TEST_S3_ENDPOINT");
    let (run, bucket) = new_bucket(&s3, "sdb-compact").await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.catalog.url = Some(fresh_catalog(&pg, &run).await);
    config.storage.url = Some(format!("s3://{bucket}/signaldb"));
    s3_config(&mut config, &s3);
    compacts_and_answers_the_same(config).await;
}

fn s3_config(config: &mut Config, endpoint: &str) {
    let s3 = &mut config.storage.s3;
    s3.endpoint = Some(endpoint.to_owned());
    s3.path_style = true;
    s3.allow_http = true;
    s3.region = Some("us-east-1".into());
    s3.access_key_id = Some("test".into());
    s3.secret_access_key = Some("test".into());
}

/// Every (trace id, span id) stored in the files the catalog lists, read
/// back from the object store, with repeats.
pub(crate) async fn stored_spans(
    catalog: &Arc<dyn Catalog>,
    store: &Arc<dyn ObjectStore>,
    tenant: &TenantId,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    use arrow_array::{Array, FixedSizeBinaryArray};
    let mut out = Vec::new();
    for f in catalog.list_files(tenant, Signal::Traces, None).await.unwrap() {
        let reader = signaldb_query::StoreReader::new(
            Arc::clone(store),
            object_store::path::Path::from(f.path.as_str()),
            u64::try_from(f.size_bytes).unwrap(),
        );
        let mut batches = parquet::arrow::ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .unwrap()
            .build()
            .unwrap();
        let mut last: Option<Vec<u8>> = None;
        while let Some(batch) = batches.next().await {
            let batch = batch.unwrap();
            let col = |n: &str| {
                batch
                    .column_by_name(n)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<FixedSizeBinaryArray>()
                    .unwrap()
                    .clone()
            };
            let (traces, spans) = (col("trace_id"), col("span_id"));
            for i in 0..traces.len() {
                let id = traces.value(i).to_vec();
                assert!(
                    last.as_ref().is_none_or(|l| *l <= id),
                    "{} is sorted by trace id",
                    f.path
                );
                last = Some(id.clone());
                out.push((id, spans.value(i).to_vec()));
            }
        }
    }
    out
}

/// Every trace by id (span ids) and the trace ids a broad search returns.
async fn answers(base: &str, traces: &[String]) -> (BTreeMap<String, HashSet<Vec<u8>>>, Vec<String>) {
    let http = reqwest::Client::new();
    let mut by_id = BTreeMap::new();
    for t in traces {
        let (ids, n) = trace_span_ids(&http, base, TENANT, t).await;
        assert_eq!(ids.len(), n, "trace {t} returns each span once");
        by_id.insert(t.clone(), ids);
    }
    let now = chrono::Utc::now().timestamp();
    let body: serde_json::Value = http
        .get(format!(
            "{base}/api/search?q=%7B%7D&limit=1000&start={}&end={}",
            now - 3600,
            now + 3600
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    let mut found: Vec<String> = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        // Tempo's search writes trace ids without leading zeros.
        .map(|t| format!("{:0>32}", t["traceID"].as_str().unwrap()))
        .collect();
    found.sort();
    (by_id, found)
}

/// The trace objects under the tenant's prefix in the store, and the
/// paths the catalog names.
async fn stored_and_named(
    catalog: &Arc<dyn Catalog>,
    store: &Arc<dyn ObjectStore>,
    tenant: &TenantId,
) -> (HashSet<String>, HashSet<String>) {
    let stored: HashSet<String> = store
        .list(Some(&object_store::path::Path::from(format!("{tenant}/traces"))))
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await;
    let named: HashSet<String> = catalog
        .list_files(tenant, Signal::Traces, None)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    (stored, named)
}

async fn compacts_and_answers_the_same(mut config: Config) {
    // Small outputs, so that one window's merge writes several files.
    config.compactor.target_file_size = signaldb_config::ByteSize(64 * 1024);
    config.compactor.min_files = 2;
    let running = start_all(config.clone()).await;
    let (mut grpc, api) = clients(&running).await;
    let tenant = TenantId::new(TENANT).unwrap();

    // 12 requests of 10 traces x 5 spans, each its own file; three sent
    // again later (a replay), each copy in a file of its own too.
    let mut traces = Vec::new();
    for seq in 0..15u64 {
        let sent = request(700 + seq % 12, 10, 5);
        if seq < 12 {
            for rs in &sent.resource_spans {
                for ss in &rs.scope_spans {
                    traces.extend(ss.spans.iter().map(|s| hex::encode(&s.trace_id)));
                }
            }
        }
        grpc.export(sent).await.unwrap();
        deliver_and_flush(&running).await;
    }
    traces.sort();
    traces.dedup();
    assert_eq!(traces.len(), 120);

    let catalog: Arc<dyn Catalog> = Arc::new(signaldb_catalog::connect(&config.catalog_url(), 4).await.unwrap());
    let store = signaldb::storage::open(&config).unwrap();
    let before_files = catalog.list_files(&tenant, Signal::Traces, None).await.unwrap();
    assert_eq!(before_files.len(), 15);
    let before_spans = stored_spans(&catalog, &store, &tenant).await;
    assert_eq!(before_spans.len(), 750, "600 spans, 150 of them twice");
    let before = answers(&api, &traces).await;
    assert_eq!(before.1, traces, "the search finds every trace");
    assert!(before.0.values().all(|s| s.len() == 5));

    // Two compactors at once, rounds until there is nothing left to do,
    // with a clock two hours ahead (the window is settled).
    let compactor = |id: &str| {
        Compactor::new(
            id.to_owned(),
            Arc::clone(&store),
            Arc::clone(&catalog),
            signaldb::storage::local_root(&config),
            config.compactor.clone(),
            signaldb::metrics::Metrics::new(),
        )
    };
    let (one, two) = (compactor("c1"), compactor("c2"));
    let now = chrono::Utc::now() + chrono::Duration::hours(2);
    let mut total = Report::default();
    for round in 0.. {
        assert!(round < 20, "compaction keeps finding work: {total:?}");
        let (a, b) = tokio::join!(one.compact_once(now), two.compact_once(now));
        let (a, b) = (a.unwrap(), b.unwrap());
        total.add(&a);
        total.add(&b);
        if a.jobs + b.jobs == 0 && a.skipped + b.skipped == 0 {
            break;
        }
    }
    let after_files = catalog.list_files(&tenant, Signal::Traces, None).await.unwrap();
    assert!(total.jobs >= 1, "{total:?}");
    assert!(after_files.len() < 15, "{} files", after_files.len());
    assert_eq!(total.duplicates, 150, "{total:?}");
    assert!(
        after_files.iter().all(|f| f.writer_id == "c1" || f.writer_id == "c2"),
        "every file is a merged one"
    );

    // Every span once, in files sorted by trace id.
    let after_spans = stored_spans(&catalog, &store, &tenant).await;
    let distinct: HashSet<&(Vec<u8>, Vec<u8>)> = before_spans.iter().collect();
    assert_eq!(after_spans.len(), 600);
    assert_eq!(after_spans.iter().collect::<HashSet<_>>(), distinct);
    assert_eq!(
        after_files.iter().map(|f| f.rows).sum::<i64>(),
        600,
        "the catalog counts what the files hold"
    );

    // The Tempo API answers as before.
    assert_eq!(answers(&api, &traces).await, before);

    // The replaced objects stay for the queries that planned on them, then go.
    let exists = |path: String| {
        let store = Arc::clone(&store);
        async move { store.head(&object_store::path::Path::from(path)).await.is_ok() }
    };
    for f in &before_files {
        assert!(exists(f.path.clone()).await, "{} kept until due", f.path);
    }
    let due = now + chrono::Duration::from_std(config.compactor.delete_delay).unwrap();
    let swept = one.compact_once(due).await.unwrap();
    assert!(swept.deleted >= 15, "{swept:?}");
    for f in &before_files {
        assert!(!exists(f.path.clone()).await, "{} deleted once due", f.path);
    }
    let (stored, named) = stored_and_named(&catalog, &store, &tenant).await;
    assert_eq!(stored, named, "the store holds exactly the registered files");
    assert_eq!(answers(&api, &traces).await, before);
    running.shutdown().await;
}

/// Compactor processes killed with SIGKILL at random points, again and
/// again, while they work through many small files: after every kill the
/// catalog names only objects that exist and still holds every span; in the
/// end every span is stored once, the outputs of interrupted jobs are
/// orphans that collection deletes, and every trace answers whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactors_killed_at_random_points_leave_a_consistent_store() {
    use rand::Rng;
    let pg = required_env("SIGNALDB_TEST_POSTGRES_URL");
    let s3 = required_env("SIGNALDB_TEST_S3_ENDPOINT");
    let (run, bucket) = new_bucket(&s3, "sdb-compact-kill").await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let catalog_url = fresh_catalog(&pg, &run).await;
    config.catalog.url = Some(catalog_url.clone());
    let storage_url = format!("s3://{bucket}/signaldb");
    config.storage.url = Some(storage_url.clone());
    s3_config(&mut config, &s3);
    let running = start_all(config.clone()).await;
    let (mut grpc, api) = clients(&running).await;
    let tenant = TenantId::new(TENANT).unwrap();
    let mut traces = Vec::new();
    for seq in 0..28u64 {
        let sent = request(900 + seq % 24, 40, 5);
        if seq < 24 {
            for rs in &sent.resource_spans {
                for ss in &rs.scope_spans {
                    traces.extend(ss.spans.iter().map(|s| hex::encode(&s.trace_id)));
                }
            }
        }
        grpc.export(sent).await.unwrap();
        deliver_and_flush(&running).await;
    }
    traces.sort();
    traces.dedup();
    // A sample of the 960 traces, asked for by id before and after.
    let traces: Vec<String> = traces.into_iter().step_by(8).collect();
    let catalog: Arc<dyn Catalog> = Arc::new(signaldb_catalog::connect(&catalog_url, 4).await.unwrap());
    let store = signaldb::storage::open(&config).unwrap();
    let all: HashSet<(Vec<u8>, Vec<u8>)> = stored_spans(&catalog, &store, &tenant).await.into_iter().collect();
    assert_eq!(all.len(), 24 * 200);
    let before = answers(&api, &traces).await;

    let data = dir.path().join("compactor");
    let data = data.to_str().unwrap();
    let mut args: Vec<String> = vec![
        "compactor".into(),
        "--data-dir".into(),
        data.into(),
        "--catalog-url".into(),
        catalog_url.clone(),
        "--storage-url".into(),
        storage_url,
        "--admin-addr".into(),
        "127.0.0.1:0".into(),
    ];
    for s in crate::multiprocess::s3_settings(&s3).into_iter().chain([
        "compactor.interval=20ms".into(),
        "compactor.min_files=2".into(),
        "compactor.max_files=4".into(),
        "compactor.delete_delay=1h".into(),
    ]) {
        args.extend(["--set".into(), s]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let consistent = || async {
        let files = catalog.list_files(&tenant, Signal::Traces, None).await.unwrap();
        for f in &files {
            assert!(
                store
                    .head(&object_store::path::Path::from(f.path.as_str()))
                    .await
                    .is_ok(),
                "{} is registered and stored",
                f.path
            );
        }
        let now: HashSet<(Vec<u8>, Vec<u8>)> = stored_spans(&catalog, &store, &tenant).await.into_iter().collect();
        assert_eq!(now, all, "every span is still registered");
        files.len()
    };
    let mut rng = rand::rng();
    let mut kills = 0;
    let mut files = 28;
    while kills < 12 && files > 1 {
        let proc = Proc::spawn(&args, &[]);
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..400))).await;
        proc.kill9();
        kills += 1;
        files = consistent().await;
    }
    assert!(kills > 1, "the first compactor finished before its kill");
    // One more, to the end.
    let proc = Proc::spawn(&args, &[]);
    wait_until_async("compaction to finish", Duration::from_secs(60), || async {
        catalog.list_files(&tenant, Signal::Traces, None).await.unwrap().len() == 1
    })
    .await;
    proc.terminate();
    assert_eq!(consistent().await, 1);
    let spans = stored_spans(&catalog, &store, &tenant).await;
    assert_eq!(spans.len(), all.len(), "every span stored once");

    // What killed jobs uploaded and never registered is orphaned; the
    // replaced files wait for their delete.
    let collected = signaldb::orphans::collect(&store, &catalog, Duration::ZERO, chrono::Utc::now())
        .await
        .unwrap();
    let pending: HashSet<String> = catalog.pending_deletes(None).await.unwrap().into_iter().collect();
    let (stored, named) = stored_and_named(&catalog, &store, &tenant).await;
    assert_eq!(
        stored,
        named.union(&pending).cloned().collect(),
        "after orphan collection ({collected:?}) the store holds registered and pending objects only"
    );
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    signaldb::retention::delete_due(&store, &catalog, later).await.unwrap();
    let (stored, named) = stored_and_named(&catalog, &store, &tenant).await;
    assert_eq!(stored, named);
    assert_eq!(answers(&api, &traces).await, before);
    running.shutdown().await;
}
