//! Tempo's `tempopb` response messages, as far as the HTTP API sends them,
//! with Tempo's field numbers. OTLP parts reuse `opentelemetry-proto`'s
//! messages, which share the wire format.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Status};

use crate::api;

/// `tempopb.Trace`: the body of `GET /api/traces/{id}` with
/// `Accept: application/protobuf` (same wire format as OTLP `TracesData`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Trace {
    /// The trace's spans, grouped by resource and scope.
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `tempopb.TraceByIDResponse`: the protobuf body of `GET /api/v2/traces/{id}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdResponse {
    /// The trace; present but empty when not found.
    #[prost(message, optional, tag = "1")]
    pub trace: Option<Trace>,
    /// Work counters.
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<TraceByIdMetrics>,
    /// `PartialStatus`: 0 complete, 1 partial.
    #[prost(int32, tag = "3")]
    pub status: i32,
    /// Why the trace is partial, if it is.
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `tempopb.TraceByIDMetrics`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct TraceByIdMetrics {
    /// Bytes read.
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
}

/// `tempopb.SearchResponse`: the protobuf body of `GET /api/search`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchResponse {
    /// Matching traces.
    #[prost(message, repeated, tag = "1")]
    pub traces: Vec<TraceSearchMetadata>,
    /// Work counters.
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<SearchMetrics>,
}

/// `tempopb.TraceSearchMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceSearchMetadata {
    /// Hex trace id without leading zeros.
    #[prost(string, tag = "1")]
    pub trace_id: String,
    /// Root span's service.
    #[prost(string, tag = "2")]
    pub root_service_name: String,
    /// Root span's name.
    #[prost(string, tag = "3")]
    pub root_trace_name: String,
    /// Trace start.
    #[prost(uint64, tag = "4")]
    pub start_time_unix_nano: u64,
    /// Trace duration.
    #[prost(uint32, tag = "5")]
    pub duration_ms: u32,
    /// Deprecated: the first of `span_sets`.
    #[prost(message, optional, tag = "6")]
    pub span_set: Option<SpanSet>,
    /// Matched spansets.
    #[prost(message, repeated, tag = "7")]
    pub span_sets: Vec<SpanSet>,
    /// Counts per service.
    #[prost(btree_map = "string, message", tag = "8")]
    pub service_stats: BTreeMap<String, ServiceStats>,
}

/// `tempopb.ServiceStats`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct ServiceStats {
    /// Spans of the service.
    #[prost(uint32, tag = "1")]
    pub span_count: u32,
    /// Error spans of the service.
    #[prost(uint32, tag = "2")]
    pub error_count: u32,
}

/// `tempopb.SpanSet`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanSet {
    /// Shown spans.
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<Span>,
    /// Total matching spans.
    #[prost(uint32, tag = "2")]
    pub matched: u32,
    /// Spanset attributes.
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

/// `tempopb.Span` (a search hit, not an OTLP span).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    /// 16 hex digits.
    #[prost(string, tag = "1")]
    pub span_id: String,
    /// Span name, when selected.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Span start.
    #[prost(uint64, tag = "3")]
    pub start_time_unix_nano: u64,
    /// Span duration.
    #[prost(uint64, tag = "4")]
    pub duration_nanos: u64,
    /// Touched attributes.
    #[prost(message, repeated, tag = "5")]
    pub attributes: Vec<KeyValue>,
}

/// `tempopb.SearchMetrics`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct SearchMetrics {
    /// Traces looked at.
    #[prost(uint32, tag = "1")]
    pub inspected_traces: u32,
    /// Bytes read.
    #[prost(uint64, tag = "2")]
    pub inspected_bytes: u64,
    /// Blocks in range.
    #[prost(uint32, tag = "3")]
    pub total_blocks: u32,
    /// Jobs done.
    #[prost(uint32, tag = "4")]
    pub completed_jobs: u32,
    /// Jobs planned.
    #[prost(uint32, tag = "5")]
    pub total_jobs: u32,
    /// Bytes of the blocks in range.
    #[prost(uint64, tag = "6")]
    pub total_block_bytes: u64,
    /// Spans looked at.
    #[prost(uint64, tag = "7")]
    pub inspected_spans: u64,
}

