//! Each request is decoded once and logged as it was received.

use prost::Message;
use signaldb::proto::AcceptorWalRecord;
use signaldb::server::{Roles, start};

use crate::common::*;

/// An acceptor alone (no writer to deliver to) logs every protobuf request
/// byte for byte as the client sent it, over gRPC and HTTP (with a field it
/// does not know, which an encoding of the decoded request would lose),
/// having decoded it once; a request whose values it truncated is logged as truncated.
/// After a restart with a writer, the logged requests are converted from
/// the WAL (the only decodes at delivery), the writer logs the Arrow IPC it
/// receives as it is, and every span is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_decoded_once_and_logged_as_received() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.acceptor.max_attribute_value_size = signaldb_config::ByteSize(64);
    let acceptor_only = start(config.clone(), Roles::ACCEPTOR).await.unwrap();
    let mut grpc = grpc_client(&acceptor_only).await;
    let http = reqwest::Client::new();
    let otlp_http = format!(
        "http://{}/v1/traces",
        acceptor_only.endpoints.otlp_http.expect("acceptor role")
    );

    let mut sent = Vec::new();
    for seed in 0..6u64 {
        let req = request(900 + seed, 2, 5);
        let mut bytes = req.encode_to_vec();
        if seed % 2 == 0 {
            grpc.export(req).await.unwrap();
        } else {
            // A field this version does not know (number 1000, varint 1):
            // decoding drops it, so only the bytes as received keep it.
            bytes.extend_from_slice(&[0xC0, 0x3E, 0x01]);
            let resp = http
                .post(&otlp_http)
                .header("content-type", "application/x-protobuf")
                .body(bytes.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
        sent.push(bytes);
    }
    // A value past max_attribute_value_size: truncated, so logged as changed.
    let mut long = request(990, 1, 2);
    long.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(opentelemetry_proto::tonic::common::v1::KeyValue {
            key: "long".into(),
            value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                    "x".repeat(1000),
                )),
            }),
            ..Default::default()
        });
    let long_bytes = long.encode_to_vec();
    grpc.export(long).await.unwrap();

    let text = acceptor_only.metrics.render();
    assert_eq!(
        metric(&text, "signaldb_acceptor_decodes_total{at=\"acceptance\"}"),
        Some(7.0),
        "one decode per request"
    );
    assert_eq!(
        metric(&text, "signaldb_acceptor_decodes_total{at=\"delivery\"}"),
        None,
        "no decode at delivery while the converted rows fit"
    );
    acceptor_only.shutdown().await;

    let (_wal, replay) = signaldb_wal::Wal::open(signaldb_wal::WalOptions {
        dir: config.wal_dir("acceptor"),
        segment_size: config.wal.segment_size.as_u64(),
        max_pending_bytes: config.acceptor.max_pending.as_u64(),
    })
    .unwrap();
    let logged: Vec<Vec<u8>> = replay
        .entries
        .iter()
        .map(|e| AcceptorWalRecord::decode(e.payload.clone()).unwrap().request.to_vec())
        .collect();
    assert_eq!(logged.len(), 7);
    assert_eq!(&logged[..6], &sent[..], "logged byte for byte as received");
    assert_ne!(logged[6], long_bytes, "the truncated request is logged as truncated");
    assert!(logged[6].len() < long_bytes.len());

    // Replayed: converted from the log, and stored.
    let running = start_all(config.clone()).await;
    deliver_and_flush(&running).await;
    let text = running.metrics.render();
    assert_eq!(
        metric(&text, "signaldb_acceptor_decodes_total{at=\"delivery\"}"),
        Some(7.0)
    );
    // The writer logged the Arrow IPC each put carried, encoding none again.
    assert!(metric(&text, "signaldb_writer_wal_ipc_bytes_total{logged=\"as_received\"}").is_some_and(|b| b > 0.0));
    assert_eq!(
        metric(&text, "signaldb_writer_wal_ipc_bytes_total{logged=\"encoded\"}"),
        None
    );
    running.shutdown().await;
    let stored = spans_by_id(&stored_spans(dir.path()));
    assert_eq!(stored.len(), 6 * 10 + 2, "every span sent is stored");
}

async fn grpc_client(
    running: &signaldb::server::Running,
) -> opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient<tonic::transport::Channel>
{
    opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(format!(
        "http://{}",
        running.endpoints.otlp_grpc.expect("acceptor role")
    ))
    .await
    .unwrap()
}
