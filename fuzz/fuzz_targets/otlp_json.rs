//! Any bytes as an OTLP/JSON trace export (`POST /v1/traces` with
//! `Content-Type: application/json`), along the acceptor's path: JSON
//! decoding as `acceptor::http` does it, validation (with small limits, so
//! that truncation and refusals are reached by inputs of fuzzer size), the
//! conversion to span rows before the acknowledgement, the WAL record and
//! its replay and conversion after a restart. Decoding and validation may refuse; nothing panics, and a request
//! the acceptor accepted (acknowledged to the client) always replays and
//! converts, one row per span, and converts back with every span.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use signaldb::acceptor::pending_from_wal;
use signaldb::acceptor::validate::{Limits, validate_traces};
use signaldb::proto::{AcceptorWalRecord, SIGNAL_TRACES};
use signaldb_schema::traces::{arrow_to_otlp, otlp_to_arrow, span_count};

/// The longest string or bytes value anywhere in `attrs`, arrays and
/// key-value lists included.
fn longest_value(attrs: &[KeyValue]) -> usize {
    fn of(v: Option<&AnyValue>) -> usize {
        match v.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s.len(),
            Some(any_value::Value::BytesValue(b)) => b.len(),
            Some(any_value::Value::ArrayValue(a)) => a.values.iter().map(|v| of(Some(v))).max().unwrap_or(0),
            Some(any_value::Value::KvlistValue(l)) => longest_value(&l.values),
            _ => 0,
        }
    }
    attrs.iter().map(|kv| of(kv.value.as_ref())).max().unwrap_or(0)
}

/// The longest attribute value of a request: resources, scopes, spans,
/// events and links.
fn longest_in(request: &ExportTraceServiceRequest) -> usize {
    let mut longest = 0;
    for rs in &request.resource_spans {
        longest = longest.max(rs.resource.as_ref().map_or(0, |r| longest_value(&r.attributes)));
        for ss in &rs.scope_spans {
            longest = longest.max(ss.scope.as_ref().map_or(0, |s| longest_value(&s.attributes)));
            for span in &ss.spans {
                longest = longest.max(longest_value(&span.attributes));
                for e in &span.events {
                    longest = longest.max(longest_value(&e.attributes));
                }
                for l in &span.links {
                    longest = longest.max(longest_value(&l.attributes));
                }
            }
        }
    }
    longest
}

fuzz_target!(|data: &[u8]| {
    // acceptor::http::decode_and_export, Encoding::Json.
    let Ok(mut request) = serde_json::from_slice::<ExportTraceServiceRequest>(data) else {
        return;
    };
    // Acceptor::export_traces, with limits small enough for fuzzer-sized
    // inputs to be cut and refused.
    let limits = Limits {
        max_value: 16,
        max_attributes: 8,
        max_converted: 64 * 1024,
    };
    let spans = span_count(&request.resource_spans);
    let Ok(summary) = validate_traces(&mut request, limits) else {
        return;
    };
    assert_eq!(summary.spans, spans, "validation counts every span");
    assert!(
        longest_in(&request) <= limits.max_value,
        "every value is cut to max_value"
    );
    // The acceptor converts the validated request to span rows before it
    // acknowledges it: an accepted request always converts.
    let rows = otlp_to_arrow(&request.resource_spans).expect("an accepted request converts to span rows");
    assert_eq!(rows.num_rows(), summary.spans, "one row per accepted span");
    let back = arrow_to_otlp(&rows).expect("rows we made convert back");
    assert_eq!(span_count(&back), rows.num_rows());
    // The WAL record the acceptor appends (JSON is logged as protobuf), and
    // its replay after a restart, which decodes and converts it again.
    let encoded = request.encode_to_vec();
    let record = AcceptorWalRecord {
        tenant: config_tenant(),
        signal: SIGNAL_TRACES,
        request: encoded.clone().into(),
    };
    pending_from_wal(1, &record.encode_to_vec()).expect("a record the acceptor wrote replays");
    let replayed = ExportTraceServiceRequest::decode(&encoded[..]).expect("the logged request decodes");
    assert_eq!(
        replayed.encode_to_vec(),
        encoded,
        "the logged request decodes to itself"
    );
    let again = otlp_to_arrow(&replayed.resource_spans).expect("a replayed request converts");
    assert_eq!(again.num_rows(), rows.num_rows());
});

/// The tenant of a single-tenant acceptor.
fn config_tenant() -> String {
    signaldb_config::TenancyConfig::default()
        .default_tenant
        .as_str()
        .to_owned()
}
