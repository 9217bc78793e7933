//! Bad input gets the right HTTP status or gRPC code with a message, and a
//! valid request in the same run is stored unharmed.

use std::io::Write;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use signaldb_config::ByteSize;

use crate::common::*;

const VALID_JSON: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},
 "scopeSpans":[{"scope":{"name":"it"},"spans":[{"traceId":"00000000000000007f3a2c1b9d8e6f50","spanId":"aaaaaaaaaaaaaaaa",
 "name":"consume","kind":5,"startTimeUnixNano":"1795567888410106559","endTimeUnixNano":"1795567888440106559",
 "attributes":[{"key":"batch.size","value":{"intValue":"17"}}],"status":{"code":0}}]}]}]}"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_valid_input_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.acceptor.max_request_size = ByteSize(64 * 1024);
    let running = start_all(config).await;
    let base = format!("http://{}", running.endpoints.otlp_http.unwrap());
    let http = reqwest::Client::new();

    let bad_ids = VALID_JSON.replace("7f3a2c1b9d8e6f50", "7f3a");
    let big = vec![b'x'; 100 * 1024];
    let bomb = gzip(&vec![0u8; 1024 * 1024]);
    // (what, path, content type, content encoding, body, status, message)
    type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "malformed protobuf",
            "/v1/traces",
            "application/x-protobuf",
            None,
            b"\xff\xff\xff\x01junk".to_vec(),
            400,
            "malformed OTLP protobuf",
        ),
        (
            "bad JSON",
            "/v1/traces",
            "application/json",
            None,
            b"{\"resourceSpans\": [".to_vec(),
            400,
            "malformed OTLP JSON",
        ),
        (
            "wrong id length",
            "/v1/traces",
            "application/json",
            None,
            bad_ids.into_bytes(),
            400,
            "trace_id is 10 bytes, expected 16",
        ),
        (
            "oversized body",
            "/v1/traces",
            "application/x-protobuf",
            None,
            big,
            413,
            "request body larger than acceptor.max_request_size (65536 bytes)",
        ),
        (
            "oversized after gunzip",
            "/v1/traces",
            "application/x-protobuf",
            Some("gzip"),
            bomb,
            413,
            "larger than 65536 bytes after decompression",
        ),
        (
            "broken gzip",
            "/v1/traces",
            "application/json",
            Some("gzip"),
            b"not gzip".to_vec(),
            400,
            "malformed gzip body",
        ),
        (
            "unsupported encoding",
            "/v1/traces",
            "application/json",
            Some("br"),
            b"{}".to_vec(),
            415,
            "unsupported content encoding br",
        ),
        (
            "unsupported content type",
            "/v1/traces",
            "text/plain",
            None,
            b"hello".to_vec(),
            415,
            "unsupported content type text/plain",
        ),
        (
            "unknown path",
            "/v1/spans",
            "application/json",
            None,
            b"{}".to_vec(),
            404,
            "404 page not found",
        ),
    ];
    for (what, path, ct, ce, body, status, needle) in cases {
        let mut req = http.post(format!("{base}{path}")).header("content-type", ct).body(body);
        if let Some(ce) = ce {
            req = req.header("content-encoding", ce);
        }
        let resp = req.send().await.unwrap();
        let got = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(got, status, "{what}: body {text}");
        assert!(text.contains(needle), "{what}: {text:?} lacks {needle:?}");
    }
    let resp = http.get(format!("{base}/v1/traces")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405, "GET /v1/traces");

    // Protobuf errors come as google.rpc.Status in protobuf.
    let resp = http
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(b"\xff\xff".to_vec())
        .send()
        .await
        .unwrap();
    let status = signaldb::proto::RpcStatus::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, 3);
    assert!(status.message.contains("malformed OTLP protobuf"), "{}", status.message);

    // gRPC.
    let mut grpc = TraceServiceClient::connect(format!("http://{}", running.endpoints.otlp_grpc.unwrap()))
        .await
        .unwrap();
    let mut bad = request(1, 1, 2);
    bad.resource_spans[0].scope_spans[0].spans[1].span_id = vec![1, 2, 3];
    let err = grpc.export(bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("spans[1]: span_id is 3 bytes, expected 8"),
        "{}",
        err.message()
    );
    let mut bad = request(2, 1, 1);
    bad.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano = 0;
    let err = grpc.export(bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("start_time_unix_nano is missing"),
        "{}",
        err.message()
    );
    let huge = request(3, 200, 10);
    assert!(huge.encoded_len() > 64 * 1024);
    let err = grpc.export(huge).await.unwrap_err();
    assert!(
        matches!(err.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted),
        "oversized gRPC message: {err:?}"
    );
    let err = grpc
        .export({
            let mut r = tonic::Request::new(request(4, 1, 1));
            r.metadata_mut().insert("x-scope-orgid", "bad/tenant".parse().unwrap());
            r
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(err.message().contains("X-Scope-OrgID"), "{}", err.message());

    // Valid requests in the same run: JSON over HTTP, gzip protobuf over HTTP, gRPC.
    let resp = http
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/json")
        .body(VALID_JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), r#"{"partialSuccess":{}}"#);
    let pb = request(5, 2, 3);
    let resp = http
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gzip(&pb.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    grpc.export(request(6, 1, 4)).await.unwrap();

    deliver_and_flush(&running).await;
    let stored = spans_by_id(&stored_spans(&dir.path().join("objects")));
    assert_eq!(stored.len(), 1 + 6 + 4, "exactly the valid spans are stored");
    assert!(stored.values().all(|(n, _)| *n == 1));
    let json_span = stored
        .get(&(hex::decode("00000000000000007f3a2c1b9d8e6f50").unwrap(), vec![0xaa; 8]))
        .unwrap();
    assert_eq!(json_span.1.name, "consume");
    assert_eq!(json_span.1.kind, 5);
    let text = running.metrics.render();
    assert!(
        metric(
            &text,
            "signaldb_acceptor_requests_total{transport=\"http\",outcome=\"invalid\"}"
        )
        .unwrap()
            >= 5.0
    );
    running.shutdown().await;
}

/// A request whose attribute values are too long is stored with them cut
/// to `acceptor.max_attribute_value_size`, and the answer says so in
/// OTLP's `partial_success` (no span rejected, a message), over HTTP and
/// gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_values_are_reported_in_partial_success() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.acceptor.max_attribute_value_size = signaldb_config::ByteSize(64);
    let running = start_all(config).await;
    let long = |mut req: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest| {
        req.resource_spans[0].scope_spans[0].spans[0].attributes.push(KeyValue {
            key: "long".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("x".repeat(100))),
            }),
            ..Default::default()
        });
        req
    };
    let base = format!("http://{}", running.endpoints.otlp_http.unwrap());
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&long(request(61, 1, 2))).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let message = body["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("1 attribute values longer than 64 bytes (acceptor.max_attribute_value_size"),
        "{message}"
    );
    let mut grpc = TraceServiceClient::connect(format!("http://{}", running.endpoints.otlp_grpc.unwrap()))
        .await
        .unwrap();
    let answer = grpc.export(long(request(62, 1, 2))).await.unwrap().into_inner();
    let partial = answer.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_spans, 0);
    assert!(partial.error_message.contains("truncated"), "{}", partial.error_message);
    // Nothing to report: no partial_success.
    let answer = grpc.export(request(63, 1, 2)).await.unwrap().into_inner();
    assert_eq!(answer.partial_success, None);
    running.shutdown().await;
}