/// `tempopb.MetadataMetrics`: counters of the tag endpoints.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct MetadataMetrics {
    /// Bytes read.
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
    /// Jobs planned.
    #[prost(uint32, tag = "2")]
    pub total_jobs: u32,
    /// Jobs done.
    #[prost(uint32, tag = "3")]
    pub completed_jobs: u32,
    /// Blocks in range.
    #[prost(uint32, tag = "4")]
    pub total_blocks: u32,
    /// Bytes of the blocks in range.
    #[prost(uint64, tag = "5")]
    pub total_block_bytes: u64,
}

/// `tempopb.SearchTagsResponse`: protobuf body of `GET /api/search/tags`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchTagsResponse {
    /// Sorted attribute names of all scopes.
    #[prost(string, repeated, tag = "1")]
    pub tag_names: Vec<String>,
    /// Work counters.
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<MetadataMetrics>,
}

/// `tempopb.SearchTagsV2Response`: protobuf body of `GET /api/v2/search/tags`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchTagsV2Response {
    /// Names per scope.
    #[prost(message, repeated, tag = "1")]
    pub scopes: Vec<SearchTagsV2Scope>,
    /// Work counters.
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<MetadataMetrics>,
}

/// `tempopb.SearchTagsV2Scope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchTagsV2Scope {
    /// Scope name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Names in the scope.
    #[prost(string, repeated, tag = "2")]
    pub tags: Vec<String>,
}

/// `tempopb.SearchTagValuesResponse`: protobuf body of `GET /api/search/tag/{tag}/values`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchTagValuesResponse {
    /// Values as text.
    #[prost(string, repeated, tag = "1")]
    pub tag_values: Vec<String>,
    /// Work counters.
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<MetadataMetrics>,
}

/// `tempopb.TagValue`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct TagValue {
    /// Value type.
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// Value as text.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `tempopb.SearchTagValuesV2Response`: protobuf body of `GET /api/v2/search/tag/{tag}/values`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchTagValuesV2Response {
    /// Typed values.
    #[prost(message, repeated, tag = "1")]
    pub tag_values: Vec<TagValue>,
    /// Work counters.
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<MetadataMetrics>,
}

/// Tempo's OTLP messages have non-nullable `resource`, `scope` and `status`,
/// so they are always on the wire, empty or not. Fill them in the same way.
pub(crate) fn tempo_batches(batches: &[ResourceSpans]) -> Vec<ResourceSpans> {
    let mut batches = batches.to_vec();
    for rs in &mut batches {
        rs.resource.get_or_insert_with(Resource::default);
        for ss in &mut rs.scope_spans {
            ss.scope.get_or_insert_with(InstrumentationScope::default);
            for span in &mut ss.spans {
                span.status.get_or_insert_with(Status::default);
            }
        }
    }
    batches
}

fn span_set(set: &api::SpanSetOut) -> SpanSet {
    SpanSet {
        spans: set
            .spans
            .iter()
            .map(|s| Span {
                span_id: hex::encode(s.span_id),
                name: s.name.clone().unwrap_or_default(),
                start_time_unix_nano: s.start_time_unix_nano,
                duration_nanos: s.duration_nanos,
                attributes: s.attributes.clone(),
            })
            .collect(),
        matched: set.matched,
        attributes: set.attributes.clone(),
    }
}

impl From<&api::TraceSummary> for TraceSearchMetadata {
    fn from(t: &api::TraceSummary) -> Self {
        TraceSearchMetadata {
            trace_id: crate::json::trace_id_hex(&t.trace_id),
            root_service_name: t.root_service_name.clone(),
            root_trace_name: t.root_trace_name.clone(),
            start_time_unix_nano: t.start_time_unix_nano,
            duration_ms: t.duration_ms,
            span_set: t.span_sets.first().map(span_set),
            span_sets: t.span_sets.iter().map(span_set).collect(),
            service_stats: t
                .service_stats
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        ServiceStats {
                            span_count: v.span_count,
                            error_count: v.error_count,
                        },
                    )
                })
                .collect(),
        }
    }
}

