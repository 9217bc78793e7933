//! Any bytes as a Tempo API request: the first byte picks the route and the
//! `Accept` / `Accept-Encoding` / `X-Scope-OrgID` headers, the rest is the
//! path segment (trace id or tag name) and the raw query string, split at
//! the first `?`. The request runs through the real axum router in process
//! (`signaldb_tempo::router`), so the parameters are parsed by exactly the
//! code that parses them in production, over a backend that echoes what it
//! was asked into its answers.
//!
//! Must hold: no panic; no 5xx (the backend never fails); a 400 reaches no
//! backend and a 200 exactly one; what reaches the backend obeys the checks
//! the parser promises (positive limits, `start` before `end`, at most 256
//! unique tags, never both `q` and `tags`, a non-empty tag name, a time
//! range that is not empty); every JSON answer is valid JSON and every
//! protobuf answer decodes.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use signaldb_config::{TenancyConfig, TenantId};
use signaldb_tempo::{
    BackendError, BackendStream, BuildInfo, ScopedTags, SearchItem, SearchMetrics, SearchRequest, SpanOut, SpanSetOut,
    TagNamesRequest, TagScope, TagValuesRequest, TempoBackend, TraceAnswer, TraceSummary, TypedValue,
};
use tower::ServiceExt;

/// What the backend was asked.
#[derive(Debug, Clone)]
enum Call {
    Trace(Option<(u64, u64)>),
    Search(SearchRequest),
    TagNames(TagNamesRequest),
    TagValues(TagValuesRequest),
}

/// Records each call and answers with what it was given, so the answer
/// encoders see the fuzzer's strings too.
#[derive(Debug, Default)]
struct Echo {
    calls: Mutex<Vec<Call>>,
}

impl Echo {
    fn record(&self, call: Call) {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).push(call);
    }

    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

#[async_trait::async_trait]
impl TempoBackend for Echo {
    async fn trace_by_id(
        &self,
        _tenant: &TenantId,
        trace_id: [u8; 16],
        range: Option<(u64, u64)>,
    ) -> Result<TraceAnswer, BackendError> {
        self.record(Call::Trace(range));
        // Ids whose last byte is odd are found, the others are not; ids
        // whose byte before it is odd may lack spans.
        let partial = (trace_id[14] % 2 == 1).then(|| "writer w-1 could not be read".to_owned());
        if trace_id[15] % 2 == 0 {
            return Ok(TraceAnswer {
                pieces: Box::pin(futures::stream::empty()),
                partial,
            });
        }
        let span = Span {
            trace_id: trace_id.to_vec(),
            span_id: vec![1; 8],
            name: "echo".to_owned(),
            start_time_unix_nano: range.map_or(1, |(start, _)| start.saturating_mul(1_000_000_000).max(1)),
            ..Default::default()
        };
        let piece = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }];
        Ok(TraceAnswer {
            pieces: Box::pin(futures::stream::iter([Ok(piece)])),
            partial,
        })
    }

    async fn search(&self, _tenant: &TenantId, req: SearchRequest) -> Result<BackendStream<SearchItem>, BackendError> {
        self.record(Call::Search(req.clone()));
        let attributes = req.tags.iter().map(|(k, v)| string_kv(k, v)).collect();
        let trace = TraceSummary {
            trace_id: [7; 16],
            root_service_name: req.q.clone().unwrap_or_default(),
            root_trace_name: req.tags.first().map(|(k, _)| k.clone()).unwrap_or_default(),
            start_time_unix_nano: req.start.unwrap_or(0).saturating_mul(1_000_000_000),
            duration_ms: 1,
            span_sets: vec![SpanSetOut {
                spans: vec![SpanOut {
                    span_id: [1; 8],
                    name: req.q.clone(),
                    start_time_unix_nano: 1,
                    duration_nanos: req.min_duration_nanos.unwrap_or(0),
                    attributes,
                }],
                matched: req.spans_per_spanset,
                attributes: Vec::new(),
            }],
            service_stats: Default::default(),
        };
        let items = [
            Ok(SearchItem::Trace(trace)),
            Ok(SearchItem::Metrics(SearchMetrics::default())),
        ];
        Ok(Box::pin(futures::stream::iter(items)))
    }

    async fn tag_names(&self, _tenant: &TenantId, req: TagNamesRequest) -> Result<Vec<ScopedTags>, BackendError> {
        self.record(Call::TagNames(req.clone()));
        Ok(vec![ScopedTags {
            scope: req.scope.unwrap_or(TagScope::Span),
            names: req.q.into_iter().collect(),
        }])
    }

    async fn tag_values(&self, _tenant: &TenantId, req: TagValuesRequest) -> Result<Vec<TypedValue>, BackendError> {
        self.record(Call::TagValues(req.clone()));
        let mut values = vec![TypedValue::string(req.tag.clone())];
        values.extend(req.q.map(TypedValue::keyword));
        Ok(values)
    }
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    echo: Arc<Echo>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let echo = Arc::new(Echo::default());
        let backend: Arc<dyn TempoBackend> = echo.clone();
        Harness {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime"),
            router: signaldb_tempo::router(backend, TenancyConfig::default(), BuildInfo::default()),
            echo,
        }
    })
}

/// Bytes a request target may carry as they are; the rest is
/// percent-encoded, as a client would send it. `%` stays, so malformed
/// escapes reach the parser.
fn encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        let plain = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&b) || (keep_slash && b == b'/');
        if plain || (keep_slash && b"?{}[]|\"<>^`\\".contains(&b)) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    TraceV1,
    TraceV2,
    Search,
    TagNamesV1,
    TagNamesV2,
    TagValuesV1,
    TagValuesV2,
    /// The rest of the input is the whole path.
    Raw,
}