/// A writer `DoPut` whose Arrow IPC message names a buffer past the end of
/// its body gets `INVALID_ARGUMENT` with a message (no panic, no allocation
/// of the claimed length), and the writer stores the next, valid put.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_writer_put_is_refused_and_the_writer_goes_on() {
    use arrow_flight::encode::FlightDataEncoderBuilder;
    use futures::TryStreamExt;

    let dir = tempfile::tempdir().unwrap();
    let cluster = SharedCluster::new(dir.path());
    let writer = signaldb::server::start(cluster.node("w"), signaldb::server::Roles::WRITER)
        .await
        .unwrap();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", writer.endpoints.writer_flight.unwrap()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut flight = arrow_flight::flight_service_client::FlightServiceClient::new(channel);
    let batch = signaldb_schema::traces::otlp_to_arrow(&request(1, 2, 3).resource_spans).unwrap();
    let put = |seq: u64| {
        let batch = batch.clone();
        async move {
            let meta = signaldb::proto::PutMetadata {
                tenant: "single-tenant".into(),
                source: "test".into(),
                seq,
                ..Default::default()
            };
            FlightDataEncoderBuilder::new()
                .with_metadata(bytes::Bytes::from(meta.encode_to_vec()))
                .build(futures::stream::iter([Ok(batch.clone())]))
                .try_collect::<Vec<arrow_flight::FlightData>>()
                .await
                .unwrap()
        }
    };
    let send = |messages: Vec<arrow_flight::FlightData>| {
        let mut request = tonic::Request::new(futures::stream::iter(messages));
        request
            .metadata_mut()
            .insert("authorization", cluster.token.bearer().parse().unwrap());
        request
    };

    // The record batch message's first buffer with a length: made to reach
    // 2 GiB past the body.
    let mut bad = put(1).await;
    let message = bad.last_mut().unwrap();
    let mut header = message.data_header.to_vec();
    let body = message.data_body.len() as i64;
    let at = (0..header.len().saturating_sub(16))
        .step_by(8)
        .find(|&i| {
            let offset = i64::from_le_bytes(header[i..i + 8].try_into().unwrap());
            let length = i64::from_le_bytes(header[i + 8..i + 16].try_into().unwrap());
            offset == 0 && length > 0 && length <= body
        })
        .expect("a buffer entry at offset 0");
    header[at + 8..at + 16].copy_from_slice(&(body + (1 << 31)).to_le_bytes());
    message.data_header = bytes::Bytes::from(header);
    let status = flight.do_put(send(bad)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("Arrow IPC") || status.message().contains("Flight data"),
        "{}",
        status.message()
    );

    // The same connection and writer store a valid put.
    let mut acks = flight.do_put(send(put(2).await)).await.unwrap().into_inner();
    let ack = acks.message().await.unwrap().expect("an acknowledgement");
    let ack = signaldb::proto::PutAck::decode(ack.app_metadata).unwrap();
    assert_eq!((ack.seq, ack.rows, ack.duplicate), (2, 6, false));
    assert!(writer.writer().unwrap().buffered().0 > 0);
}
