//! The router role: Grafana Tempo's HTTP API (port 3200) and Flight SQL (port
//! 50053), answered by queriers over Flight.

mod client;
pub mod flight_sql;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use signaldb_config::TenantId;
use signaldb_tempo::{
    BackendError, INTRINSIC_TAG_NAMES, ScopedTags, SearchMetrics, SearchRequest, SearchResult, ServiceStats, SpanOut,
    SpanSetOut, TagNamesRequest, TagScope, TagValuesRequest, TempoBackend, TraceSummary, TypedValue,
};
use tonic::Status;

pub use client::QuerierClient;

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

fn decode_hex<const N: usize>(s: &str) -> Result<[u8; N], BackendError> {
    let v = hex::decode(s).map_err(|e| BackendError::Internal(format!("bad id from querier: {e}")))?;
    v.try_into()
        .map_err(|_| BackendError::Internal("bad id length from querier".into()))
}

#[async_trait::async_trait]
impl TempoBackend for QuerierBackend {
    async fn trace_by_id(
        &self,
        tenant: &TenantId,
        trace_id: [u8; 16],
        range: Option<(u64, u64)>,
    ) -> Result<Option<Vec<ResourceSpans>>, BackendError> {
        let range = range.and_then(|(s, e)| range_ns(Some(s), Some(e)));
        let batches = self
            .queriers
            .trace_by_id(tenant, trace_id, range)
            .await
            .map_err(backend_error)?;
        let mut out = Vec::new();
        for b in &batches {
            out.extend(signaldb_schema::traces::arrow_to_otlp(b).map_err(|e| BackendError::Internal(e.to_string()))?);
        }
        Ok((!out.is_empty()).then_some(out))
    }

    async fn search(&self, tenant: &TenantId, req: SearchRequest) -> Result<SearchResult, BackendError> {
        let action = wire::SearchAction {
            tenant: tenant.to_string(),
            q: req.q,
            tags: req.tags,
            min_duration_ns: req.min_duration_nanos,
            max_duration_ns: req.max_duration_nanos,
            limit: req.limit as usize,
            spans_per_spanset: req.spans_per_spanset as usize,
            range: range_ns(req.start, req.end),
        };
        let r: wire::SearchActionResult = self
            .queriers
            .action(wire::SEARCH, &action)
            .await
            .map_err(backend_error)?;
        let mut traces = Vec::with_capacity(r.traces.len());
        for t in r.traces {
            let mut spans = Vec::with_capacity(t.spans.len());
            for s in t.spans {
                spans.push(SpanOut {
                    span_id: decode_hex(&s.span_id)?,
                    name: Some(s.name),
                    start_time_unix_nano: s.start_time_unix_nano,
                    duration_nanos: s.duration_nanos,
                    attributes: s.attributes,
                });
            }
            traces.push(TraceSummary {
                trace_id: decode_hex(&t.trace_id)?,
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
                    .map(|(k, (span_count, error_count))| {
                        (
                            k,
                            ServiceStats {
                                span_count,
                                error_count,
                            },
                        )
                    })
                    .collect(),
            });
        }
        Ok(SearchResult {
            traces,
            metrics: SearchMetrics {
                inspected_traces: u32::try_from(r.inspected_traces).unwrap_or(u32::MAX),
                inspected_bytes: r.inspected_bytes,
                completed_jobs: 1,
                total_jobs: 1,
            },
        })
    }

    async fn tag_names(&self, tenant: &TenantId, req: TagNamesRequest) -> Result<Vec<ScopedTags>, BackendError> {
        let action = wire::TagNamesAction {
            tenant: tenant.to_string(),
            range: range_ns(req.start, req.end),
            q: req.q.clone(),
        };
        let r: wire::TagNamesResult = self
            .queriers
            .action(wire::TAG_NAMES, &action)
            .await
            .map_err(backend_error)?;
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
                (Some("resource"), n)
            } else if let Some(n) = req.tag.strip_prefix("span.") {
                (Some("span"), n)
            } else if let Some(n) = req.tag.strip_prefix('.') {
                (None, n)
            } else {
                (Some("intrinsic"), req.tag.as_str())
            }
        } else {
            (None, req.tag.as_str())
        };
        let action = wire::TagValuesAction {
            tenant: tenant.to_string(),
            scope: scope.map(str::to_owned),
            name: name.to_owned(),
            range: range_ns(req.start, req.end),
            q: req.q.clone(),
        };
        let r: wire::TagValuesResult = self
            .queriers
            .action(wire::TAG_VALUES, &action)
            .await
            .map_err(backend_error)?;
        Ok(r.values.into_iter().map(|(t, v)| TypedValue::new(t, v)).collect())
    }
}