impl From<&api::SearchMetrics> for SearchMetrics {
    fn from(m: &api::SearchMetrics) -> Self {
        SearchMetrics {
            inspected_traces: m.inspected_traces,
            inspected_bytes: m.inspected_bytes,
            completed_jobs: m.completed_jobs,
            total_jobs: m.total_jobs,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn string_value(kv: &KeyValue) -> &str {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => s,
            _ => "",
        }
    }

    #[test]
    fn golden_trace_v1_decodes() {
        let trace = Trace::decode(&include_bytes!("../testdata/trace_v1_pb.body.pb")[..]).unwrap();
        assert_eq!(trace.resource_spans.len(), 1);
        let rs = &trace.resource_spans[0];
        let resource = rs.resource.as_ref().unwrap();
        assert_eq!(resource.attributes.len(), 8);
        assert_eq!(resource.attributes[7].key, "service.name");
        assert_eq!(string_value(&resource.attributes[7]), "golden-grpc-svc");
        let ss = &rs.scope_spans[0];
        let scope = ss.scope.as_ref().unwrap();
        assert_eq!(
            (scope.name.as_str(), scope.version.as_str()),
            ("golden.tracer", "0.1.0")
        );
        assert_eq!(ss.spans.len(), 4);
        let db = &ss.spans[0];
        assert_eq!(hex::encode(&db.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(&db.span_id), "53995c3f42cd8ad8");
        assert_eq!(hex::encode(&db.parent_span_id), "00f067aa0ba902b7");
        assert_eq!(db.name, "db.query");
        assert_eq!(db.kind, 3);
        assert_eq!(db.start_time_unix_nano, 1_795_567_887_420_106_559);
        assert_eq!(db.end_time_unix_nano, 1_795_567_887_660_106_559);
        assert_eq!(db.events[0].name, "exception");
        assert_eq!(hex::encode(&db.links[0].trace_id), "0af7651916cd43dd8448eb211c80319c");
        let status = db.status.as_ref().unwrap();
        assert_eq!((status.message.as_str(), status.code), ("query timed out", 2));
        // Unset status is on the wire as an empty message.
        assert_eq!(ss.spans[1].status, Some(Status::default()));
        assert_eq!(ss.spans[3].name, "GET /api/users");
        assert!(ss.spans[3].parent_span_id.is_empty());
    }

    #[test]
    fn golden_trace_v2_decodes() {
        let resp = TraceByIdResponse::decode(&include_bytes!("../testdata/trace_v2_pb.body.pb")[..]).unwrap();
        let v1 = Trace::decode(&include_bytes!("../testdata/trace_v1_pb.body.pb")[..]).unwrap();
        assert_eq!(resp.trace.as_ref(), Some(&v1));
        assert_eq!(resp.metrics, Some(TraceByIdMetrics { inspected_bytes: 33232 }));
        assert_eq!((resp.status, resp.message.as_str()), (0, ""));
    }

    #[test]
    fn golden_search_decodes() {
        let resp = SearchResponse::decode(&include_bytes!("../testdata/search_q_error_pb.body.pb")[..]).unwrap();
        assert_eq!(resp.traces.len(), 2);
        let t = &resp.traces[0];
        assert_eq!(t.trace_id, "7f3a2c1b9d8e6f50");
        assert_eq!(t.root_service_name, "golden-json-svc");
        assert_eq!(t.root_trace_name, "consume orders");
        assert_eq!(t.start_time_unix_nano, 1_795_567_888_410_106_559);
        assert_eq!(t.duration_ms, 30);
        let set = t.span_set.as_ref().unwrap();
        assert_eq!(Some(set), t.span_sets.first());
        assert_eq!(set.matched, 1);
        assert_eq!(set.spans[0].span_id, "bbbbbbbbbbbbbbbb");
        assert_eq!(set.spans[0].start_time_unix_nano, 1_795_567_888_411_106_559);
        assert_eq!(set.spans[0].duration_nanos, 19_000_000);
        assert_eq!(set.spans[0].attributes[0].key, "status");
        assert_eq!(string_value(&set.spans[0].attributes[0]), "error");
        assert_eq!(
            t.service_stats.get("golden-json-svc"),
            Some(&ServiceStats {
                span_count: 2,
                error_count: 1
            })
        );
        assert_eq!(resp.traces[1].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            resp.metrics,
            Some(SearchMetrics {
                inspected_bytes: 41553,
                completed_jobs: 2,
                total_jobs: 2,
                ..Default::default()
            })
        );

        let resp = SearchResponse::decode(&include_bytes!("../testdata/search_tags_service_pb.body.pb")[..]).unwrap();
        assert_eq!(resp.traces.len(), 1);
        assert!(resp.traces[0].span_set.is_none() && resp.traces[0].span_sets.is_empty());
        assert_eq!(resp.metrics.unwrap().inspected_traces, 6);
        assert_eq!(resp.metrics.unwrap().inspected_bytes, 40534);
    }

    #[test]
    fn golden_tags_decode() {
        let resp = SearchTagsResponse::decode(&include_bytes!("../testdata/search_tags_pb.body.pb")[..]).unwrap();
        assert_eq!(resp.tag_names.len(), 36);
        assert_eq!(resp.tag_names[0], "amount");
        assert_eq!(resp.tag_names[35], "user_agent.original");
        assert_eq!(resp.metrics.unwrap().inspected_bytes, 21539);

        let resp = SearchTagsV2Response::decode(&include_bytes!("../testdata/v2_search_tags_pb.body.pb")[..]).unwrap();
        let names: Vec<&str> = resp.scopes.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["resource", "intrinsic", "span", "event", "link"]);
        assert_eq!(resp.scopes[1].tags, crate::api::INTRINSIC_TAG_NAMES);
        assert_eq!(resp.scopes[4].tags, ["link.kind"]);
        assert_eq!(resp.metrics.unwrap().inspected_bytes, 21539);

        let resp =
            SearchTagValuesResponse::decode(&include_bytes!("../testdata/tag_values_service_name_pb.body.pb")[..])
                .unwrap();
        assert_eq!(
            resp.tag_values,
            ["golden-grpc-svc", "golden-http-svc", "golden-json-svc"]
        );
        assert_eq!(resp.metrics.unwrap().inspected_bytes, 19621);

        let resp = SearchTagValuesV2Response::decode(
            &include_bytes!("../testdata/v2_tag_values_resource_service_name_pb.body.pb")[..],
        )
        .unwrap();
        let values: Vec<(&str, &str)> = resp
            .tag_values
            .iter()
            .map(|v| (v.r#type.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                ("string", "golden-grpc-svc"),
                ("string", "golden-json-svc"),
                ("string", "golden-http-svc")
            ]
        );
        assert_eq!(resp.metrics.unwrap().inspected_bytes, 81);
    }

    #[test]
    fn golden_bytes_reencode_identically() {
        // Our messages carry every field Tempo sent, so re-encoding gives the same bytes.
        let golden = &include_bytes!("../testdata/trace_v1_pb.body.pb")[..];
        assert_eq!(Trace::decode(golden).unwrap().encode_to_vec(), golden);
        let golden = &include_bytes!("../testdata/search_q_error_pb.body.pb")[..];
        assert_eq!(SearchResponse::decode(golden).unwrap().encode_to_vec(), golden);
        let golden = &include_bytes!("../testdata/v2_search_tags_pb.body.pb")[..];
        assert_eq!(SearchTagsV2Response::decode(golden).unwrap().encode_to_vec(), golden);
    }
}
