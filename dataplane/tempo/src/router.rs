//! The axum router: Tempo's paths, tenancy, content negotiation, gzip, and
//! Tempo's status codes and error bodies.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use futures::StreamExt as _;
use http::header::{CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderValue, StatusCode};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message as _;
use signaldb_config::{TenancyConfig, TenantId};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::SizeAbove;

use crate::api::{
    BackendError, BackendStream, BuildInfo, PARTIAL_HEADER, SearchItem, TagScope, TempoBackend, TraceAnswer,
};
use crate::params::{self, Query};
use crate::stream::{self, Framing, Piece, Pieces};
use crate::{json, tempopb};

/// The tenant header Tempo (and SignalDB) read.
pub const ORG_ID_HEADER: &str = "X-Scope-OrgID";

/// Responses at least this large are gzipped when the client accepts gzip
/// (Tempo's gzip handler's threshold).
pub const GZIP_MIN_SIZE: u16 = 1024;

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
const APPLICATION_JSON: &str = "application/json";
const APPLICATION_PROTOBUF: &str = "application/protobuf";

#[derive(Clone)]
struct AppState {
    backend: Arc<dyn TempoBackend>,
    tenancy: Arc<TenancyConfig>,
    build: Arc<BuildInfo>,
}

/// Builds Grafana Tempo's HTTP query API over `backend`.
///
/// Routes (all `GET`):
/// - `/api/traces/{id}`, `/api/v2/traces/{id}`: trace by id, JSON or (with
///   `Accept: application/protobuf`) protobuf;
/// - `/api/search`; `/api/search/tags`, `/api/v2/search/tags`;
///   `/api/search/tag/{tag}/values`, `/api/v2/search/tag/{tag}/values`;
/// - `/api/echo`, `/ready`, `/api/status/buildinfo`.
///
/// Anything else is `404 page not found`. The query routes resolve the tenant
/// from `X-Scope-OrgID` (falling back to `tenancy.default_tenant` unless
/// `tenancy.multi_tenant`, where a missing header is `401 no org id`), always
/// send `Vary: Accept-Encoding` and gzip bodies of at least
/// [`GZIP_MIN_SIZE`] bytes for clients that accept it.
pub fn router(backend: Arc<dyn TempoBackend>, tenancy: TenancyConfig, build: BuildInfo) -> Router {
    let state = AppState {
        backend,
        tenancy: Arc::new(tenancy),
        build: Arc::new(build),
    };
    let api = Router::new()
        .route("/api/traces/{id}", get(trace_v1))
        .route("/api/v2/traces/{id}", get(trace_v2))
        .route("/api/search", get(search))
        .route("/api/search/tags", get(tag_names_v1))
        .route("/api/v2/search/tags", get(tag_names_v2))
        .route("/api/search/tag/{tag}/values", get(tag_values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tag_values_v2))
        .layer(axum::middleware::map_response(vary_accept_encoding))
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .compress_when(SizeAbove::new(GZIP_MIN_SIZE)),
        );
    Router::new()
        .route("/ready", get(ready))
        .route("/api/echo", get(echo))
        .route("/api/status/buildinfo", get(build_info))
        .merge(api)
        .fallback(not_found)
        .with_state(state)
}

async fn vary_accept_encoding(mut res: Response) -> Response {
    res.headers_mut()
        .insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    res
}

fn respond(status: StatusCode, content_type: Option<&'static str>, body: impl Into<Body>) -> Response {
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    if let Some(ct) = content_type {
        res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    res
}

/// A body as Go's `http.Error` writes it: text, newline, `nosniff`.
fn go_http_error(status: StatusCode, text: &str) -> Response {
    let mut res = respond(status, Some(TEXT_PLAIN), format!("{text}\n"));
    res.headers_mut()
        .insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    res
}

fn bad_request(text: String) -> Response {
    respond(StatusCode::BAD_REQUEST, Some(TEXT_PLAIN), text)
}

fn json_ok(body: String) -> Response {
    respond(StatusCode::OK, Some(APPLICATION_JSON), body)
}

fn protobuf_ok(body: Vec<u8>) -> Response {
    respond(StatusCode::OK, Some(APPLICATION_PROTOBUF), body)
}

fn backend_error(err: BackendError) -> Response {
    let (status, text) = match err {
        BackendError::BadRequest(text) => (StatusCode::BAD_REQUEST, text),
        BackendError::Unavailable(text) => (StatusCode::SERVICE_UNAVAILABLE, text),
        BackendError::Exhausted(text) => (StatusCode::TOO_MANY_REQUESTS, text),
        BackendError::Timeout(text) => (StatusCode::GATEWAY_TIMEOUT, text),
        BackendError::Internal(text) => (StatusCode::INTERNAL_SERVER_ERROR, text),
    };
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), error = %text, "tempo api backend error");
    }
    respond(status, Some(TEXT_PLAIN), text)
}

