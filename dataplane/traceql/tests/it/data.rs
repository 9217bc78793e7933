//! The fixed data set: five traces, three modelled on Tempo's golden traces.
//!
//! | label    | trace id                           | services                   | spans (kind, duration)                                            |
//! |----------|------------------------------------|----------------------------|-------------------------------------------------------------------|
//! | `json`   | `00000000000000007f3a2c1b9d8e6f50` | golden-json-svc            | consume orders (CONSUMER root, 30ms), process order (INTERNAL 19ms, ERROR) |
//! | `http`   | `0af7651916cd43dd8448eb211c80319c` | golden-http-svc            | payment.charge (PRODUCER 50ms), POST /checkout (SERVER root 100ms, OK) |
//! | `grpc`   | `4bf92f3577b34da6a3ce929d0e0e4736` | golden-grpc-svc            | db.query (CLIENT 240ms, ERROR), cache.get (INTERNAL 20ms), GET http://upstream.test/x (CLIENT 500ms, OK), GET /api/users (SERVER root 1s) |
//! | `multi`  | `5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a` | frontend-svc, backend-svc  | GET /home (SERVER root 300ms), render (INTERNAL 50ms), SELECT users (CLIENT 100ms) |
//! | `orphan` | `6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b` | golden-orphan-svc          | orphan.a (CLIENT 5ms, ERROR), orphan.b (INTERNAL 2s); no root span |
//!
//! Trace durations: json 30ms, http 100ms, grpc 1s, multi 300ms, orphan
//! 2.01s. Rows are grouped by trace, in the order of the table.

use arrow::array::RecordBatch;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

pub(crate) const BASE: u64 = 1_795_567_887_410_106_559;
pub(crate) const MS: u64 = 1_000_000;

pub(crate) const JSON: &str = "00000000000000007f3a2c1b9d8e6f50";
pub(crate) const HTTP: &str = "0af7651916cd43dd8448eb211c80319c";
pub(crate) const GRPC: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub(crate) const MULTI: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
pub(crate) const ORPHAN: &str = "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b";

/// Trace labels by id.
pub(crate) const LABELS: [(&str, &str); 5] = [
    (JSON, "json"),
    (HTTP, "http"),
    (GRPC, "grpc"),
    (MULTI, "multi"),
    (ORPHAN, "orphan"),
];

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

fn f(key: &str, v: f64) -> KeyValue {
    kv(key, Value::DoubleValue(v))
}

fn b(key: &str, v: bool) -> KeyValue {
    kv(key, Value::BoolValue(v))
}

fn array(key: &str, values: Vec<Value>) -> KeyValue {
    kv(
        key,
        Value::ArrayValue(ArrayValue {
            values: values.into_iter().map(|v| AnyValue { value: Some(v) }).collect(),
        }),
    )
}

struct SpanSpec<'a> {
    trace: &'a str,
    id: &'a str,
    parent: &'a str,
    name: &'a str,
    kind: SpanKind,
    start_ms: u64,
    duration_ms: u64,
    attributes: Vec<KeyValue>,
    status: Option<(StatusCode, &'a str)>,
    events: Vec<Event>,
    links: Vec<Link>,
}

fn span(spec: SpanSpec<'_>) -> Span {
    let start = BASE + spec.start_ms * MS;
    Span {
        trace_id: unhex(spec.trace),
        span_id: unhex(spec.id),
        parent_span_id: unhex(spec.parent),
        name: spec.name.into(),
        kind: spec.kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + spec.duration_ms * MS,
        attributes: spec.attributes,
        events: spec.events,
        links: spec.links,
        status: spec.status.map(|(code, message)| Status {
            message: message.into(),
            code: code as i32,
        }),
        ..Default::default()
    }
}

fn resource_spans(resource: Vec<KeyValue>, scope: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: resource,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: scope.into(),
                version: "0.1.0".into(),
                ..Default::default()
            }),
            spans,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

fn event(name: &str, at_ms: u64, attributes: Vec<KeyValue>) -> Event {
    Event {
        time_unix_nano: BASE + at_ms * MS,
        name: name.into(),
        attributes,
        dropped_attributes_count: 0,
    }
}

