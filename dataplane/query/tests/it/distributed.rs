//! Searches whose file scans are split across queriers with
//! datafusion-distributed: four queries engines, each serving its worker
//! over a real socket and reading the stored files through its own
//! counting store, give the same answers as one engine alone.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signaldb_query::{CpuRuntime, NoBuffers, Peers, QueryEngine, ReadStats, SearchParams};
use url::Url;

use crate::common::{Stored, random_ids};

const FILES: u64 = 8;
const TRACES_PER_FILE: usize = 2_000;
const TOKEN: &str = "Bearer test-cluster-token-0123456789";

/// A querier: an engine whose worker serves on its own port.
struct Querier {
    engine: QueryEngine,
    store: Arc<crate::common::CountingStore>,
    /// The thread each share this querier's worker ran started on.
    task_threads: Arc<Mutex<Vec<String>>>,
}

async fn querier(stored: &Stored, peers: &Arc<Peers>, files_per_task: usize) -> (Querier, Url) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let store = Arc::new(stored.counting_view());
    let task_threads = Arc::new(Mutex::new(Vec::new()));
    let engine = QueryEngine::new(
        Arc::clone(&stored.catalog) as _,
        Arc::clone(&store) as _,
        Arc::new(NoBuffers),
    )
    .unwrap()
    .with_cpu_runtime(CpuRuntime::new(1).unwrap())
    .with_cluster(Arc::clone(peers), Some(TOKEN), url.clone(), files_per_task, {
        let threads = Arc::clone(&task_threads);
        Arc::new(move || {
            let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
            threads.lock().unwrap().push(name);
        })
    })
    .unwrap();
    let worker = engine.worker_service().unwrap();
    // Calls without the cluster token are refused, as on the querier's port.
    let checked = tonic::service::interceptor::InterceptedService::new(worker, |req: tonic::Request<()>| {
        match req.metadata().get("authorization").and_then(|v| v.to_str().ok()) {
            Some(TOKEN) => Ok(req),
            _ => Err(tonic::Status::unauthenticated("no cluster token")),
        }
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(checked)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (
        Querier {
            engine,
            store,
            task_threads,
        },
        url,
    )
}

/// The traces found (id, start, spans matched) and the bytes the search
/// says it read.
async fn search(engine: &QueryEngine, stored: &Stored, q: &str) -> (Vec<(String, u64, u32)>, u64) {
    let params = SearchParams {
        query: signaldb_traceql::parse(q).unwrap(),
        limit: 1_000,
        spans_per_spanset: 3,
    };
    // On the query runtime, as the querier runs searches.
    let (engine, tenant) = (engine.clone(), stored.tenant.clone());
    let stats = ReadStats::default();
    let counted = stats.clone();
    let (traces, _, _) = engine
        .clone()
        .run(async move { signaldb_query::search(&engine, &tenant, None, &params, &counted).await })
        .await
        .unwrap();
    let traces = traces
        .into_iter()
        .map(|t| {
            let id: String = t.trace_id.iter().map(|b| format!("{b:02x}")).collect();
            (id, t.start_time_unix_nano, t.matched)
        })
        .collect();
    (traces, stats.bytes())
}

/// Searches that read every file (a spanset operator, and the newest
/// matches): the same answer from one engine and from four queriers
/// sharing the scan, each of which read some of the files; the time with
/// 1, 2 and 4 queriers is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_queriers_answer_as_one() {
    let mut stored = Stored::new().await;
    for f in 0..FILES {
        stored.add_file(&random_ids(200 + f, TRACES_PER_FILE)).await;
    }
    let alone = stored.engine();
    let peers = Arc::new(Peers::default());
    let mut queriers = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..4 {
        let (q, url) = querier(&stored, &peers, 1).await;
        queriers.push(q);
        urls.push(url);
    }
    let queries = [
        r#"{ span.attr.str5 = "value-42" } && { name = "op-1" }"#,
        r#"{ span.attr.str5 =~ "value-4[0-9]" } with (most_recent=true)"#,
        r#"{ name = "op-3" } | count() > 0"#,
    ];
    for q in queries {
        let (expected, _) = search(&alone, &stored, q).await;
        assert!(!expected.is_empty(), "{q} finds traces");
        // What one querier reads with its indexes loaded.
        peers.set(urls[..1].to_vec());
        search(&queriers[0].engine, &stored, q).await;
        let (_, alone_bytes) = search(&queriers[0].engine, &stored, q).await;
        let mut took = Vec::new();
        for n in [1, 2, 4] {
            peers.set(urls[..n].to_vec());
            for querier in &queriers {
                querier.store.take_files_read();
            }
            let started = Instant::now();
            let (got, bytes) = search(&queriers[0].engine, &stored, q).await;
            took.push((n, started.elapsed()));
            assert_eq!(got, expected, "{q} with {n} queriers");
            // The other queriers' reads are reported too (the split scan
            // reads the same pages, and each worker its footers).
            println!("{q}: {n} queriers report {bytes} bytes read, one alone {alone_bytes}");
            assert!(
                bytes >= alone_bytes * 9 / 10,
                "{q}: {n} queriers report {bytes} bytes read, one alone {alone_bytes}"
            );
            let reading: Vec<usize> = queriers
                .iter()
                .map(|q| q.store.take_files_read().len())
                .filter(|files| *files > 0)
                .collect();
            assert_eq!(
                reading.len(),
                n,
                "{q}: {n} queriers share the scan, each reads: {reading:?}"
            );
            // Each share ran on its querier's query runtime, not on the
            // runtime serving its socket.
            for querier in &queriers {
                let threads = std::mem::take(&mut *querier.task_threads.lock().unwrap());
                assert!(
                    threads.iter().all(|t| t == "signaldb-query"),
                    "{q}: shares ran on {threads:?}"
                );
            }
        }
        println!("{q}: {}", describe(&took));
    }
}

fn describe(took: &[(usize, Duration)]) -> String {
    took.iter()
        .map(|(n, d)| format!("{n} querier(s) {:.1} ms", d.as_secs_f64() * 1e3))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A worker refuses calls without the cluster token: a coordinator that
/// does not carry it fails its query instead of reading another cluster's
/// worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_calls_without_the_token() {
    let mut stored = Stored::new().await;
    for f in 0..4 {
        stored.add_file(&random_ids(300 + f, 500)).await;
    }
    let peers = Arc::new(Peers::default());
    let (_remote, remote_url) = querier(&stored, &peers, 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let own_url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let tokenless = QueryEngine::new(
        Arc::clone(&stored.catalog) as _,
        Arc::clone(&stored.store) as _,
        Arc::new(NoBuffers),
    )
    .unwrap()
    .with_cluster(Arc::clone(&peers), None, own_url.clone(), 1, Arc::new(|| {}))
    .unwrap();
    peers.set(vec![own_url, remote_url]);
    let params = SearchParams {
        query: signaldb_traceql::parse(r#"{ name = "op-1" } && { name = "op-2" }"#).unwrap(),
        limit: 10,
        spans_per_spanset: 3,
    };
    let err = signaldb_query::search(&tokenless, &stored.tenant, None, &params, &ReadStats::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no cluster token"), "{err}");
}
