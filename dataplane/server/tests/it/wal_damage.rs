//! A damaged acceptor WAL (flipped bits, torn tail, zero-byte segment) does
//! not stop the process: valid records are delivered, the damage is counted.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use signaldb::server::{Roles, start};

use crate::common::*;

fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_wal_is_survived_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    // Acceptor alone: requests stay in its WAL.
    let acceptor = start(config.clone(), Roles::ACCEPTOR).await.unwrap();
    let mut grpc = TraceServiceClient::connect(format!("http://{}", acceptor.endpoints.otlp_grpc.unwrap()))
        .await
        .unwrap();
    let n = 20u64;
    for seed in 0..n {
        grpc.export(request(seed, 1, 10)).await.unwrap();
    }
    acceptor.shutdown().await;

    let wal_dir = config.wal_dir("acceptor");
    let segs = segments(&wal_dir);
    assert_eq!(segs.len(), 1, "one segment: {segs:?}");
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    let len = bytes.len();
    bytes[len / 2] ^= 0x5a; // a flipped byte in the middle record
    bytes.truncate(len - 100); // a torn last record
    std::fs::write(&segs[0], &bytes).unwrap();
    // A zero-byte segment after it, as a crash right after creating a file leaves.
    let empty = wal_dir.join(signaldb_wal::segment_file_name(900));
    std::fs::write(&empty, b"").unwrap();

    let running = start(config.clone(), Roles::ALL).await.unwrap();
    let text = running.metrics.render();
    assert_eq!(
        metric(&text, "signaldb_wal_corrupt_records_total{role=\"acceptor\"}"),
        Some(2.0),
        "{text}"
    );
    assert!(metric(&text, "signaldb_wal_truncated_bytes_total{role=\"acceptor\"}").unwrap() > 0.0);
    assert_eq!(
        metric(&text, "signaldb_wal_empty_segments_total{role=\"acceptor\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "signaldb_wal_replayed_records_total{role=\"acceptor\"}"),
        Some((n - 2) as f64)
    );
    deliver_and_flush(&running).await;
    let stored = spans_by_id(&stored_spans(&dir.path().join("objects")));
    assert_eq!(stored.len() as u64, (n - 2) * 10, "all spans of the undamaged records");
    assert!(stored.values().all(|(c, _)| *c == 1));
    running.shutdown().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Records intact on disk that cannot be read as a request (acceptor) or a
/// batch (writer) are skipped at start, logged and counted, and the
/// process goes on to store what it receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_wal_records_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    for role in ["acceptor", "writer"] {
        let (wal, replay) = signaldb_wal::Wal::open(signaldb_wal::WalOptions::new(config.wal_dir(role))).unwrap();
        assert!(replay.entries.is_empty());
        wal.append(bytes::Bytes::from_static(b"\x0a\x03not a record of either kind"))
            .await
            .unwrap();
        wal.close().await;
    }
    let running = start_all(config).await;
    let text = running.metrics.render();
    for role in ["acceptor", "writer"] {
        assert_eq!(
            metric(&text, &format!("signaldb_wal_records_skipped_total{{role=\"{role}\"}}")),
            Some(1.0),
            "{role}: {text}"
        );
    }
    let (mut grpc, api) = clients(&running).await;
    let sent = request(91, 1, 3);
    let trace = hex::encode(&sent.resource_spans[0].scope_spans[0].spans[0].trace_id);
    grpc.export(sent).await.unwrap();
    deliver_and_flush(&running).await;
    let resp = reqwest::get(format!("{api}/api/traces/{trace}")).await.unwrap();
    assert_eq!(resp.status(), 200);
}
