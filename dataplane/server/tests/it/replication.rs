//! Three writer processes and replication factor 2: `kill -9` of one writer
//! under load loses no acknowledged span, and the Tempo API of a separate
//! querier and router returns every acknowledged trace whole from what the
//! other writers hold (their buffers and their files).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;

use crate::common::*;
use crate::multiprocess::{fresh_catalog, new_bucket, required_env, s3_settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_lost_under_load_loses_nothing_with_two_replicas() {
    let pg = required_env("SIGNALDB_TEST_POSTGRES_URL");
    let s3 = required_env("SIGNALDB_TEST_S3_ENDPOINT");
    let (run, bucket) = new_bucket(&s3, "sdb-rf").await;
    let pg = fresh_catalog(&pg, &run).await;
    let tenant = format!("rf-{run}");

    let dir = tempfile::tempdir().unwrap();
    let storage = format!("s3://{bucket}/signaldb");
    let mut shared = s3_settings(&s3);
    shared.extend([
        "writer.flush_max_age=500ms".into(),
        "discovery.heartbeat_interval=200ms".into(),
        // A writer that stops heartbeating leaves routing within a second.
        "discovery.ttl=1s".into(),
        "acceptor.replication_factor=2".into(),
    ]);
    let args = |role: &str, name: &str, listeners: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = vec![
            role.into(),
            "--data-dir".into(),
            dir.path().join(name).to_str().unwrap().into(),
            "--node-id".into(),
            format!("{name}-{run}"),
            "--catalog-url".into(),
            pg.clone(),
            "--storage-url".into(),
            storage.clone(),
            "--admin-addr".into(),
            "127.0.0.1:0".into(),
        ];
        for l in listeners {
            a.extend([(*l).to_owned(), "127.0.0.1:0".to_owned()]);
        }
        for s in &shared {
            a.extend(["--set".to_owned(), s.clone()]);
        }
        a
    };
    let spawn = |a: &[String]| Proc::spawn(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let mut writers: Vec<Proc> = ["w0", "w1", "w2"]
        .iter()
        .map(|w| spawn(&args("writer", w, &["--flight-addr"])))
        .collect();
    let acceptor = spawn(&args("acceptor", "a0", &["--otlp-grpc-addr", "--otlp-http-addr"]));
    let querier = spawn(&args("querier", "q0", &["--querier-addr"]));
    let router = spawn(&args("router", "r0", &["--http-addr"]));

    // Load; one writer dies in the middle of it and never comes back.
    let loader = Loader::start(acceptor.addr("otlp_grpc"), 2, Some(tenant.clone()));
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    writers.remove(1).kill9();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let acked = loader.stop().await;
    assert!(acked.len() > 200, "the load acknowledged only {} spans", acked.len());
    // Whatever the dead writer held alone is sent again to the writers left.
    wait_acceptor_wal_delivered(&acceptor.addr("admin")).await;

    // Every acknowledged trace, by id, through the router.
    let mut by_trace: BTreeMap<Vec<u8>, HashSet<Vec<u8>>> = BTreeMap::new();
    for (trace, span) in &acked {
        by_trace.entry(trace.clone()).or_default().insert(span.clone());
    }
    let http = reqwest::Client::new();
    let base = format!("http://{}", router.addr("router_http"));
    let missing: Vec<(String, usize)> = futures::stream::iter(by_trace)
        .map(|(trace, spans)| {
            let (http, base, tenant) = (http.clone(), base.clone(), tenant.clone());
            async move {
                let id = hex::encode(&trace);
                let (found, _) = trace_span_ids(&http, &base, &tenant, &id).await;
                (id, spans.difference(&found).count())
            }
        })
        .buffer_unordered(8)
        .filter(|(_, n)| std::future::ready(*n > 0))
        .collect()
        .await;
    assert!(
        missing.is_empty(),
        "{} of the acknowledged traces are incomplete, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    router.terminate();
    querier.terminate();
    acceptor.terminate();
    for w in writers {
        w.terminate();
    }
}