fn grpc_spans() -> Vec<Span> {
    vec![
        span(SpanSpec {
            trace: GRPC,
            id: "53995c3f42cd8ad8",
            parent: "00f067aa0ba902b7",
            name: "db.query",
            kind: SpanKind::Client,
            start_ms: 10,
            duration_ms: 240,
            attributes: vec![
                s("db.system", "postgresql"),
                s("db.statement", "SELECT * FROM users WHERE id = $1"),
                i("db.rows", 0),
                s("net.peer.name", "db.local"),
                i("server.port", 5432),
            ],
            status: Some((StatusCode::Error, "query timed out")),
            events: vec![event(
                "exception",
                200,
                vec![
                    s("exception.type", "TimeoutError"),
                    s("exception.message", "query timed out"),
                    b("retry", true),
                ],
            )],
            links: vec![Link {
                trace_id: unhex(HTTP),
                span_id: unhex("1111111111111111"),
                attributes: vec![s("link.kind", "follows")],
                ..Default::default()
            }],
        }),
        span(SpanSpec {
            trace: GRPC,
            id: "b7ad6b7169203331",
            parent: "00f067aa0ba902b7",
            name: "cache.get",
            kind: SpanKind::Internal,
            start_ms: 300,
            duration_ms: 20,
            attributes: vec![
                b("cache.hit", false),
                f("cache.ratio", 0.25),
                array(
                    "cache.keys",
                    vec![Value::StringValue("a".into()), Value::StringValue("b".into())],
                ),
                array(
                    "cache.sizes",
                    vec![Value::IntValue(1), Value::IntValue(2), Value::IntValue(3)],
                ),
            ],
            status: None,
            events: vec![],
            links: vec![],
        }),
        span(SpanSpec {
            trace: GRPC,
            id: "e457b5a2e4d86bd1",
            parent: "00f067aa0ba902b7",
            name: "GET http://upstream.test/x",
            kind: SpanKind::Client,
            start_ms: 400,
            duration_ms: 500,
            attributes: vec![
                i("http.response.status_code", 503),
                s("peer.service", "upstream"),
                s("http.request.method", "GET"),
            ],
            status: Some((StatusCode::Ok, "")),
            events: vec![],
            links: vec![],
        }),
        span(SpanSpec {
            trace: GRPC,
            id: "00f067aa0ba902b7",
            parent: "",
            name: "GET /api/users",
            kind: SpanKind::Server,
            start_ms: 0,
            duration_ms: 1000,
            attributes: vec![
                s("url.full", "http://example.test/api/users?id=7"),
                i("http.response.status_code", 200),
                s("user_agent.original", "golden/1.0"),
                s("http.request.method", "GET"),
                s("http.route", "/api/users"),
                s("http.method", "GET"),
                i("http.status_code", 200),
            ],
            status: None,
            events: vec![event("request.done", 950, vec![i("bytes", 1234)])],
            links: vec![],
        }),
    ]
}

fn grpc_resource() -> Vec<KeyValue> {
    vec![
        s("deployment.environment", "golden"),
        s("host.name", "golden-host"),
        s("service.version", "1.2.3"),
        s("telemetry.sdk.language", "python"),
        s("service.name", "golden-grpc-svc"),
    ]
}

