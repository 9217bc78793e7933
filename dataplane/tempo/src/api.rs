//! The contract between the HTTP surface and whatever answers the queries: the
//! [`TempoBackend`] trait, the parsed requests it receives and the results it
//! returns.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use signaldb_config::TenantId;

/// The query side of SignalDB as the Tempo API sees it.
///
/// The router parses and validates every request, resolves the tenant and
/// then calls exactly one of these methods; it shapes the answer into Tempo's
/// JSON or protobuf bodies itself. Implementations only answer from their
/// data and report failures as [`BackendError`].
#[async_trait::async_trait]
pub trait TempoBackend: Send + Sync + 'static {
    /// All spans of one trace, in pieces as they arrive; a stream that ends
    /// without a span means the tenant has no such trace.
    ///
    /// `range` is `(start, end)` in unix seconds when the request carried
    /// `start` and/or `end`: a missing `end` is `u64::MAX`, a missing `start`
    /// is `0`. `None` means "no time hint, look everywhere".
    ///
    /// The router answers as the pieces come: it holds one at a time. An
    /// error before the first piece becomes the response's status; after
    /// it, the response body is cut off (the client sees a failed
    /// transfer, never a shorter trace).
    async fn trace_by_id(
        &self,
        tenant: &TenantId,
        trace_id: [u8; 16],
        range: Option<(u64, u64)>,
    ) -> Result<TraceAnswer, BackendError>;

    /// Trace search (`GET /api/search`), by TraceQL (`q`) or by tags: the
    /// traces in the order to show them, then the metrics, last. Streamed
    /// to the client as for [`TempoBackend::trace_by_id`].
    async fn search(&self, tenant: &TenantId, req: SearchRequest) -> Result<BackendStream<SearchItem>, BackendError>;

    /// Attribute names per scope (`GET /api/search/tags`, `GET /api/v2/search/tags`).
    ///
    /// Return every scope that has names, including [`TagScope::Intrinsic`]
    /// (see [`INTRINSIC_TAG_NAMES`]) unless `req.scope` narrows the answer.
    /// Scopes with no names are dropped from the response; the order of the
    /// returned scopes is the order of the v2 response.
    async fn tag_names(&self, tenant: &TenantId, req: TagNamesRequest) -> Result<Vec<ScopedTags>, BackendError>;

    /// Distinct values of one attribute or intrinsic
    /// (`GET /api/search/tag/{tag}/values`, `GET /api/v2/search/tag/{tag}/values`).
    ///
    /// For v1 only the `value`s are sent (sorted, deduplicated by the router);
    /// for v2 the typed values are sent in the order returned.
    async fn tag_values(&self, tenant: &TenantId, req: TagValuesRequest) -> Result<Vec<TypedValue>, BackendError>;
}

/// Why a backend could not answer. Each variant becomes a `text/plain` error
/// response whose body is exactly the carried text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The request cannot be answered as asked: `400 Bad Request`.
    ///
    /// The text is the whole body, e.g. for a TraceQL syntax error Tempo sends
    /// `invalid TraceQL query: parse error at line 1, col 3: unknown identifier: this`.
    #[error("{0}")]
    BadRequest(String),
    /// A dependency is down: `503 Service Unavailable`.
    #[error("{0}")]
    Unavailable(String),
    /// A bound was hit (too many queries at once, a query needing more
    /// memory than allowed): `429 Too Many Requests`.
    #[error("{0}")]
    Exhausted(String),
    /// The query ran past its time limit: `504 Gateway Timeout`.
    #[error("{0}")]
    Timeout(String),
    /// Anything else: `500 Internal Server Error`.
    #[error("{0}")]
    Internal(String),
}

/// Tempo's default number of traces per search (`limit`).
pub const DEFAULT_SEARCH_LIMIT: u32 = 20;
/// Tempo's default number of spans shown per spanset (`spss`).
pub const DEFAULT_SPANS_PER_SPANSET: u32 = 3;

/// A parsed `GET /api/search`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    /// TraceQL query from `q`, if any. `q` and `tags` never both appear.
    pub q: Option<String>,
    /// `(key, value)` pairs from the logfmt `tags` parameter, in the order
    /// given (keys are unique). Without `q`, `tags`, `start` and `end`, other
    /// unknown query parameters are read as tags too, as Tempo does.
    pub tags: Vec<(String, String)>,
    /// Lower bound on trace duration (`minDuration`), in nanoseconds.
    pub min_duration_nanos: Option<u64>,
    /// Upper bound on trace duration (`maxDuration`), in nanoseconds.
    pub max_duration_nanos: Option<u64>,
    /// Maximum number of traces (`limit`, default [`DEFAULT_SEARCH_LIMIT`]).
    pub limit: u32,
    /// Spans per spanset (`spss`, default [`DEFAULT_SPANS_PER_SPANSET`]).
    pub spans_per_spanset: u32,
    /// Range start, unix seconds (`start`); `None` when absent or zero.
    pub start: Option<u64>,
    /// Range end, unix seconds (`end`); `None` when absent or zero.
    pub end: Option<u64>,
}

