//! The router role: Grafana Tempo's HTTP API (port 3200) and Flight SQL (port
//! 50053), answered by queriers over Flight.

mod client;
pub mod flight_sql;

use futures::{StreamExt as _, TryStreamExt as _};
use signaldb_config::TenantId;
use signaldb_tempo::{
    BackendError, BackendStream, INTRINSIC_TAG_NAMES, ScopedTags, SearchItem, SearchMetrics, SearchRequest,
    ServiceStats, SpanOut, SpanSetOut, TagNamesRequest, TagScope, TagValuesRequest, TempoBackend, TraceAnswer,
    TraceSummary, TypedValue,
};
use tonic::Status;

pub use client::QuerierClient;

/// The Tempo API with API keys checked (`tenancy.api_keys`): a query
/// route's request gets its key's tenant as `X-Scope-OrgID` (an
/// `X-Scope-OrgID` naming another tenant is refused with 403), or 401
/// without a valid key. `/ready`, `/api/echo` and `/api/status/buildinfo`
/// stay open, for probes.
pub fn with_api_keys(app: axum::Router, tenants: Tenants) -> axum::Router {
    if !tenants.keys_required() {
        return app;
    }
    app.layer(axum::middleware::from_fn_with_state(tenants, check_api_key))
}

async fn check_api_key(
    axum::extract::State(tenants): axum::extract::State<Tenants>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let path = request.uri().path();
    if !path.starts_with("/api/") || path == "/api/echo" || path == "/api/status/buildinfo" {
        return next.run(request).await;
    }
    let headers = request.headers();
    let text = |name: &str| headers.get(name).map(|v| v.to_str().map_err(|_| ()));
    let resolved = tenants
        .resolve(text("authorization"), text(signaldb_tempo::ORG_ID_HEADER))
        .await;
    let (status, message) = match resolved {
        Ok(tenant) => match http::HeaderValue::from_str(tenant.as_str()) {
            Ok(value) => {
                request.headers_mut().insert(signaldb_tempo::ORG_ID_HEADER, value);
                return next.run(request).await;
            }
            Err(_) => (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "tenant id is not a header value".to_owned(),
            ),
        },
        Err(AuthError::Unauthenticated(m)) => (http::StatusCode::UNAUTHORIZED, m),
        Err(AuthError::Forbidden(m)) => (http::StatusCode::FORBIDDEN, m),
        Err(AuthError::Unavailable(m)) => (http::StatusCode::SERVICE_UNAVAILABLE, m),
    };
    (
        status,
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

use crate::api_keys::{AuthError, Tenants};
use crate::querier::wire;

/// Answers the Tempo API from queriers.
#[derive(Debug, Clone)]
pub struct QuerierBackend {
    queriers: QuerierClient,
}

impl QuerierBackend {
    pub fn new(queriers: QuerierClient) -> Self {
        Self { queriers }
    }
}

fn backend_error(s: Status) -> BackendError {
    match s.code() {
        tonic::Code::InvalidArgument => BackendError::BadRequest(s.message().to_owned()),
        tonic::Code::Unavailable => BackendError::Unavailable(s.message().to_owned()),
        tonic::Code::DeadlineExceeded => BackendError::Timeout(s.message().to_owned()),
        tonic::Code::ResourceExhausted => BackendError::Exhausted(s.message().to_owned()),
        _ => BackendError::Internal(s.message().to_owned()),
    }
}

/// Unix seconds to a nanosecond range.
fn range_ns(start: Option<u64>, end: Option<u64>) -> Option<(i64, i64)> {
    if start.is_none() && end.is_none() {
        return None;
    }
    let ns = |s: u64| i64::try_from(s.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX);
    Some((
        start.map(ns).unwrap_or(0),
        end.map(|e| ns(e.saturating_add(1))).unwrap_or(i64::MAX),
    ))
}

/// The TraceQL of a search, parsed here once: `q`, or Tempo's legacy
/// `tags` with the duration bounds.
fn search_query(req: &SearchRequest) -> Result<signaldb_traceql::Query, BackendError> {
    match req.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) => {
            signaldb_traceql::parse(q).map_err(|e| BackendError::BadRequest(format!("invalid TraceQL query: {e}")))
        }
        None => Ok(signaldb_traceql::from_tags(
            &req.tags,
            req.min_duration_nanos,
            req.max_duration_nanos,
        )),
    }
}

