//! Grafana Tempo's HTTP query API for SignalDB.
//!
//! [`router`] serves Tempo's paths with Tempo's parameters, status codes,
//! content types, error texts and JSON / protobuf body shapes, so Grafana's
//! Tempo data source (and any other Tempo client) can query SignalDB. The
//! answers come from a [`TempoBackend`]: the router parses and validates each
//! request into a [`SearchRequest`], [`TagNamesRequest`] or
//! [`TagValuesRequest`], resolves the tenant from `X-Scope-OrgID`, calls the
//! backend and writes the result the way Tempo 3 does.
//!
//! Trace bodies use Tempo's OTLP-JSON dialect (written by this crate, not by
//! `opentelemetry-proto`'s serde support, whose shape differs): ids in base64,
//! enums by name, 64-bit integers as strings, empty fields left out. Protobuf
//! bodies use the [`tempopb`] messages, which carry Tempo's field numbers.

mod api;
mod json;
mod params;
mod router;
mod stream;
pub mod tempopb;

pub use api::{
    BackendError, BackendStream, BuildInfo, DEFAULT_SEARCH_LIMIT, DEFAULT_SPANS_PER_SPANSET, INTRINSIC_TAG_NAMES,
    PARTIAL_HEADER, ParseTagScopeError, ScopedTags, SearchItem, SearchMetrics, SearchRequest, SearchResult,
    ServiceStats, SpanOut, SpanSetOut, TagNamesRequest, TagScope, TagValuesRequest, TempoBackend, TraceAnswer,
    TraceSummary, TypedValue,
};
pub use router::{GZIP_MIN_SIZE, ORG_ID_HEADER, router};
