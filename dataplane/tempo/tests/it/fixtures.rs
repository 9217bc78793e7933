//! The three golden traces and the search answers Tempo gave for them, built
//! by hand from the values in Tempo's responses.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use signaldb_tempo::{
    BuildInfo, ScopedTags, SearchMetrics, SearchResult, ServiceStats, SpanOut, SpanSetOut, TagScope, TraceSummary,
};

pub(crate) const T1: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub(crate) const T2: &str = "0af7651916cd43dd8448eb211c80319c";
pub(crate) const T3: &str = "00000000000000007f3a2c1b9d8e6f50";

pub(crate) fn id16(hex_id: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    hex::decode_to_slice(hex_id, &mut out).unwrap();
    out
}

pub(crate) fn id8(hex_id: &str) -> [u8; 8] {
    let mut out = [0u8; 8];
    hex::decode_to_slice(hex_id, &mut out).unwrap();
    out
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub(crate) fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.to_owned()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

fn b(key: &str, v: bool) -> KeyValue {
    kv(key, Value::BoolValue(v))
}

fn d(key: &str, v: f64) -> KeyValue {
    kv(key, Value::DoubleValue(v))
}

fn arr(key: &str, values: Vec<Value>) -> KeyValue {
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
    kind: i32,
    start: u64,
    end: u64,
    attributes: Vec<KeyValue>,
    events: Vec<span::Event>,
    links: Vec<span::Link>,
    status: Option<Status>,
}

fn span(spec: SpanSpec<'_>) -> Span {
    Span {
        trace_id: hex::decode(spec.trace).unwrap(),
        span_id: hex::decode(spec.id).unwrap(),
        parent_span_id: hex::decode(spec.parent).unwrap(),
        name: spec.name.to_owned(),
        kind: spec.kind,
        start_time_unix_nano: spec.start,
        end_time_unix_nano: spec.end,
        attributes: spec.attributes,
        events: spec.events,
        links: spec.links,
        status: spec.status,
        ..Default::default()
    }
}

fn event(time: u64, name: &str, attributes: Vec<KeyValue>) -> span::Event {
    span::Event {
        time_unix_nano: time,
        name: name.to_owned(),
        attributes,
        ..Default::default()
    }
}

fn status(message: &str, code: i32) -> Option<Status> {
    Some(Status {
        message: message.to_owned(),
        code,
    })
}

fn sdk_resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            s("deployment.environment", "golden"),
            s("host.name", "golden-host"),
            s("service.instance.id", "e95f2a24-8c81-4920-a577-f405140772d5"),
            s("service.version", "1.2.3"),
            s("telemetry.sdk.language", "python"),
            s("telemetry.sdk.name", "opentelemetry"),
            s("telemetry.sdk.version", "1.45.2"),
            s("service.name", service),
        ],
        ..Default::default()
    }
}