/// The span condition of the TraceQL `q` that tag lookups filter by
/// (Grafana's autocomplete sends the query being typed). A `q` that does
/// not parse (a query half typed) or has no span condition filters nothing,
/// as Tempo answers autocomplete from what it can use.
fn tag_condition(q: Option<&str>) -> Option<signaldb_traceql::ConditionPlan> {
    let query = signaldb_traceql::parse(q.map(str::trim).filter(|q| !q.is_empty())?).ok()?;
    let condition = signaldb_traceql::span_prefilter(&query)?;
    Some(signaldb_traceql::ConditionPlan::new(Some(&condition)))
}

fn id<const N: usize>(bytes: &[u8]) -> Result<[u8; N], BackendError> {
    bytes
        .try_into()
        .map_err(|_| BackendError::Internal(format!("an id of {} bytes from a querier, not {N}", bytes.len())))
}

/// One reply of a querier's search as the Tempo API's item; `None` for
/// an empty reply.
fn search_item(reply: wire::SearchReply) -> Result<Option<SearchItem>, BackendError> {
    let t = match reply.item {
        Some(wire::search_reply::Item::Trace(t)) => t,
        Some(wire::search_reply::Item::Metrics(m)) => {
            // As Tempo says an answer is incomplete: fewer jobs completed
            // than there were. The stored files are one job, each writer
            // whose buffer could not be read one more that did not complete.
            let failed = u32::try_from(m.unreachable_writers.len()).unwrap_or(u32::MAX);
            if failed > 0 {
                tracing::warn!(writers = ?m.unreachable_writers, "search answered without some writers' unflushed data");
            }
            return Ok(Some(SearchItem::Metrics(SearchMetrics {
                inspected_traces: u32::try_from(m.inspected_traces).unwrap_or(u32::MAX),
                inspected_bytes: m.inspected_bytes,
                completed_jobs: 1,
                total_jobs: 1 + failed,
            })));
        }
        None => return Ok(None),
    };
    let mut spans = Vec::with_capacity(t.spans.len());
    for s in t.spans {
        spans.push(SpanOut {
            span_id: id(&s.span_id)?,
            name: Some(s.name),
            start_time_unix_nano: s.start_time_unix_nano,
            duration_nanos: s.duration_nanos,
            attributes: s.attributes,
        });
    }
    Ok(Some(SearchItem::Trace(TraceSummary {
        trace_id: id(&t.trace_id)?,
        root_service_name: t.root_service_name,
        root_trace_name: t.root_trace_name,
        start_time_unix_nano: t.start_time_unix_nano,
        duration_ms: u32::try_from(t.duration_ms).unwrap_or(u32::MAX),
        span_sets: vec![SpanSetOut {
            spans,
            matched: t.matched,
            attributes: Vec::new(),
        }],
        service_stats: t
            .service_stats
            .into_iter()
            .map(|s| {
                (
                    s.service,
                    ServiceStats {
                        span_count: s.spans,
                        error_count: s.errors,
                    },
                )
            })
            .collect(),
    })))
}