/// Whether the client asked for protobuf (`Accept: application/protobuf`).
fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let media = media.split(';').next().unwrap_or("").trim();
            media.eq_ignore_ascii_case(APPLICATION_PROTOBUF)
        })
}

/// The request's tenant, or the error response.
// The error is the finished response, handed straight back to axum.
#[allow(clippy::result_large_err)]
fn tenant(state: &AppState, headers: &HeaderMap) -> Result<TenantId, Response> {
    let value = headers.get(ORG_ID_HEADER).map(|v| v.to_str());
    match value {
        Some(Ok(id)) if !id.is_empty() => {
            TenantId::new(id).map_err(|e| bad_request(format!("invalid {ORG_ID_HEADER} header: {e}")))
        }
        Some(Err(_)) => Err(bad_request(format!(
            "invalid {ORG_ID_HEADER} header: not visible ASCII"
        ))),
        _ if state.tenancy.multi_tenant => Err(go_http_error(StatusCode::UNAUTHORIZED, "no org id")),
        _ => Ok(state.tenancy.default_tenant.clone()),
    }
}

async fn ready() -> Response {
    go_text_ok("ready")
}

async fn echo() -> Response {
    go_text_ok("echo")
}

fn go_text_ok(text: &str) -> Response {
    go_http_error(StatusCode::OK, text)
}

async fn build_info(State(state): State<AppState>) -> Response {
    json_ok(json::build_info(&state.build))
}

async fn not_found() -> Response {
    go_http_error(StatusCode::NOT_FOUND, "404 page not found")
}

/// A trace being fetched: its first piece (`None`: not found) and the
/// rest, and why it may be partial.
type Fetched = (
    Option<(Vec<ResourceSpans>, BackendStream<Vec<ResourceSpans>>)>,
    Option<String>,
);

/// Parses the id and range and starts fetching the trace. `Err` is the
/// response.
async fn fetch_trace(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    raw_query: Option<&str>,
) -> Result<Fetched, Response> {
    let tenant = tenant(state, headers)?;
    let trace_id = params::parse_trace_id(id).map_err(bad_request)?;
    let range = params::parse_trace_range(&Query::parse(raw_query)).map_err(bad_request)?;
    let TraceAnswer { mut pieces, partial } = state
        .backend
        .trace_by_id(&tenant, trace_id, range)
        .await
        .map_err(backend_error)?;
    loop {
        match pieces.next().await {
            Some(Ok(first)) if first.is_empty() => continue,
            Some(Ok(first)) => return Ok((Some((first, pieces)), partial)),
            Some(Err(e)) => return Err(backend_error(e)),
            None => return Ok((None, partial)),
        }
    }
}

/// `response` with the [`PARTIAL_HEADER`] when `partial`.
fn mark_partial(mut response: Response, partial: Option<&str>) -> Response {
    if let Some(value) = partial.and_then(|p| http::HeaderValue::from_str(p).ok()) {
        response.headers_mut().insert(PARTIAL_HEADER, value);
    }
    response
}

/// A found trace's pieces, each rendered by `render`.
fn trace_pieces(
    first: Vec<ResourceSpans>,
    rest: BackendStream<Vec<ResourceSpans>>,
    render: fn(&[ResourceSpans]) -> Vec<u8>,
) -> Pieces {
    futures::stream::once(futures::future::ready(Ok(first)))
        .chain(rest)
        .filter(|piece| futures::future::ready(piece.as_ref().map_or(true, |p| !p.is_empty())))
        .map(move |piece| piece.map(|p| Piece::Elem(render(&p))))
        .boxed()
}

/// A streamed answer, or the error that arrived before its first byte.
async fn streamed(content_type: &'static str, framing: Framing, pieces: Pieces) -> Response {
    match stream::body(framing, pieces).await {
        Ok(body) => respond(StatusCode::OK, Some(content_type), body),
        Err(e) => backend_error(e),
    }
}