fn batch(resource: Resource, scope_name: &str, scope_version: &str, spans: Vec<Span>) -> Vec<ResourceSpans> {
    vec![ResourceSpans {
        resource: Some(resource),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: scope_name.to_owned(),
                version: scope_version.to_owned(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }]
}

const INTERNAL: i32 = 1;
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;
const OK: i32 = 1;
const ERROR: i32 = 2;

/// 4 spans from the OTLP/gRPC SDK exporter.
pub(crate) fn trace1() -> Vec<ResourceSpans> {
    let root = "00f067aa0ba902b7";
    let spans = vec![
        span(SpanSpec {
            trace: T1,
            id: "53995c3f42cd8ad8",
            parent: root,
            name: "db.query",
            kind: CLIENT,
            start: 1_795_567_887_420_106_559,
            end: 1_795_567_887_660_106_559,
            attributes: vec![
                s("db.system", "postgresql"),
                s("db.statement", "SELECT * FROM users WHERE id = $1"),
                i("db.rows", 0),
                s("net.peer.name", "db.local"),
                i("server.port", 5432),
            ],
            events: vec![event(
                1_795_567_887_610_106_559,
                "exception",
                vec![
                    s("exception.type", "TimeoutError"),
                    s("exception.message", "query timed out"),
                    b("retry", true),
                ],
            )],
            links: vec![span::Link {
                trace_id: hex::decode(T2).unwrap(),
                span_id: hex::decode("1111111111111111").unwrap(),
                attributes: vec![s("link.kind", "follows")],
                ..Default::default()
            }],
            status: status("query timed out", ERROR),
        }),
        span(SpanSpec {
            trace: T1,
            id: "b7ad6b7169203331",
            parent: root,
            name: "cache.get",
            kind: INTERNAL,
            start: 1_795_567_887_710_106_559,
            end: 1_795_567_887_730_106_559,
            attributes: vec![
                b("cache.hit", false),
                d("cache.ratio", 0.25),
                arr(
                    "cache.keys",
                    vec![Value::StringValue("a".into()), Value::StringValue("b".into())],
                ),
                arr(
                    "cache.sizes",
                    vec![Value::IntValue(1), Value::IntValue(2), Value::IntValue(3)],
                ),
            ],
            events: vec![],
            links: vec![],
            // Unset status left out: Tempo always shows it, as `{}`.
            status: None,
        }),
        span(SpanSpec {
            trace: T1,
            id: "e457b5a2e4d86bd1",
            parent: root,
            name: "GET http://upstream.test/x",
            kind: CLIENT,
            start: 1_795_567_887_810_106_559,
            end: 1_795_567_888_310_106_559,
            attributes: vec![
                i("http.response.status_code", 503),
                s("peer.service", "upstream"),
                s("http.request.method", "GET"),
            ],
            events: vec![],
            links: vec![],
            status: status("", OK),
        }),
        span(SpanSpec {
            trace: T1,
            id: root,
            parent: "",
            name: "GET /api/users",
            kind: SERVER,
            start: 1_795_567_887_410_106_559,
            end: 1_795_567_888_410_106_559,
            attributes: vec![
                s("url.full", "http://example.test/api/users?id=7"),
                i("http.response.status_code", 200),
                s("user_agent.original", "golden/1.0"),
                s("http.request.method", "GET"),
                s("http.route", "/api/users"),
                s("http.method", "GET"),
                i("http.status_code", 200),
            ],
            events: vec![event(1_795_567_888_360_106_559, "request.done", vec![i("bytes", 1234)])],
            links: vec![],
            status: Some(Status::default()),
        }),
    ];
    batch(sdk_resource("golden-grpc-svc"), "golden.tracer", "0.1.0", spans)
}

/// 2 spans from the OTLP/HTTP protobuf exporter.
pub(crate) fn trace2() -> Vec<ResourceSpans> {
    let spans = vec![
        span(SpanSpec {
            trace: T2,
            id: "2222222222222222",
            parent: "1111111111111111",
            name: "payment.charge",
            kind: PRODUCER,
            start: 1_795_567_887_915_106_559,
            end: 1_795_567_887_965_106_559,
            attributes: vec![s("messaging.system", "kafka"), d("amount", 42.5)],
            events: vec![],
            links: vec![],
            status: None,
        }),
        span(SpanSpec {
            trace: T2,
            id: "1111111111111111",
            parent: "",
            name: "POST /checkout",
            kind: SERVER,
            start: 1_795_567_887_910_106_559,
            end: 1_795_567_888_010_106_559,
            attributes: vec![
                i("http.response.status_code", 201),
                s("http.request.method", "POST"),
                s("http.route", "/checkout"),
            ],
            events: vec![event(1_795_567_887_911_106_559, "checkout.started", vec![])],
            links: vec![],
            status: status("", OK),
        }),
    ];
    batch(sdk_resource("golden-http-svc"), "golden.http.tracer", "", spans)
}

/// 2 spans sent as raw OTLP/HTTP JSON.
pub(crate) fn trace3() -> Vec<ResourceSpans> {
    let spans = vec![
        span(SpanSpec {
            trace: T3,
            id: "aaaaaaaaaaaaaaaa",
            parent: "",
            name: "consume orders",
            kind: CONSUMER,
            start: 1_795_567_888_410_106_559,
            end: 1_795_567_888_440_106_559,
            attributes: vec![s("messaging.destination.name", "orders"), i("batch.size", 17)],
            events: vec![],
            links: vec![],
            status: None,
        }),
        span(SpanSpec {
            trace: T3,
            id: "bbbbbbbbbbbbbbbb",
            parent: "aaaaaaaaaaaaaaaa",
            name: "process order",
            kind: INTERNAL,
            start: 1_795_567_888_411_106_559,
            end: 1_795_567_888_430_106_559,
            attributes: vec![s("order.id", "o-1")],
            events: vec![],
            links: vec![],
            status: status("bad order", ERROR),
        }),
    ];
    let resource = Resource {
        attributes: vec![
            s("service.name", "golden-json-svc"),
            s("k8s.namespace.name", "golden-ns"),
        ],
        ..Default::default()
    };
    batch(resource, "golden.json", "9.9", spans)
}

fn summary(trace: &str) -> TraceSummary {
    let (service, name, start, duration_ms) = match trace {
        T1 => ("golden-grpc-svc", "GET /api/users", 1_795_567_887_410_106_559, 1000),
        T2 => ("golden-http-svc", "POST /checkout", 1_795_567_887_910_106_559, 100),
        _ => ("golden-json-svc", "consume orders", 1_795_567_888_410_106_559, 30),
    };
    TraceSummary {
        trace_id: id16(trace),
        root_service_name: service.to_owned(),
        root_trace_name: name.to_owned(),
        start_time_unix_nano: start,
        duration_ms,
        ..Default::default()
    }
}

fn with_spans(trace: &str, matched: u32, spans: Vec<SpanOut>, stats: (&str, u32, u32)) -> TraceSummary {
    let mut t = summary(trace);
    t.span_sets = vec![SpanSetOut {
        spans,
        matched,
        attributes: vec![],
    }];
    t.service_stats = BTreeMap::from([(
        stats.0.to_owned(),
        ServiceStats {
            span_count: stats.1,
            error_count: stats.2,
        },
    )]);
    t
}

fn hit(id: &str, name: Option<&str>, start: u64, duration: u64, attributes: Vec<KeyValue>) -> SpanOut {
    SpanOut {
        span_id: id8(id),
        name: name.map(str::to_owned),
        start_time_unix_nano: start,
        duration_nanos: duration,
        attributes,
    }
}

fn metrics(inspected_traces: u32, inspected_bytes: u64) -> SearchMetrics {
    SearchMetrics {
        inspected_traces,
        inspected_bytes,
        completed_jobs: 2,
        total_jobs: 2,
    }
}

/// `q={status=error}`.
pub(crate) fn search_status_error() -> SearchResult {
    SearchResult {
        traces: vec![
            with_spans(
                T3,
                1,
                vec![hit(
                    "bbbbbbbbbbbbbbbb",
                    None,
                    1_795_567_888_411_106_559,
                    19_000_000,
                    vec![s("status", "error")],
                )],
                ("golden-json-svc", 2, 1),
            ),
            with_spans(
                T1,
                1,
                vec![hit(
                    "53995c3f42cd8ad8",
                    None,
                    1_795_567_887_420_106_559,
                    240_000_000,
                    vec![s("status", "error")],
                )],
                ("golden-grpc-svc", 4, 1),
            ),
        ],
        metrics: metrics(0, 41553),
    }
}

/// `tags=service.name=golden-grpc-svc`.
pub(crate) fn search_tags_service() -> SearchResult {
    SearchResult {
        traces: vec![summary(T1)],
        metrics: metrics(6, 40534),
    }
}

/// `q={}&limit=2&spss=1`.
pub(crate) fn search_all_limit() -> SearchResult {
    SearchResult {
        traces: vec![
            with_spans(
                T3,
                2,
                vec![hit(
                    "aaaaaaaaaaaaaaaa",
                    None,
                    1_795_567_888_410_106_559,
                    30_000_000,
                    vec![],
                )],
                ("golden-json-svc", 2, 1),
            ),
            with_spans(
                T2,
                2,
                vec![hit(
                    "2222222222222222",
                    None,
                    1_795_567_887_915_106_559,
                    50_000_000,
                    vec![],
                )],
                ("golden-http-svc", 2, 0),
            ),
        ],
        metrics: metrics(0, 41618),
    }
}

/// `q={name="db.query"} | select(span.db.system, span.db.statement)`.
pub(crate) fn search_name_select() -> SearchResult {
    SearchResult {
        traces: vec![with_spans(
            T1,
            1,
            vec![hit(
                "53995c3f42cd8ad8",
                Some("db.query"),
                1_795_567_887_420_106_559,
                240_000_000,
                vec![
                    s("db.system", "postgresql"),
                    s("db.statement", "SELECT * FROM users WHERE id = $1"),
                ],
            )],
            ("golden-grpc-svc", 4, 1),
        )],
        metrics: metrics(0, 42899),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Every scope with its names, in the order of Tempo's JSON answer, plus an
/// empty scope the router must drop.
pub(crate) fn tag_scopes() -> Vec<ScopedTags> {
    vec![
        ScopedTags {
            scope: TagScope::Intrinsic,
            names: names(signaldb_tempo::INTRINSIC_TAG_NAMES),
        },
        ScopedTags {
            scope: TagScope::Resource,
            names: names(&[
                "deployment.environment",
                "host.name",
                "k8s.namespace.name",
                "service.instance.id",
                "service.name",
                "service.version",
                "telemetry.sdk.language",
                "telemetry.sdk.name",
                "telemetry.sdk.version",
            ]),
        },
        ScopedTags {
            scope: TagScope::Span,
            names: names(&[
                "amount",
                "batch.size",
                "cache.hit",
                "cache.keys",
                "cache.ratio",
                "cache.sizes",
                "db.rows",
                "db.statement",
                "db.system",
                "http.method",
                "http.request.method",
                "http.response.status_code",
                "http.route",
                "http.status_code",
                "messaging.destination.name",
                "messaging.system",
                "net.peer.name",
                "order.id",
                "peer.service",
                "server.port",
                "url.full",
                "user_agent.original",
            ]),
        },
        ScopedTags {
            scope: TagScope::Event,
            names: names(&["bytes", "exception.message", "exception.type", "retry"]),
        },
        ScopedTags {
            scope: TagScope::Link,
            names: names(&["link.kind"]),
        },
        ScopedTags {
            scope: TagScope::Instrumentation,
            names: vec![],
        },
    ]
}

/// What Tempo 3.0.3 reported.
pub(crate) fn golden_build_info() -> BuildInfo {
    BuildInfo {
        version: "3.0.3".into(),
        revision: "1900ed7bb5cad1a3edc285783d7d4ac4278337dc".into(),
        branch: "v3.0.3".into(),
        build_user: String::new(),
        build_date: String::new(),
        go_version: "go1.26.6".into(),
    }
}
