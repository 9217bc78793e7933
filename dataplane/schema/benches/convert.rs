//! Throughput of the OTLP <-> Arrow trace conversion on this machine, in
//! spans per second, for a light and a heavy request.
//!
//! Run with `cargo bench -p signaldb-schema --bench convert`.

use std::error::Error;
use std::hint::black_box;
use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use signaldb_schema::traces::{arrow_to_otlp, otlp_to_arrow, otlp_to_arrow_partitioned, span_count};

type Result<T = (), E = Box<dyn Error>> = std::result::Result<T, E>;

/// Timed rounds per case, after one warm-up round.
const ROUNDS: usize = 20;

fn main() -> Result {
    for (name, span_attrs, resource_attrs) in [("light", 4, 4), ("heavy", 10, 14)] {
        let resource_spans = bench_request(span_attrs, resource_attrs);
        let n = span_count(&resource_spans);
        let bytes = ExportTraceServiceRequest {
            resource_spans: resource_spans.clone(),
        }
        .encode_to_vec();
        println!(
            "{name}: {span_attrs} span attributes, {} resource attributes, {} bytes/span",
            resource_attrs + 1,
            bytes.len() / n
        );
        rate("protobuf decode", n, || {
            black_box(ExportTraceServiceRequest::decode(black_box(&bytes[..]))?);
            Ok(())
        })?;
        rate("otlp_to_arrow", n, || {
            black_box(otlp_to_arrow(black_box(&resource_spans))?);
            Ok(())
        })?;
        rate("protobuf decode + otlp_to_arrow", n, || {
            let req = ExportTraceServiceRequest::decode(black_box(&bytes[..]))?;
            black_box(otlp_to_arrow(&req.resource_spans)?);
            Ok(())
        })?;
        rate("otlp_to_arrow_partitioned (3)", n, || {
            black_box(otlp_to_arrow_partitioned(black_box(&resource_spans), 3, |t| {
                usize::from(t[0]) % 3
            })?);
            Ok(())
        })?;
        let batch = otlp_to_arrow(&resource_spans)?;
        rate("arrow_to_otlp", n, || {
            black_box(arrow_to_otlp(black_box(&batch))?);
            Ok(())
        })?;
    }
    Ok(())
}

/// Runs `f` once to warm up, then [`ROUNDS`] times, and prints the rate in
/// spans per second, `spans` being the spans one call handles.
fn rate(label: &str, spans: usize, mut f: impl FnMut() -> Result) -> Result {
    f()?;
    let t = Instant::now();
    for _ in 0..ROUNDS {
        f()?;
    }
    let per_s = (spans * ROUNDS) as f64 / t.elapsed().as_secs_f64();
    println!("{label:>40}: {per_s:>9.0} spans/s");
    Ok(())
}

/// A request of 10 resources x 1000 spans: each span with `span_attrs`
/// attributes (HTTP-like), each resource with `resource_attrs` string
/// attributes plus `process.command_args` (an array); every tenth span has an
/// event.
fn bench_request(span_attrs: usize, resource_attrs: usize) -> Vec<ResourceSpans> {
    let resource = Resource {
        attributes: (0..resource_attrs)
            .map(|i| kv(&format!("resource.attr.{i}"), s("some-resource-value-1234")))
            .chain([kv("process.command_args", nested_array())])
            .collect(),
        dropped_attributes_count: 0,
        entity_refs: vec![],
    };
    let attrs = [
        kv("http.method", s("GET")),
        kv("http.route", s("/api/v1/things/{id}")),
        kv("http.status_code", Value::IntValue(200)),
        kv("net.peer.name", s("10.0.0.12")),
        kv("net.peer.port", Value::IntValue(44312)),
        kv("user_agent.original", s("Mozilla/5.0 (X11; Linux x86_64)")),
        kv("thread.id", Value::IntValue(17)),
        kv("sampled", Value::BoolValue(true)),
        kv("db.statement", s("SELECT * FROM things WHERE id = $1")),
        kv("ratio", Value::DoubleValue(0.25)),
    ];
    let span = |n: u32| Span {
        trace_id: n.to_le_bytes().repeat(4),
        span_id: n.to_le_bytes().repeat(2),
        parent_span_id: (n + 1).to_le_bytes().repeat(2),
        name: "GET /api/v1/things/{id}".into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(n),
        end_time_unix_nano: 1_700_000_000_000_100_000 + u64::from(n),
        attributes: attrs.iter().cycle().take(span_attrs).cloned().collect(),
        events: if n.is_multiple_of(10) {
            vec![Event {
                time_unix_nano: 1,
                name: "log".into(),
                attributes: vec![kv("m", s("x"))],
                dropped_attributes_count: 0,
            }]
        } else {
            vec![]
        },
        status: Some(Status {
            message: String::new(),
            code: 1,
        }),
        ..Default::default()
    };
    (0..10)
        .map(|r| ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.http".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                spans: (0..1000).map(|i| span(r * 1000 + i)).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect()
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

/// An array holding a string, an int, an empty value, a key-value list and an
/// empty array.
fn nested_array() -> Value {
    Value::ArrayValue(ArrayValue {
        values: vec![
            AnyValue { value: Some(s("a")) },
            AnyValue {
                value: Some(Value::IntValue(-3)),
            },
            AnyValue { value: None },
            AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![kv("inner", Value::DoubleValue(2.5)), KeyValue::default()],
                })),
            },
            AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values: vec![] })),
            },
        ],
    })
}