#[async_trait::async_trait]
impl TempoBackend for QuerierBackend {
    async fn trace_by_id(
        &self,
        tenant: &TenantId,
        trace_id: [u8; 16],
        range: Option<(u64, u64)>,
    ) -> Result<TraceAnswer, BackendError> {
        let range = range.and_then(|(s, e)| range_ns(Some(s), Some(e)));
        let (unreachable, batches) = self
            .queriers
            .trace_by_id(tenant, trace_id, range)
            .await
            .map_err(backend_error)?;
        let partial = (!unreachable.is_empty()).then(|| {
            tracing::warn!(writers = ?unreachable, "trace answered without some writers' unflushed data");
            format!(
                "the unflushed data of writer(s) {} could not be read; spans only they hold are missing",
                unreachable.join(", ")
            )
        });
        let pieces = batches
            .map(|batch| {
                signaldb_schema::traces::arrow_to_otlp(&batch.map_err(backend_error)?)
                    .map_err(|e| BackendError::Internal(e.to_string()))
            })
            .boxed();
        Ok(TraceAnswer { pieces, partial })
    }

    async fn search(&self, tenant: &TenantId, req: SearchRequest) -> Result<BackendStream<SearchItem>, BackendError> {
        let request = wire::SearchRequest {
            tenant: tenant.to_string(),
            plan: Some(search_query(&req)?.to_plan()),
            limit: req.limit,
            spans_per_spanset: req.spans_per_spanset,
            range: wire::TimeRange::from_pair(range_ns(req.start, req.end)),
        };
        let replies = self
            .queriers
            .action_stream::<_, wire::SearchReply>(wire::SEARCH, &request)
            .await
            .map_err(backend_error)?;
        Ok(replies
            .map_err(backend_error)
            .try_filter_map(|reply| futures::future::ready(search_item(reply)))
            .boxed())
    }

    async fn tag_names(&self, tenant: &TenantId, req: TagNamesRequest) -> Result<Vec<ScopedTags>, BackendError> {
        let request = wire::TagNamesRequest {
            tenant: tenant.to_string(),
            range: wire::TimeRange::from_pair(range_ns(req.start, req.end)),
            condition: tag_condition(req.q.as_deref()),
        };
        let r: wire::TagNamesReply = self
            .queriers
            .action(wire::TAG_NAMES, &request)
            .await
            .map_err(backend_error)?
            .pop()
            .ok_or_else(|| BackendError::Internal("the querier returned no tag names".into()))?;
        let all = [
            ScopedTags {
                scope: TagScope::Resource,
                names: r.resource,
            },
            ScopedTags {
                scope: TagScope::Span,
                names: r.span,
            },
            ScopedTags {
                scope: TagScope::Intrinsic,
                names: INTRINSIC_TAG_NAMES.iter().map(|s| (*s).to_owned()).collect(),
            },
        ];
        Ok(all
            .into_iter()
            .filter(|s| req.scope.is_none_or(|want| want == s.scope))
            .collect())
    }

    async fn tag_values(&self, tenant: &TenantId, req: TagValuesRequest) -> Result<Vec<TypedValue>, BackendError> {
        let (scope, name) = if req.v2 {
            if let Some(n) = req.tag.strip_prefix("resource.") {
                (wire::TagScope::Resource, n)
            } else if let Some(n) = req.tag.strip_prefix("span.") {
                (wire::TagScope::Span, n)
            } else if let Some(n) = req.tag.strip_prefix('.') {
                (wire::TagScope::Any, n)
            } else {
                (wire::TagScope::Intrinsic, req.tag.as_str())
            }
        } else {
            (wire::TagScope::Any, req.tag.as_str())
        };
        let request = wire::TagValuesRequest {
            tenant: tenant.to_string(),
            scope: scope as i32,
            name: name.to_owned(),
            range: wire::TimeRange::from_pair(range_ns(req.start, req.end)),
            condition: tag_condition(req.q.as_deref()),
        };
        let r: wire::TagValuesReply = self
            .queriers
            .action(wire::TAG_VALUES, &request)
            .await
            .map_err(backend_error)?
            .pop()
            .ok_or_else(|| BackendError::Internal("the querier returned no tag values".into()))?;
        Ok(r.values
            .into_iter()
            .map(|v| TypedValue::new(v.r#type, v.value))
            .collect())
    }
}
