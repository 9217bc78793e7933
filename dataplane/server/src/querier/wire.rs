//! What the router sends a querier's Flight `DoAction` and what it gets
//! back: protobuf messages carrying the query already parsed (as a
//! [`QueryPlan`] or [`ConditionPlan`]), ids as bytes. Action names carry
//! the version of these messages; a querier refuses names it does not know.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use signaldb_traceql::{ConditionPlan, QueryPlan};

/// Action names.
pub const SEARCH: &str = "search.v1";
pub const TAG_NAMES: &str = "tag_names.v1";
pub const TAG_VALUES: &str = "tag_values.v1";

/// Nanoseconds, both ends included.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct TimeRange {
    #[prost(int64, tag = "1")]
    pub min_ns: i64,
    #[prost(int64, tag = "2")]
    pub max_ns: i64,
}

impl TimeRange {
    pub fn from_pair(range: Option<(i64, i64)>) -> Option<Self> {
        range.map(|(min_ns, max_ns)| Self { min_ns, max_ns })
    }

    pub fn pair(range: Option<Self>) -> Option<(i64, i64)> {
        range.map(|r| (r.min_ns, r.max_ns))
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchRequest {
    #[prost(string, tag = "1")]
    pub tenant: String,
    #[prost(message, optional, tag = "2")]
    pub plan: Option<QueryPlan>,
    #[prost(uint32, tag = "3")]
    pub limit: u32,
    #[prost(uint32, tag = "4")]
    pub spans_per_spanset: u32,
    /// Absent: the querier's default lookback.
    #[prost(message, optional, tag = "5")]
    pub range: Option<TimeRange>,
}

/// One message of a search's answer: each matching trace, newest first,
/// then the metrics.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchReply {
    #[prost(oneof = "search_reply::Item", tags = "1, 2")]
    pub item: Option<search_reply::Item>,
}

pub mod search_reply {
    /// What a [`super::SearchReply`] holds.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Item {
        #[prost(message, tag = "1")]
        Trace(super::TraceHit),
        #[prost(message, tag = "2")]
        Metrics(super::SearchMetrics),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceHit {
    /// 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub root_service_name: String,
    #[prost(string, tag = "3")]
    pub root_trace_name: String,
    #[prost(uint64, tag = "4")]
    pub start_time_unix_nano: u64,
    #[prost(uint64, tag = "5")]
    pub duration_ms: u64,
    #[prost(message, repeated, tag = "6")]
    pub spans: Vec<SpanHit>,
    /// Spans the query matched in the trace.
    #[prost(uint32, tag = "7")]
    pub matched: u32,
    #[prost(message, repeated, tag = "8")]
    pub service_stats: Vec<ServiceStat>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanHit {
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(uint64, tag = "3")]
    pub start_time_unix_nano: u64,
    #[prost(uint64, tag = "4")]
    pub duration_nanos: u64,
    /// The fields the query filtered on or selected, as Tempo shows them.
    #[prost(message, repeated, tag = "5")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceStat {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(uint32, tag = "2")]
    pub spans: u32,
    #[prost(uint32, tag = "3")]
    pub errors: u32,
}

/// Key of the trace-by-id answer's schema metadata naming (comma
/// separated) the writers whose buffers could not be read.
pub const UNREACHABLE_WRITERS_KEY: &str = "signaldb.unreachable_writers";

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SearchMetrics {
    #[prost(uint64, tag = "1")]
    pub inspected_traces: u64,
    #[prost(uint64, tag = "2")]
    pub inspected_spans: u64,
    /// Bytes read from object storage and received from writers' buffers.
    #[prost(uint64, tag = "3")]
    pub inspected_bytes: u64,
    /// Writers whose buffers could not be read: the answer may lack what
    /// only they held.
    #[prost(string, repeated, tag = "4")]
    pub unreachable_writers: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TagNamesRequest {
    #[prost(string, tag = "1")]
    pub tenant: String,
    #[prost(message, optional, tag = "2")]
    pub range: Option<TimeRange>,
    /// Names from the spans meeting this condition only (`q`).
    #[prost(message, optional, tag = "3")]
    pub condition: Option<ConditionPlan>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TagNamesReply {
    #[prost(string, repeated, tag = "1")]
    pub resource: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub span: Vec<String>,
}

/// Where a tag-values lookup looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum TagScope {
    /// Span or resource attributes.
    Any = 0,
    Resource = 1,
    Span = 2,
    Intrinsic = 3,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TagValuesRequest {
    #[prost(string, tag = "1")]
    pub tenant: String,
    #[prost(enumeration = "TagScope", tag = "2")]
    pub scope: i32,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(message, optional, tag = "4")]
    pub range: Option<TimeRange>,
    /// Values from the spans meeting this condition only (`q`).
    #[prost(message, optional, tag = "5")]
    pub condition: Option<ConditionPlan>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TypedValue {
    /// `string`, `int`, `float`, `bool` or `keyword`.
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TagValuesReply {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<TypedValue>,
}
