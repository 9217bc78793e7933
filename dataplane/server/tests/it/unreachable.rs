//! With no writer reachable the acceptor keeps accepting into its WAL up to
//! `acceptor.max_pending`, then answers 429 / RESOURCE_EXHAUSTED with retry
//! advice; once a writer appears everything acknowledged is delivered.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use signaldb::server::{Roles, start};
use signaldb_config::ByteSize;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_buffers_up_to_its_bound_then_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let mut acc_cfg = test_config(&dir.path().join("acceptor"));
    acc_cfg.node_id = Some("acc".into());
    acc_cfg.catalog.url = Some(format!("sqlite://{}?mode=rwc", dir.path().join("catalog.db").display()));
    acc_cfg.acceptor.max_request_size = ByteSize(64 * 1024);
    acc_cfg.acceptor.max_pending = ByteSize(256 * 1024);
    let mut wr_cfg = acc_cfg.clone();
    wr_cfg.node_id = Some("wr".into());
    wr_cfg.data_dir = dir.path().join("writer");

    let acceptor = start(acc_cfg, Roles::ACCEPTOR).await.unwrap();
    let grpc_addr = format!("http://{}", acceptor.endpoints.otlp_grpc.unwrap());
    let http_addr = format!("http://{}/v1/traces", acceptor.endpoints.otlp_http.unwrap());
    let mut grpc = TraceServiceClient::connect(grpc_addr).await.unwrap();

    let mut acked = std::collections::HashSet::new();
    let mut refused = None;
    for seed in 0..200u64 {
        let req = request(seed, 2, 10);
        let keys: Vec<SpanKey> = req.resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| (s.trace_id.clone(), s.span_id.clone()))
            .collect();
        match grpc.export(req).await {
            Ok(_) => acked.extend(keys),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let status = refused.expect("the acceptor refuses once its WAL bound is reached");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("retry later"), "{}", status.message());
    let details = signaldb::proto::RpcStatus::decode(status.details()).unwrap();
    assert_eq!(details.details[0].type_url, "type.googleapis.com/google.rpc.RetryInfo");
    assert!(acked.len() >= 100, "accepted {} spans before refusing", acked.len());

    let resp = reqwest::Client::new()
        .post(&http_addr)
        .header("content-type", "application/x-protobuf")
        .body(request(999, 2, 10).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().get("retry-after").is_some(), "429 carries Retry-After");

    // A writer comes up: everything acknowledged is delivered.
    let writer = start(wr_cfg.clone(), Roles::WRITER).await.unwrap();
    let m = acceptor.metrics.clone();
    wait_until("acceptor WAL to drain", Duration::from_secs(30), || {
        metric(&m.render(), "signaldb_wal_pending_bytes{role=\"acceptor\"}") == Some(0.0)
    })
    .await;
    // And new requests are accepted again.
    grpc.export(request(1000, 1, 5)).await.unwrap();
    acked.extend(
        request(1000, 1, 5).resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| (s.trace_id.clone(), s.span_id.clone())),
    );
    wait_until("acceptor WAL to drain", Duration::from_secs(30), || {
        metric(&m.render(), "signaldb_wal_pending_bytes{role=\"acceptor\"}") == Some(0.0)
    })
    .await;
    writer.writer().unwrap().flush().await.unwrap();
    let store = signaldb::storage::open(&wr_cfg).unwrap();
    let stored = catalog_spans(&wr_cfg.catalog_url(), &store, "single-tenant").await;
    assert_exactly_once(&acked, &stored);
    assert_eq!(spans_by_id(&stored).len(), acked.len());
    acceptor.shutdown().await;
    writer.shutdown().await;
}