/// The request target: the route's path with `segment` in it, then `query`.
fn target(route: Route, segment: &[u8], query: &[u8]) -> String {
    let s = encode(segment, false);
    let path = match route {
        Route::TraceV1 => format!("/api/traces/{s}"),
        Route::TraceV2 => format!("/api/v2/traces/{s}"),
        Route::Search => "/api/search".to_owned(),
        Route::TagNamesV1 => "/api/search/tags".to_owned(),
        Route::TagNamesV2 => "/api/v2/search/tags".to_owned(),
        Route::TagValuesV1 => format!("/api/search/tag/{s}/values"),
        Route::TagValuesV2 => format!("/api/v2/search/tag/{s}/values"),
        // Any path at all: its slashes stay.
        Route::Raw => format!("/{}", encode(segment, true)),
    };
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", encode(query, true))
    }
}

/// The checks the parser promises for what it hands the backend.
fn check_call(call: &Call) {
    match call {
        Call::Trace(range) => {
            if let Some((start, end)) = range {
                assert!(start < end, "trace range {start}..{end} is empty");
            }
        }
        Call::Search(req) => {
            assert!(req.limit >= 1, "limit {}", req.limit);
            assert!(req.spans_per_spanset >= 1, "spss {}", req.spans_per_spanset);
            assert!(req.tags.len() <= 256, "{} tags", req.tags.len());
            for (i, (k, _)) in req.tags.iter().enumerate() {
                assert!(!req.tags[..i].iter().any(|(seen, _)| seen == k), "tag {k} twice");
            }
            assert!(req.q.is_none() || req.tags.is_empty(), "both q and tags");
            assert!(req.q.as_deref() != Some(""), "an empty q is no q");
            if let Some(start) = req.start {
                assert!(
                    req.end.is_some_and(|end| end > start),
                    "start {start} end {:?}",
                    req.end
                );
            }
            if let (Some(min), Some(max)) = (req.min_duration_nanos, req.max_duration_nanos) {
                assert!(min == 0 || min <= max, "minDuration {min} > maxDuration {max}");
            }
        }
        Call::TagNames(req) => {
            assert!(req.limit != Some(0), "a zero limit");
        }
        Call::TagValues(req) => {
            assert!(!req.tag.is_empty(), "an empty tag name");
            assert!(req.limit != Some(0), "a zero limit");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let route = match selector & 0x07 {
        0 => Route::TraceV1,
        1 => Route::TraceV2,
        2 => Route::Search,
        3 => Route::TagNamesV1,
        4 => Route::TagNamesV2,
        5 => Route::TagValuesV1,
        6 => Route::TagValuesV2,
        _ => Route::Raw,
    };
    let (segment, query) = match rest.iter().position(|&b| b == b'?') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None if matches!(route, Route::Search | Route::TagNamesV1 | Route::TagNamesV2) => (&[][..], rest),
        None => (rest, &[][..]),
    };
    let uri = target(route, segment, query);
    let mut request = Request::get(uri.as_str());
    if selector & 0x08 != 0 {
        request = request.header(header::ACCEPT, "application/protobuf");
    }
    if selector & 0x10 != 0 {
        request = request.header(header::ACCEPT_ENCODING, "gzip");
    }
    if selector & 0x20 != 0 {
        request = request.header("X-Scope-OrgID", "fuzz-tenant");
    }
    let Ok(request) = request.body(Body::empty()) else {
        // Not a request hyper would hand the router.
        return;
    };
    let h = harness();
    let _ = h.echo.take();
    let (status, headers, body) = h.runtime.block_on(async {
        let response = h
            .router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .expect("a body the router made reads to its end")
            .to_bytes();
        (parts.status, parts.headers, body)
    });
    let calls = h.echo.take();

    assert!(!status.is_server_error(), "{status} for {uri}: {body:?}");
    assert!(calls.len() <= 1, "{} backend calls for one request {uri}", calls.len());
    for call in &calls {
        check_call(call);
    }
    let api = route != Route::Raw;
    match status {
        StatusCode::BAD_REQUEST => {
            assert!(
                calls.is_empty(),
                "a refused request {uri} reached the backend: {calls:?}"
            );
            assert!(!body.is_empty(), "a 400 for {uri} says why");
        }
        StatusCode::OK if api => assert_eq!(calls.len(), 1, "an answer to {uri} without the backend"),
        _ => {}
    }
    let compressed = headers.contains_key(header::CONTENT_ENCODING);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if status == StatusCode::OK && !compressed {
        if content_type == "application/json" {
            serde_json::from_slice::<serde_json::Value>(&body)
                .unwrap_or_else(|e| panic!("JSON answer to {uri} does not parse: {e}: {body:?}"));
        } else if content_type == "application/protobuf" {
            let decoded = match calls.first() {
                Some(Call::Search(_)) => signaldb_tempo::tempopb::SearchResponse::decode(body.clone()).map(drop),
                Some(Call::Trace(_)) if route == Route::TraceV1 => {
                    signaldb_tempo::tempopb::Trace::decode(body.clone()).map(drop)
                }
                Some(Call::Trace(_)) => signaldb_tempo::tempopb::TraceByIdResponse::decode(body.clone()).map(drop),
                _ => Ok(()),
            };
            decoded.unwrap_or_else(|e| panic!("protobuf answer to {uri} does not decode: {e}"));
        }
    }
});