async fn trace_v1(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (first, rest, partial) = match fetch_trace(&state, &headers, &id, raw_query.as_deref()).await {
        Ok((Some((first, rest)), partial)) => (first, rest, partial),
        Ok((None, partial)) => {
            return mark_partial(respond(StatusCode::NOT_FOUND, None, Body::empty()), partial.as_deref());
        }
        Err(res) => return res,
    };
    let response = if wants_protobuf(&headers) {
        // `Trace` is one repeated field: its pieces concatenate.
        let render = |batches: &[ResourceSpans]| {
            tempopb::Trace {
                resource_spans: tempopb::tempo_batches(batches),
            }
            .encode_to_vec()
        };
        let framing = Framing {
            open: Vec::new(),
            sep: b"",
            close: Some(Vec::new()),
        };
        streamed(APPLICATION_PROTOBUF, framing, trace_pieces(first, rest, render)).await
    } else {
        let framing = Framing {
            open: json::TRACE_V1_OPEN.into(),
            sep: b",",
            close: Some(json::TRACE_V1_CLOSE.into()),
        };
        let render = |batches: &[ResourceSpans]| json::batches(batches).into_bytes();
        streamed(APPLICATION_JSON, framing, trace_pieces(first, rest, render)).await
    };
    mark_partial(response, partial.as_deref())
}