/// The data set as OTLP; `split_grpc`: each grpc span in its own
/// `ResourceSpans` (as the SDK's simple processor exports them).
pub(crate) fn otlp(split_grpc: bool) -> Vec<ResourceSpans> {
    let json = resource_spans(
        vec![
            s("service.name", "golden-json-svc"),
            s("k8s.namespace.name", "golden-ns"),
        ],
        "golden.json",
        vec![
            span(SpanSpec {
                trace: JSON,
                id: "aaaaaaaaaaaaaaaa",
                parent: "",
                name: "consume orders",
                kind: SpanKind::Consumer,
                start_ms: 1000,
                duration_ms: 30,
                attributes: vec![s("messaging.destination.name", "orders"), i("batch.size", 17)],
                status: None,
                events: vec![],
                links: vec![],
            }),
            span(SpanSpec {
                trace: JSON,
                id: "bbbbbbbbbbbbbbbb",
                parent: "aaaaaaaaaaaaaaaa",
                name: "process order",
                kind: SpanKind::Internal,
                start_ms: 1001,
                duration_ms: 19,
                attributes: vec![s("order.id", "o-1")],
                status: Some((StatusCode::Error, "bad order")),
                events: vec![],
                links: vec![],
            }),
        ],
    );
    let http = resource_spans(
        vec![
            s("service.name", "golden-http-svc"),
            s("deployment.environment", "golden"),
        ],
        "golden.http.tracer",
        vec![
            span(SpanSpec {
                trace: HTTP,
                id: "2222222222222222",
                parent: "1111111111111111",
                name: "payment.charge",
                kind: SpanKind::Producer,
                start_ms: 505,
                duration_ms: 50,
                attributes: vec![
                    s("messaging.system", "kafka"),
                    f("amount", 42.5),
                    s("attr with space", "v"),
                ],
                status: None,
                events: vec![],
                links: vec![],
            }),
            span(SpanSpec {
                trace: HTTP,
                id: "1111111111111111",
                parent: "",
                name: "POST /checkout",
                kind: SpanKind::Server,
                start_ms: 500,
                duration_ms: 100,
                attributes: vec![
                    i("http.response.status_code", 201),
                    s("http.request.method", "POST"),
                    s("http.route", "/checkout"),
                ],
                status: Some((StatusCode::Ok, "")),
                events: vec![event("checkout.started", 501, vec![])],
                links: vec![],
            }),
        ],
    );
    let grpc: Vec<ResourceSpans> = if split_grpc {
        grpc_spans()
            .into_iter()
            .map(|sp| resource_spans(grpc_resource(), "golden.tracer", vec![sp]))
            .collect()
    } else {
        vec![resource_spans(grpc_resource(), "golden.tracer", grpc_spans())]
    };
    let frontend = resource_spans(
        vec![
            s("service.name", "frontend-svc"),
            s("region", "eu"),
            s("shadow", "resource-frontend"),
        ],
        "frontend",
        vec![
            span(SpanSpec {
                trace: MULTI,
                id: "f1f1f1f1f1f1f1f1",
                parent: "",
                name: "GET /home",
                kind: SpanKind::Server,
                start_ms: 2000,
                duration_ms: 300,
                attributes: vec![
                    s("shadow", "span-root"),
                    s("http.status_code", "404"),
                    s("http.request.method", "GET"),
                ],
                status: None,
                events: vec![],
                links: vec![],
            }),
            span(SpanSpec {
                trace: MULTI,
                id: "f3f3f3f3f3f3f3f3",
                parent: "f1f1f1f1f1f1f1f1",
                name: "render",
                kind: SpanKind::Internal,
                start_ms: 2200,
                duration_ms: 50,
                attributes: vec![
                    kv("payload", Value::BytesValue(vec![1, 2, 3])),
                    kv(
                        "settings",
                        Value::KvlistValue(KeyValueList {
                            values: vec![b("dark", true)],
                        }),
                    ),
                    b("flag", true),
                ],
                status: None,
                events: vec![],
                links: vec![],
            }),
        ],
    );
    let backend = resource_spans(
        vec![
            s("service.name", "backend-svc"),
            s("region", "us"),
            s("shadow", "resource-backend"),
        ],
        "backend",
        vec![span(SpanSpec {
            trace: MULTI,
            id: "f2f2f2f2f2f2f2f2",
            parent: "f1f1f1f1f1f1f1f1",
            name: "SELECT users",
            kind: SpanKind::Client,
            start_ms: 2050,
            duration_ms: 100,
            attributes: vec![s("db.system", "mysql"), i("db.rows", 5)],
            status: None,
            events: vec![],
            links: vec![],
        })],
    );
    let orphan = resource_spans(
        vec![s("service.name", "golden-orphan-svc")],
        "orphan",
        vec![
            span(SpanSpec {
                trace: ORPHAN,
                id: "0a0a0a0a0a0a0a0a",
                parent: "9999999999999999",
                name: "orphan.a",
                kind: SpanKind::Client,
                start_ms: 3000,
                duration_ms: 5,
                attributes: vec![i("http.status_code", 500)],
                status: Some((StatusCode::Error, "boom")),
                events: vec![],
                links: vec![],
            }),
            span(SpanSpec {
                trace: ORPHAN,
                id: "0b0b0b0b0b0b0b0b",
                parent: "9999999999999999",
                name: "orphan.b",
                kind: SpanKind::Internal,
                start_ms: 3010,
                duration_ms: 2000,
                attributes: vec![b("cache.hit", true)],
                status: None,
                events: vec![],
                links: vec![],
            }),
        ],
    );
    let mut out = vec![json, http];
    out.extend(grpc);
    out.extend([frontend, backend, orphan]);
    out
}

/// The data set as one batch of the span schema.
pub(crate) fn batch() -> RecordBatch {
    signaldb_schema::traces::otlp_to_arrow(&otlp(false)).unwrap()
}
