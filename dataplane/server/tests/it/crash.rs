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