async fn trace_v2(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (found, partial) = match fetch_trace(&state, &headers, &id, raw_query.as_deref()).await {
        Ok(found) => found,
        Err(res) => return res,
    };
    let protobuf = wants_protobuf(&headers);
    // Tempo's PartialStatus: 1 is PARTIAL.
    let (status, message) = match &partial {
        Some(why) => (1, why.clone()),
        None => (0, String::new()),
    };
    let Some((first, rest)) = found else {
        return if protobuf {
            let msg = tempopb::TraceByIdResponse {
                trace: Some(tempopb::Trace::default()),
                metrics: Some(tempopb::TraceByIdMetrics::default()),
                status,
                message,
            };
            protobuf_ok(msg.encode_to_vec())
        } else {
            json_ok(json::trace_v2_not_found(partial.as_deref()))
        };
    };
    if protobuf {
        // Each piece is a `TraceByIdResponse` holding part of the trace;
        // concatenated, their `trace` fields merge into one, as protobuf
        // merges a message field that appears more than once.
        let render = |batches: &[ResourceSpans]| {
            tempopb::TraceByIdResponse {
                trace: Some(tempopb::Trace {
                    resource_spans: tempopb::tempo_batches(batches),
                }),
                ..Default::default()
            }
            .encode_to_vec()
        };
        let framing = Framing {
            open: Vec::new(),
            sep: b"",
            close: Some(
                tempopb::TraceByIdResponse {
                    metrics: Some(tempopb::TraceByIdMetrics::default()),
                    status,
                    message,
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
        };
        streamed(APPLICATION_PROTOBUF, framing, trace_pieces(first, rest, render)).await
    } else {
        let framing = Framing {
            open: json::TRACE_V2_OPEN.into(),
            sep: b",",
            close: Some(json::trace_v2_close(partial.as_deref()).into_bytes()),
        };
        let render = |batches: &[ResourceSpans]| json::batches(batches).into_bytes();
        streamed(APPLICATION_JSON, framing, trace_pieces(first, rest, render)).await
    }
}

async fn search(State(state): State<AppState>, RawQuery(raw_query): RawQuery, headers: HeaderMap) -> Response {
    let tenant = match tenant(&state, &headers) {
        Ok(t) => t,
        Err(res) => return res,
    };
    let req = match params::parse_search(&Query::parse(raw_query.as_deref())) {
        Ok(req) => req,
        Err(text) => return bad_request(text),
    };
    let items = match state.backend.search(&tenant, req).await {
        Ok(items) => items,
        Err(err) => return backend_error(err),
    };
    if wants_protobuf(&headers) {
        // `SearchResponse` is its traces then its metrics: one message per
        // item concatenates into the same bytes as the whole message.
        let pieces = items
            .map(|item| {
                item.map(|item| match item {
                    SearchItem::Trace(t) => Piece::Elem(
                        tempopb::SearchResponse {
                            traces: vec![tempopb::TraceSearchMetadata::from(&t)],
                            metrics: None,
                        }
                        .encode_to_vec(),
                    ),
                    SearchItem::Metrics(m) => Piece::Close(
                        tempopb::SearchResponse {
                            traces: Vec::new(),
                            metrics: Some(tempopb::SearchMetrics::from(&m)),
                        }
                        .encode_to_vec(),
                    ),
                })
            })
            .boxed();
        let framing = Framing {
            open: Vec::new(),
            sep: b"",
            close: None,
        };
        streamed(APPLICATION_PROTOBUF, framing, pieces).await
    } else {
        let pieces = items
            .map(|item| {
                item.map(|item| match item {
                    SearchItem::Trace(t) => Piece::Elem(json::search_trace(&t).into_bytes()),
                    SearchItem::Metrics(m) => Piece::Close(json::search_close(&m).into_bytes()),
                })
            })
            .boxed();
        let framing = Framing {
            open: json::SEARCH_OPEN.into(),
            sep: b",",
            close: None,
        };
        streamed(APPLICATION_JSON, framing, pieces).await
    }
}

async fn tag_names(
    state: &AppState,
    headers: &HeaderMap,
    raw_query: Option<&str>,
) -> Result<(Option<TagScope>, Vec<crate::api::ScopedTags>), Response> {
    let tenant = tenant(state, headers)?;
    let req = params::parse_tag_names(&Query::parse(raw_query)).map_err(bad_request)?;
    let scope = req.scope;
    let scopes = state.backend.tag_names(&tenant, req).await.map_err(backend_error)?;
    Ok((scope, scopes))
}

async fn tag_names_v1(State(state): State<AppState>, RawQuery(raw_query): RawQuery, headers: HeaderMap) -> Response {
    let (scope, scopes) = match tag_names(&state, &headers, raw_query.as_deref()).await {
        Ok(found) => found,
        Err(res) => return res,
    };
    // v1 is one flat, sorted list of attribute names; intrinsics only when asked for.
    let mut names: Vec<String> = scopes
        .into_iter()
        .filter(|s| s.scope != TagScope::Intrinsic || scope == Some(TagScope::Intrinsic))
        .flat_map(|s| s.names)
        .collect();
    names.sort();
    names.dedup();
    if wants_protobuf(&headers) {
        let msg = tempopb::SearchTagsResponse {
            tag_names: names,
            metrics: Some(tempopb::MetadataMetrics::default()),
        };
        protobuf_ok(msg.encode_to_vec())
    } else {
        json_ok(json::tag_names_v1(&names))
    }
}

async fn tag_names_v2(State(state): State<AppState>, RawQuery(raw_query): RawQuery, headers: HeaderMap) -> Response {
    let (_, mut scopes) = match tag_names(&state, &headers, raw_query.as_deref()).await {
        Ok(found) => found,
        Err(res) => return res,
    };
    scopes.retain(|s| !s.names.is_empty());
    if wants_protobuf(&headers) {
        let msg = tempopb::SearchTagsV2Response {
            scopes: scopes
                .into_iter()
                .map(|s| tempopb::SearchTagsV2Scope {
                    name: s.scope.as_str().to_owned(),
                    tags: s.names,
                })
                .collect(),
            metrics: Some(tempopb::MetadataMetrics::default()),
        };
        protobuf_ok(msg.encode_to_vec())
    } else {
        json_ok(json::tag_names_v2(&scopes))
    }
}

async fn tag_values(
    state: &AppState,
    headers: &HeaderMap,
    tag: &str,
    v2: bool,
    raw_query: Option<&str>,
) -> Result<Vec<crate::api::TypedValue>, Response> {
    let tenant = tenant(state, headers)?;
    let req = params::parse_tag_values(tag, v2, &Query::parse(raw_query)).map_err(bad_request)?;
    state.backend.tag_values(&tenant, req).await.map_err(backend_error)
}

async fn tag_values_v1(
    State(state): State<AppState>,
    Path(tag): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let values = match tag_values(&state, &headers, &tag, false, raw_query.as_deref()).await {
        Ok(values) => values,
        Err(res) => return res,
    };
    let mut values: Vec<String> = values.into_iter().map(|v| v.value).collect();
    values.sort();
    values.dedup();
    if wants_protobuf(&headers) {
        let msg = tempopb::SearchTagValuesResponse {
            tag_values: values,
            metrics: Some(tempopb::MetadataMetrics::default()),
        };
        protobuf_ok(msg.encode_to_vec())
    } else {
        json_ok(json::tag_values_v1(&values))
    }
}

async fn tag_values_v2(
    State(state): State<AppState>,
    Path(tag): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let values = match tag_values(&state, &headers, &tag, true, raw_query.as_deref()).await {
        Ok(values) => values,
        Err(res) => return res,
    };
    if wants_protobuf(&headers) {
        let msg = tempopb::SearchTagValuesV2Response {
            tag_values: values
                .into_iter()
                .map(|v| tempopb::TagValue {
                    r#type: v.r#type,
                    value: v.value,
                })
                .collect(),
            metrics: Some(tempopb::MetadataMetrics::default()),
        };
        protobuf_ok(msg.encode_to_vec())
    } else {
        json_ok(json::tag_values_v2(&values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let mut headers = HeaderMap::new();
        assert!(!wants_protobuf(&headers));
        headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(!wants_protobuf(&headers));
        headers.insert(http::header::ACCEPT, HeaderValue::from_static("application/protobuf"));
        assert!(wants_protobuf(&headers));
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json, Application/Protobuf; q=0.9"),
        );
        assert!(wants_protobuf(&headers));
    }
}