impl Default for SearchRequest {
    fn default() -> Self {
        Self {
            q: None,
            tags: Vec::new(),
            min_duration_nanos: None,
            max_duration_nanos: None,
            limit: DEFAULT_SEARCH_LIMIT,
            spans_per_spanset: DEFAULT_SPANS_PER_SPANSET,
            start: None,
            end: None,
        }
    }
}

/// Pieces of an answer as a backend produces them. Dropping the stream
/// stops the work behind it.
pub type BackendStream<T> = futures::stream::BoxStream<'static, Result<T, BackendError>>;

/// A trace as the backend answers it.
pub struct TraceAnswer {
    /// The trace's pieces (see [`TempoBackend::trace_by_id`]).
    pub pieces: BackendStream<Vec<ResourceSpans>>,
    /// Set when part of the trace may be missing (a source that holds
    /// spans could not be read): why. The v2 answer then carries Tempo's
    /// `status: PARTIAL` and this `message`; the v1 answer, which has no
    /// such field, a [`PARTIAL_HEADER`] header.
    pub partial: Option<String>,
}

impl TraceAnswer {
    /// A complete answer.
    pub fn complete(pieces: BackendStream<Vec<ResourceSpans>>) -> Self {
        Self { pieces, partial: None }
    }
}

impl std::fmt::Debug for TraceAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceAnswer")
            .field("partial", &self.partial)
            .finish_non_exhaustive()
    }
}

/// Header of a v1 trace answer (or 404) that may lack spans: why.
pub const PARTIAL_HEADER: &str = "x-signaldb-partial";

/// One piece of a search answer: the traces, then the metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchItem {
    /// A matching trace.
    Trace(TraceSummary),
    /// The work counters; the last item.
    Metrics(SearchMetrics),
}

impl SearchResult {
    /// The result as the pieces a backend streams.
    pub fn into_items(self) -> impl Iterator<Item = SearchItem> {
        self.traces
            .into_iter()
            .map(SearchItem::Trace)
            .chain(std::iter::once(SearchItem::Metrics(self.metrics)))
    }
}

/// The answer to a search, whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchResult {
    /// Matching traces, in the order to show them (Tempo: most recent first).
    pub traces: Vec<TraceSummary>,
    /// Work counters shown under `metrics`; zero counters are omitted.
    pub metrics: SearchMetrics,
}

/// One trace of a search result (Tempo's `TraceSearchMetadata`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceSummary {
    /// Trace id; shown as hex with leading zeros removed.
    pub trace_id: [u8; 16],
    /// `service.name` of the root span.
    pub root_service_name: String,
    /// Name of the root span.
    pub root_trace_name: String,
    /// Start of the earliest span.
    pub start_time_unix_nano: u64,
    /// Trace duration in milliseconds.
    pub duration_ms: u32,
    /// Matched spansets (TraceQL searches only; empty for tag searches). The
    /// first one is also sent as the deprecated `spanSet`.
    pub span_sets: Vec<SpanSetOut>,
    /// Span and error counts per service name.
    pub service_stats: BTreeMap<String, ServiceStats>,
}

/// One spanset of a TraceQL match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanSetOut {
    /// Up to `spss` spans of the set.
    pub spans: Vec<SpanOut>,
    /// How many spans matched in total.
    pub matched: u32,
    /// Spanset-level attributes (e.g. the results of `by()` or `count()`).
    pub attributes: Vec<KeyValue>,
}

/// One span of a spanset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanOut {
    /// Span id; shown as 16 hex digits.
    pub span_id: [u8; 8],
    /// Span name, when the query asked for it (Tempo omits it otherwise).
    pub name: Option<String>,
    /// Span start.
    pub start_time_unix_nano: u64,
    /// Span duration.
    pub duration_nanos: u64,
    /// The attributes the query touched or selected.
    pub attributes: Vec<KeyValue>,
}

/// Per-service counts of one trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Spans of the service in the trace.
    pub span_count: u32,
    /// Of those, spans with status error.
    pub error_count: u32,
}

/// Search work counters (`metrics` of the search response).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchMetrics {
    /// Traces looked at.
    pub inspected_traces: u32,
    /// Bytes read.
    pub inspected_bytes: u64,
    /// Jobs finished.
    pub completed_jobs: u32,
    /// Jobs planned.
    pub total_jobs: u32,
}

/// The attribute scopes Tempo's tag endpoints know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TagScope {
    /// Resource attributes (`resource.`).
    Resource,
    /// Span attributes (`span.`).
    Span,
    /// Intrinsics (`name`, `status`, `span:duration`, ...).
    Intrinsic,
    /// Event attributes (`event.`).
    Event,
    /// Link attributes (`link.`).
    Link,
    /// Instrumentation scope attributes (`instrumentation.`).
    Instrumentation,
}

