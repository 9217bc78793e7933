//! Typed bodies of the querier's Flight actions (JSON-encoded serde structs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Action names.
pub const SEARCH: &str = "search";
pub const TAG_NAMES: &str = "tag_names";
pub const TAG_VALUES: &str = "tag_values";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchAction {
    pub tenant: String,
    /// TraceQL; when absent, `tags` and the durations form the query.
    pub q: Option<String>,
    pub tags: Vec<(String, String)>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    pub limit: usize,
    pub spans_per_spanset: usize,
    /// Nanoseconds.
    pub range: Option<(i64, i64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchActionResult {
    pub traces: Vec<TraceOut>,
    pub inspected_traces: u64,
    pub inspected_spans: u64,
    /// Bytes read from object storage and received from writers' buffers.
    #[serde(default)]
    pub inspected_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TraceOut {
    /// 32 hex digits.
    pub trace_id: String,
    pub root_service_name: String,
    pub root_trace_name: String,
    pub start_time_unix_nano: u64,
    pub duration_ms: u64,
    pub spans: Vec<SpanOut>,
    pub matched: u32,
    /// service -> (spans, errors)
    pub service_stats: BTreeMap<String, (u32, u32)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SpanOut {
    /// 16 hex digits.
    pub span_id: String,
    pub name: String,
    pub start_time_unix_nano: u64,
    pub duration_nanos: u64,
    /// The fields the query filtered on or selected, as Tempo shows them.
    #[serde(default)]
    pub attributes: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TagNamesAction {
    pub tenant: String,
    pub range: Option<(i64, i64)>,
    /// TraceQL (`q`): names from the spans it matches only.
    #[serde(default)]
    pub q: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TagNamesResult {
    pub resource: Vec<String>,
    pub span: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TagValuesAction {
    pub tenant: String,
    /// `resource`, `span`, `intrinsic`, or none (span or resource attribute).
    pub scope: Option<String>,
    pub name: String,
    pub range: Option<(i64, i64)>,
    /// TraceQL (`q`): values from the spans it matches only.
    #[serde(default)]
    pub q: Option<String>,
}

/// (type, value) pairs: type is string, int, float, bool or keyword.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TagValuesResult {
    pub values: Vec<(String, String)>,
}
