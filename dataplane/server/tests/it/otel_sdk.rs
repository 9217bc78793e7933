//! Traces sent by the real OpenTelemetry Rust SDK exporters (gRPC and
//! HTTP/protobuf) come back from the Parquet files exactly once and equal.

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Array, Context, KeyValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::common::*;

const T0: u64 = 1_795_567_888_410_106_559;

fn at(offset_ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(T0 + offset_ns)
}

pub(crate) struct Sent {
    pub(crate) root: SpanContext,
    pub(crate) child: SpanContext,
    linked: SpanContext,
}

/// Emits a root span (server, error status, typed attributes, an event) and a
/// child (client, with a link), with explicit times.
pub(crate) fn emit(provider: &SdkTracerProvider) -> Sent {
    let tracer = provider.tracer("signaldb-it");
    let linked = SpanContext::new(
        TraceId::from_bytes([7; 16]),
        SpanId::from_bytes([8; 8]),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let mut root = tracer
        .span_builder("GET /orders")
        .with_kind(SpanKind::Server)
        .with_start_time(at(0))
        .with_attributes(vec![
            KeyValue::new("http.response.status_code", 500i64),
            KeyValue::new("cache.hit", false),
            KeyValue::new("load.ratio", 0.25),
            KeyValue::new("tags", Value::Array(Array::String(vec!["a".into(), "b".into()]))),
            KeyValue::new("url.path", "/orders"),
        ])
        .start(&tracer);
    root.add_event_with_timestamp("cache miss", at(1_000), vec![KeyValue::new("cache.key", "k1")]);
    root.set_status(Status::error("upstream failed"));
    let root_cx = root.span_context().clone();
    let parent = Context::new().with_remote_span_context(root_cx.clone());
    let mut child = tracer.build_with_context(
        tracer
            .span_builder("SELECT orders")
            .with_kind(SpanKind::Client)
            .with_start_time(at(2_000))
            .with_attributes(vec![KeyValue::new("db.system", "postgresql")])
            .with_links(vec![Link::new(
                linked.clone(),
                vec![KeyValue::new("link.kind", "follows")],
                0,
            )]),
        &parent,
    );
    let child_cx = child.span_context().clone();
    child.end_with_timestamp(at(5_000));
    root.end_with_timestamp(at(9_000));
    Sent {
        root: root_cx,
        child: child_cx,
        linked,
    }
}

pub(crate) fn check(stored: &[opentelemetry_proto::tonic::trace::v1::ResourceSpans], sent: &Sent, service: &str) {
    let by_id = spans_by_id(stored);
    let key = |c: &SpanContext| (c.trace_id().to_bytes().to_vec(), c.span_id().to_bytes().to_vec());
    let (n, root) = by_id.get(&key(&sent.root)).expect("root span stored");
    assert_eq!(*n, 1, "root span stored once");
    let (n, child) = by_id.get(&key(&sent.child)).expect("child span stored");
    assert_eq!(*n, 1, "child span stored once");

    assert_eq!(root.name, "GET /orders");
    assert_eq!(root.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(root.start_time_unix_nano, T0);
    assert_eq!(root.end_time_unix_nano, T0 + 9_000);
    assert!(root.parent_span_id.is_empty());
    let status = root.status.as_ref().expect("status");
    assert_eq!((status.code, status.message.as_str()), (2, "upstream failed"));
    let attr = |name: &str| {
        root.attributes
            .iter()
            .find(|kv| kv.key == name)
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
            .unwrap_or_else(|| panic!("attribute {name} missing"))
    };
    assert_eq!(attr("http.response.status_code"), any_value::Value::IntValue(500));
    assert_eq!(attr("cache.hit"), any_value::Value::BoolValue(false));
    assert_eq!(attr("load.ratio"), any_value::Value::DoubleValue(0.25));
    assert_eq!(attr("url.path"), any_value::Value::StringValue("/orders".into()));
    match attr("tags") {
        any_value::Value::ArrayValue(a) => {
            let v: Vec<_> = a.values.into_iter().filter_map(|v| v.value).collect();
            assert_eq!(
                v,
                vec![
                    any_value::Value::StringValue("a".into()),
                    any_value::Value::StringValue("b".into())
                ]
            );
        }
        other => panic!("tags is {other:?}"),
    }
    assert_eq!(root.events.len(), 1);
    assert_eq!(root.events[0].name, "cache miss");
    assert_eq!(root.events[0].time_unix_nano, T0 + 1_000);
    assert_eq!(root.events[0].attributes[0].key, "cache.key");

    assert_eq!(child.kind, 3, "SPAN_KIND_CLIENT");
    assert_eq!(child.parent_span_id, sent.root.span_id().to_bytes().to_vec());
    assert_eq!(
        (child.start_time_unix_nano, child.end_time_unix_nano),
        (T0 + 2_000, T0 + 5_000)
    );
    assert_eq!(child.links.len(), 1);
    assert_eq!(child.links[0].trace_id, sent.linked.trace_id().to_bytes().to_vec());
    assert_eq!(child.links[0].span_id, sent.linked.span_id().to_bytes().to_vec());
    assert_eq!(child.links[0].attributes[0].key, "link.kind");

    let resource = stored
        .iter()
        .find(|r| {
            r.scope_spans
                .iter()
                .any(|s| s.spans.iter().any(|sp| sp.span_id == root.span_id))
        })
        .and_then(|r| r.resource.clone())
        .expect("resource");
    let svc = resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .expect("service.name");
    assert_eq!(
        svc.value.as_ref().and_then(|v| v.value.clone()),
        Some(any_value::Value::StringValue(service.into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_grpc_and_http_exporters_round_trip_through_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_all(test_config(dir.path())).await;
    let grpc = format!("http://{}", running.endpoints.otlp_grpc.unwrap());
    let http = format!("http://{}/v1/traces", running.endpoints.otlp_http.unwrap());

    let sent = tokio::task::spawn_blocking(move || {
        let grpc_exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(grpc)
            .build()
            .unwrap();
        let http_exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(http)
            .build()
            .unwrap();
        let mut sent = Vec::new();
        for (service, provider) in [
            ("sdk-grpc-svc", provider(grpc_exporter, "sdk-grpc-svc")),
            ("sdk-http-svc", provider(http_exporter, "sdk-http-svc")),
        ] {
            sent.push((service, emit(&provider)));
            provider.shutdown().unwrap();
        }
        sent
    })
    .await
    .unwrap();

    deliver_and_flush(&running).await;
    let stored = stored_spans(&dir.path().join("objects"));
    assert_eq!(spans_by_id(&stored).len(), 4, "two spans per exporter, nothing else");
    for (service, s) in &sent {
        check(&stored, s, service);
    }
    running.shutdown().await;
}

fn provider<E: opentelemetry_sdk::trace::SpanExporter + 'static>(exporter: E, service: &str) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
        .build()
}