impl TagScope {
    /// All scopes, in Tempo's usual response order.
    pub const ALL: [TagScope; 6] = [
        TagScope::Intrinsic,
        TagScope::Resource,
        TagScope::Span,
        TagScope::Event,
        TagScope::Link,
        TagScope::Instrumentation,
    ];

    /// The scope's name as used in `scope=` and in v2 responses.
    pub fn as_str(self) -> &'static str {
        match self {
            TagScope::Resource => "resource",
            TagScope::Span => "span",
            TagScope::Intrinsic => "intrinsic",
            TagScope::Event => "event",
            TagScope::Link => "link",
            TagScope::Instrumentation => "instrumentation",
        }
    }
}

impl fmt::Display for TagScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`TagScope`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope: {0}")]
pub struct ParseTagScopeError(pub String);

impl FromStr for TagScope {
    type Err = ParseTagScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TagScope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ParseTagScopeError(s.to_owned()))
    }
}

/// The intrinsic names Tempo 3 lists under the `intrinsic` scope, sorted.
/// Backends can return these as the [`TagScope::Intrinsic`] entry.
pub const INTRINSIC_TAG_NAMES: &[&str] = &[
    "duration",
    "event:name",
    "event:timeSinceStart",
    "instrumentation:name",
    "instrumentation:version",
    "kind",
    "link:spanID",
    "link:traceID",
    "name",
    "rootName",
    "rootServiceName",
    "span:duration",
    "span:id",
    "span:kind",
    "span:name",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "status",
    "statusMessage",
    "trace:duration",
    "trace:id",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
];

/// A parsed tag-names request (`/api/search/tags`, `/api/v2/search/tags`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagNamesRequest {
    /// Only this scope (`scope`), or all scopes.
    pub scope: Option<TagScope>,
    /// TraceQL filter (`q`): names from matching spans only.
    pub q: Option<String>,
    /// Range start, unix seconds (`start`).
    pub start: Option<u64>,
    /// Range end, unix seconds (`end`).
    pub end: Option<u64>,
    /// Maximum names per scope (`limit`), if given.
    pub limit: Option<u32>,
}

/// The names found in one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedTags {
    /// The scope.
    pub scope: TagScope,
    /// Attribute (or intrinsic) names, in the order to show them.
    pub names: Vec<String>,
}

/// A parsed tag-values request (`/api/search/tag/{tag}/values` and v2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagValuesRequest {
    /// The tag as given in the path, unescaped: bare (`service.name`) on v1,
    /// scoped or intrinsic (`resource.service.name`, `status`) on v2.
    pub tag: String,
    /// Whether this is the v2 endpoint (typed values, TraceQL names).
    pub v2: bool,
    /// TraceQL filter (`q`): values from matching spans only.
    pub q: Option<String>,
    /// Range start, unix seconds (`start`).
    pub start: Option<u64>,
    /// Range end, unix seconds (`end`).
    pub end: Option<u64>,
    /// Maximum number of values (`limit`), if given.
    pub limit: Option<u32>,
}

/// One typed tag value (Tempo's `TagValue`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TypedValue {
    /// `string`, `int`, `float`, `bool`, `keyword` (status and kind values) or `duration`.
    pub r#type: String,
    /// The value as text, e.g. `503`, `42.5`, `false`, `error`.
    pub value: String,
}

impl TypedValue {
    /// A value of the given type.
    pub fn new(r#type: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            r#type: r#type.into(),
            value: value.into(),
        }
    }
    /// A `string` value.
    pub fn string(value: impl Into<String>) -> Self {
        Self::new("string", value)
    }
    /// An `int` value.
    pub fn int(value: i64) -> Self {
        Self::new("int", value.to_string())
    }
    /// A `float` value, formatted as Go formats it (`42.5`, `1e+21`).
    pub fn float(value: f64) -> Self {
        Self::new("float", crate::json::go_float(value))
    }
    /// A `bool` value.
    pub fn bool(value: bool) -> Self {
        Self::new("bool", value.to_string())
    }
    /// A `keyword` value (`ok`, `error`, `unset`, `server`, ...).
    pub fn keyword(value: impl Into<String>) -> Self {
        Self::new("keyword", value)
    }
}

/// What `GET /api/status/buildinfo` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// Release version.
    pub version: String,
    /// VCS revision.
    pub revision: String,
    /// VCS branch.
    pub branch: String,
    /// Who built it.
    pub build_user: String,
    /// When it was built.
    pub build_date: String,
    /// Toolchain version (Tempo's `goVersion` key; for us the Rust toolchain).
    pub go_version: String,
}

impl Default for BuildInfo {
    /// This crate's version; every other field empty.
    fn default() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: String::new(),
            branch: String::new(),
            build_user: String::new(),
            build_date: String::new(),
            go_version: String::new(),
        }
    }
}
