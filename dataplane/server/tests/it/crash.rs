//! `kill -9` of the all-in-one process under load at random points, then a
//! restart: every acknowledged span is in Parquet exactly once.

use std::time::Duration;

use rand::Rng;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let mut args = all_in_one_args(&data);
    // Flush often, so that kills also land in flushes and WAL trims.
    args.extend([
        "--set",
        "writer.flush_max_age=300ms",
        "--set",
        "discovery.heartbeat_interval=200ms",
    ]);
    let mut proc = Proc::spawn(&args, &[]);
    let loader = Loader::start(proc.addr("otlp_grpc"), 3, None);
    let mut rng = rand::rng();
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        let before = loader.acked_count();
        proc.kill9();
        proc = Proc::spawn(&args, &[]);
        loader.set_endpoint(proc.addr("otlp_grpc"));
        eprintln!("round {round}: killed with {before} spans acknowledged");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked = loader.stop().await;
    assert!(acked.len() > 500, "the load acknowledged only {} spans", acked.len());
    // Everything acknowledged (including what the last start replayed) is
    // handed to the writer before the clean stop that flushes it.
    wait_acceptor_wal_delivered(&proc.addr("admin")).await;
    proc.terminate();

    let config = test_config(dir.path());
    let store = signaldb::storage::open(&config).unwrap();
    let stored = catalog_spans(&config.catalog_url(), &store, "single-tenant").await;
    assert_exactly_once(&acked, &stored);
}

/// A Parquet object left by a crash between upload and registration (no
/// catalog row names it) is deleted when a writer starts, once it is older
/// than `writer.orphan_grace`; a younger one and every registered file
/// stay, and the stored trace still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_deletes_orphan_objects_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let running = start_all(config.clone()).await;
    let (mut grpc, _) = clients(&running).await;
    let sent = request(71, 1, 3);
    let trace = hex::encode(&sent.resource_spans[0].scope_spans[0].spans[0].trace_id);
    grpc.export(sent).await.unwrap();
    running.shutdown().await;
    let objects = dir.path().join("objects");
    let parquet = |root: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    };
    let registered = parquet(&objects);
    assert_eq!(registered.len(), 1, "the clean stop flushed one file");

    let crashed = objects.join("single-tenant/traces/2026-11-29/10");
    std::fs::create_dir_all(&crashed).unwrap();
    let (old, young) = (
        crashed.join("crashed-upload.parquet"),
        crashed.join("in-flight-upload.parquet"),
    );
    for p in [&old, &young] {
        std::fs::write(p, b"PAR1 not registered").unwrap();
    }
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();

    let running = start_all(config).await;
    wait_until("the old orphan deleted", Duration::from_secs(10), || !old.exists()).await;
    let mut left = parquet(&objects);
    left.retain(|p| p != &young);
    assert_eq!(left, registered, "registered files stay");
    assert!(young.exists(), "an object younger than writer.orphan_grace stays");
    let (_, api) = clients(&running).await;
    let resp = reqwest::get(format!("{api}/api/traces/{trace}")).await.unwrap();
    assert_eq!(resp.status(), 200, "the stored trace still answers");
}
