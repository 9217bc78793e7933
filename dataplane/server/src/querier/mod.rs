//! The querier role: a Flight service (port 50052) over the query engine.
//!
//! `DoGet` takes a [`QueryTicket`] (a trace by id, or SQL) and streams Arrow;
//! `DoAction` runs searches and tag lookups: protobuf requests carrying the
//! parsed query, protobuf answers ([`wire`]).

mod buffers;
pub mod wire;

use std::pin::Pin;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, SchemaResult, Ticket,
};
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use prost::Message;
use signaldb_config::TenantId;
use signaldb_query::{QueryEngine, QueryError, SearchParams, TagScope};
use signaldb_schema::columns;
use tonic::{Request, Response, Status, Streaming};

pub use buffers::WriterBuffers;

use crate::flight::MAX_MESSAGE_SIZE;
use crate::proto::{QueryKind, QueryTicket};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The gRPC status of each query error.
pub fn query_status(e: QueryError) -> Status {
    let msg = e.to_string();
    match e {
        QueryError::BadRequest(_) => Status::invalid_argument(msg),
        QueryError::Exhausted(_) => Status::resource_exhausted(msg),
        QueryError::Catalog(_) | QueryError::Buffers(_) => Status::unavailable(msg),
        QueryError::DataFusion(ref inner) if is_user_error(inner) => Status::invalid_argument(msg),
        QueryError::DataFusion(ref inner) if signaldb_query::is_timeout(inner) => Status::deadline_exceeded(msg),
        QueryError::DataFusion(ref inner)
            if matches!(
                inner.find_root(),
                signaldb_query::DataFusionError::ResourcesExhausted(_)
            ) =>
        {
            Status::resource_exhausted(msg)
        }
        QueryError::DataFusion(_) => Status::internal(msg),
        QueryError::Arrow(_) | QueryError::Parquet(_) | QueryError::Internal(_) => Status::internal(msg),
    }
}

fn is_user_error(e: &signaldb_query::DataFusionError) -> bool {
    use signaldb_query::DataFusionError as D;
    matches!(
        e.find_root(),
        D::SQL(..) | D::Plan(_) | D::SchemaError(..) | D::NotImplemented(_)
    )
}

/// Searches and tag lookups without `start`/`end` cover the last `lookback`
/// (Tempo likewise answers them from recent data), so that one request cannot
/// read a tenant's whole history.
fn range_or_recent(range: Option<(i64, i64)>, lookback: std::time::Duration) -> Option<(i64, i64)> {
    range.or_else(|| {
        let now = crate::now_ms().saturating_mul(1_000_000);
        let back = i64::try_from(lookback.as_nanos()).unwrap_or(i64::MAX);
        Some((now.saturating_sub(back), i64::MAX))
    })
}

/// The status of an error inside a result stream: a query error keeps its
/// own status (a timeout stays `DEADLINE_EXCEEDED`), anything else is internal.
fn stream_status(e: arrow_flight::error::FlightError) -> Status {
    use arrow_flight::error::FlightError;
    match e {
        FlightError::ExternalError(inner) => match inner.downcast::<signaldb_query::DataFusionError>() {
            Ok(df) => query_status(QueryError::DataFusion(*df)),
            Err(other) => Status::internal(other.to_string()),
        },
        FlightError::Tonic(status) => *status,
        other => Status::internal(other.to_string()),
    }
}

/// The condition a tag lookup carries, checked.
fn condition_of(plan: Option<&signaldb_traceql::ConditionPlan>) -> Result<Option<signaldb_traceql::FieldExpr>, Status> {
    match plan {
        Some(plan) => plan.condition().map_err(|e| Status::invalid_argument(e.to_string())),
        None => Ok(None),
    }
}

fn matching_spans(
    spans: arrow_array::RecordBatch,
    condition: Option<&signaldb_traceql::FieldExpr>,
) -> Result<arrow_array::RecordBatch, Status> {
    let Some(condition) = condition else {
        return Ok(spans);
    };
    let mask =
        signaldb_traceql::span_mask(condition, &spans).map_err(|e| Status::invalid_argument(format!("q: {e}")))?;
    arrow::compute::filter_record_batch(&spans, &mask).map_err(|e| Status::internal(e.to_string()))
}

fn tenant(s: &str) -> Result<TenantId, Status> {
    TenantId::new(s).map_err(|e| Status::invalid_argument(format!("tenant: {e}")))
}

/// What a querier lets one query do, besides the engine's own bounds.
#[derive(Debug, Clone, Copy)]
pub struct QuerierLimits {
    /// How far back searches without `start`/`end` look.
    pub lookback: std::time::Duration,
    /// Longest range a search or tag lookup may name (zero: any).
    pub max_search_duration: std::time::Duration,
    /// Queries run at once before more are refused.
    pub max_running: usize,
}

/// Each tenant's slots (`limits.*.max_concurrent_queries`).
#[derive(Debug)]
struct TenantSlots {
    limits: signaldb_config::LimitsConfig,
    slots: std::sync::Mutex<std::collections::HashMap<TenantId, std::sync::Arc<tokio::sync::Semaphore>>>,
}

/// Tenants whose slots are kept before idle ones are forgotten.
const MAX_TENANT_SLOTS: usize = 10_000;

impl TenantSlots {
    /// A slot of `tenant`'s, or RESOURCE_EXHAUSTED when all are taken;
    /// `None` when the tenant has no limit of its own.
    fn acquire(&self, tenant: &TenantId) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, Status> {
        let max = self.limits.of(tenant).max_concurrent_queries;
        if max == 0 {
            return Ok(None);
        }
        let semaphore = {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if slots.len() >= MAX_TENANT_SLOTS && !slots.contains_key(tenant) {
                slots.retain(|_, s| std::sync::Arc::strong_count(s) > 1);
            }
            std::sync::Arc::clone(
                slots
                    .entry(tenant.clone())
                    .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(max))),
            )
        };
        semaphore.try_acquire_owned().map(Some).map_err(|_| {
            Status::resource_exhausted(format!(
                "tenant {tenant} is running {max} queries on this querier already \
                 (limits max_concurrent_queries); retry shortly"
            ))
        })
    }
}

/// Flight front end of the query engine.
#[derive(Debug, Clone)]
pub struct QuerierFlight {
    engine: QueryEngine,
    limits: QuerierLimits,
    running: std::sync::Arc<tokio::sync::Semaphore>,
    tenants: std::sync::Arc<TenantSlots>,
}

/// The slots one query holds while it runs.
type Slots = (
    tokio::sync::OwnedSemaphorePermit,
    Option<tokio::sync::OwnedSemaphorePermit>,
);

impl QuerierFlight {
    /// `tenant_limits`: the per-tenant limits, of which queries use
    /// `max_concurrent_queries`.
    pub fn new(engine: QueryEngine, limits: QuerierLimits, tenant_limits: signaldb_config::LimitsConfig) -> Self {
        Self {
            engine,
            limits,
            running: std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_running)),
            tenants: std::sync::Arc::new(TenantSlots {
                limits: tenant_limits,
                slots: std::sync::Mutex::default(),
            }),
        }
    }

    /// The range a search or tag lookup covers: the one asked for, refused
    /// when longer than `querier.max_search_duration`, or the default
    /// lookback.
    fn range(&self, asked: Option<wire::TimeRange>) -> Result<Option<(i64, i64)>, Status> {
        let asked = wire::TimeRange::pair(asked);
        let max = self.limits.max_search_duration;
        if let Some((start, end)) = asked
            && !max.is_zero()
            && start > 0
            && end < i64::MAX
            && u128::try_from(end.saturating_sub(start)).unwrap_or(0) > max.as_nanos()
        {
            return Err(Status::invalid_argument(format!(
                "range specified by start and end ({}) exceeds querier.max_search_duration ({})",
                humantime::format_duration(std::time::Duration::from_secs(
                    u64::try_from(end.saturating_sub(start) / 1_000_000_000).unwrap_or(0)
                )),
                humantime::format_duration(max)
            )));
        }
        Ok(range_or_recent(asked, self.limits.lookback))
    }

    /// `query`, ended with DEADLINE_EXCEEDED past the engine's time limit
    /// (SQL streams carry the same limit themselves). An answer that comes
    /// after the limit is refused too: the timer's millisecond ticks would
    /// otherwise let a query finishing within the tick past it.
    async fn bounded<T>(&self, query: impl std::future::Future<Output = Result<T, Status>>) -> Result<T, Status> {
        let limit = self.engine.timeout();
        let started = tokio::time::Instant::now();
        let timed_out = || Status::deadline_exceeded(signaldb_query::QueryTimedOut(limit).to_string());
        let answer = tokio::time::timeout(limit, query).await.map_err(|_| timed_out())?;
        if started.elapsed() > limit {
            return Err(timed_out());
        }
        answer
    }

    /// `query` run on the engine's query runtime.
    async fn on_query_runtime<T: Send + 'static>(
        &self,
        query: impl std::future::Future<Output = Result<T, Status>> + Send + 'static,
    ) -> Result<T, Status> {
        self.engine
            .run(async move { Ok(query.await) })
            .await
            .map_err(query_status)?
    }

    /// A slot for one query of `tenant`, or RESOURCE_EXHAUSTED when the
    /// querier's or the tenant's are all taken.
    fn admit(&self, tenant_id: &str) -> Result<Slots, Status> {
        let t = tenant(tenant_id)?;
        let global = std::sync::Arc::clone(&self.running).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "this querier is running {} queries already (querier.max_concurrent_queries); retry shortly",
                self.limits.max_running
            ))
        })?;
        Ok((global, self.tenants.acquire(&t)?))
    }

    pub fn into_server(self) -> FlightServiceServer<Self> {
        FlightServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    async fn search(&self, a: wire::SearchRequest) -> Result<Vec<wire::SearchReply>, Status> {
        use wire::search_reply::Item;
        let t = tenant(&a.tenant)?;
        let plan = a
            .plan
            .ok_or_else(|| Status::invalid_argument("search request without a query plan"))?;
        let query = signaldb_traceql::Query::from_plan(&plan).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let range = self.range(a.range)?;
        let params = SearchParams {
            query,
            limit: a.limit as usize,
            spans_per_spanset: a.spans_per_spanset as usize,
        };
        let stats = signaldb_query::ReadStats::default();
        let (traces, inspected_traces, inspected_spans) =
            signaldb_query::search(&self.engine, &t, range, &params, &stats)
                .await
                .map_err(query_status)?;
        let mut replies: Vec<wire::SearchReply> = traces
            .into_iter()
            .map(|t| wire::SearchReply {
                item: Some(Item::Trace(wire::TraceHit {
                    trace_id: t.trace_id.to_vec(),
                    root_service_name: t.root_service_name,
                    root_trace_name: t.root_trace_name,
                    start_time_unix_nano: t.start_time_unix_nano,
                    duration_ms: t.duration_ms,
                    spans: t
                        .spans
                        .into_iter()
                        .map(|s| wire::SpanHit {
                            span_id: s.span_id.to_vec(),
                            name: s.name,
                            start_time_unix_nano: s.start_time_unix_nano,
                            duration_nanos: s.duration_nanos,
                            attributes: s.attributes,
                        })
                        .collect(),
                    matched: t.matched,
                    service_stats: t
                        .service_stats
                        .into_iter()
                        .map(|(service, (spans, errors))| wire::ServiceStat { service, spans, errors })
                        .collect(),
                })),
            })
            .collect();
        replies.push(wire::SearchReply {
            item: Some(Item::Metrics(wire::SearchMetrics {
                inspected_traces,
                inspected_spans,
                inspected_bytes: stats.bytes(),
                unreachable_writers: stats.unreachable_writers(),
            })),
        });
        Ok(replies)
    }

    async fn tag_names(&self, a: wire::TagNamesRequest) -> Result<wire::TagNamesReply, Status> {
        let t = tenant(&a.tenant)?;
        let condition = condition_of(a.condition.as_ref())?;
        let mut cols = vec![
            columns::TRACE_ID,
            columns::SPAN_ID,
            columns::ATTRIBUTES,
            columns::RESOURCE_ATTRIBUTES,
        ];
        for c in signaldb_query::condition_columns(condition.as_ref()) {
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
        let spans = self
            .engine
            .spans_projected(&t, self.range(a.range)?, Some(&cols))
            .await
            .map_err(query_status)?;
        let spans = matching_spans(spans, condition.as_ref())?;
        let mut names = signaldb_query::tag_names(&spans).map_err(query_status)?;
        Ok(wire::TagNamesReply {
            resource: names
                .remove(&TagScope::Resource)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            span: names.remove(&TagScope::Span).unwrap_or_default().into_iter().collect(),
        })
    }

    async fn tag_values(&self, a: wire::TagValuesRequest) -> Result<wire::TagValuesReply, Status> {
        let t = tenant(&a.tenant)?;
        let condition = condition_of(a.condition.as_ref())?;
        let spans = self
            .engine
            .spans(&t, self.range(a.range)?)
            .await
            .map_err(query_status)?;
        let spans = matching_spans(spans, condition.as_ref())?;
        let scope = wire::TagScope::try_from(a.scope)
            .map_err(|_| Status::invalid_argument(format!("unknown tag scope {}", a.scope)))?;
        let values = match scope {
            wire::TagScope::Intrinsic => signaldb_query::intrinsic_values(&spans, &a.name).map_err(query_status)?,
            wire::TagScope::Resource => {
                signaldb_query::tag_values(&spans, Some(TagScope::Resource), &a.name).map_err(query_status)?
            }
            wire::TagScope::Span => {
                signaldb_query::tag_values(&spans, Some(TagScope::Span), &a.name).map_err(query_status)?
            }
            wire::TagScope::Any => signaldb_query::tag_values(&spans, None, &a.name).map_err(query_status)?,
        };
        Ok(wire::TagValuesReply {
            values: values
                .into_iter()
                .map(|(t, value)| wire::TypedValue {
                    r#type: t.to_owned(),
                    value,
                })
                .collect(),
        })
    }
}

fn decode_body<T: Message + Default>(body: &[u8]) -> Result<T, Status> {
    T::decode(body).map_err(|e| Status::invalid_argument(format!("undecodable action body: {e}")))
}

/// `messages` as the action's result stream, one result each.
fn results<T: Message>(messages: Vec<T>) -> Response<BoxStream<arrow_flight::Result>> {
    let items: Vec<Result<arrow_flight::Result, Status>> = messages
        .into_iter()
        .map(|m| {
            Ok(arrow_flight::Result {
                body: Bytes::from(m.encode_to_vec()),
            })
        })
        .collect();
    Response::new(Box::pin(futures::stream::iter(items)))
}

#[tonic::async_trait]
impl FlightService for QuerierFlight {
    type HandshakeStream = BoxStream<HandshakeResponse>;
    type ListFlightsStream = BoxStream<FlightInfo>;
    type DoGetStream = BoxStream<FlightData>;
    type DoPutStream = BoxStream<PutResult>;
    type DoActionStream = BoxStream<arrow_flight::Result>;
    type ListActionsStream = BoxStream<ActionType>;
    type DoExchangeStream = BoxStream<FlightData>;

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = QueryTicket::decode(request.into_inner().ticket)
            .map_err(|e| Status::invalid_argument(format!("undecodable query ticket: {e}")))?;
        let permit = self.admit(&ticket.tenant)?;
        let t = tenant(&ticket.tenant)?;
        let schema = signaldb_schema::traces::schema();
        let stream: BoxStream<FlightData> = match ticket.kind {
            Some(QueryKind::TraceById(q)) => {
                let id: [u8; 16] = q
                    .trace_id
                    .as_slice()
                    .try_into()
                    .map_err(|_| Status::invalid_argument("trace_id must be 16 bytes"))?;
                let range = q.has_range.then_some((q.min_time_ns, q.max_time_ns));
                let engine = self.engine.clone();
                let stats = signaldb_query::ReadStats::default();
                let counted = stats.clone();
                let batch = self
                    .bounded(async {
                        self.engine
                            .run(async move { engine.trace_by_id_counted(&t, id, range, &counted).await })
                            .await
                            .map_err(query_status)
                    })
                    .await?;
                // The schema, sent first, names the writers that could not
                // be read, so the router can say the trace may be partial.
                let unreachable = stats.unreachable_writers();
                let (schema, batch) = if unreachable.is_empty() {
                    (schema, batch)
                } else {
                    let metadata = std::collections::HashMap::from([(
                        wire::UNREACHABLE_WRITERS_KEY.to_owned(),
                        unreachable.join(","),
                    )]);
                    let marked =
                        |s: &arrow_schema::Schema| std::sync::Arc::new(s.clone().with_metadata(metadata.clone()));
                    match batch {
                        Some(b) => {
                            let schema = marked(b.schema().as_ref());
                            let b =
                                arrow_array::RecordBatch::try_new(std::sync::Arc::clone(&schema), b.columns().to_vec())
                                    .map_err(|e| Status::internal(e.to_string()))?;
                            (schema, Some(b))
                        }
                        None => (marked(schema.as_ref()), None),
                    }
                };
                Box::pin(
                    FlightDataEncoderBuilder::new()
                        .with_schema(schema)
                        .build(futures::stream::iter(batch.into_iter().map(Ok)))
                        .map_err(|e| Status::internal(e.to_string())),
                )
            }
            Some(QueryKind::Sql(sql)) => {
                let engine = self.engine.clone();
                let stream = self
                    .engine
                    .run(async move { engine.sql(&t, &sql).await })
                    .await
                    .map_err(query_status)?;
                let stream = self.engine.run_stream(stream);
                Box::pin(
                    FlightDataEncoderBuilder::new()
                        .build(stream.map_err(|e| arrow_flight::error::FlightError::ExternalError(Box::new(e))))
                        .map_err(stream_status),
                )
            }
            None => return Err(Status::invalid_argument("query ticket names no query")),
        };
        // The slot is held until the result stream ends or is dropped.
        let stream = stream.map_ok(move |data| {
            let _held = &permit;
            data
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn do_action(&self, request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        match action.r#type.as_str() {
            wire::SEARCH => {
                let (this, body) = (self.clone(), decode_body::<wire::SearchRequest>(&action.body)?);
                let _permit = self.admit(&body.tenant)?;
                Ok(results(
                    self.bounded(self.on_query_runtime(async move { this.search(body).await }))
                        .await?,
                ))
            }
            wire::TAG_NAMES => {
                let (this, body) = (self.clone(), decode_body::<wire::TagNamesRequest>(&action.body)?);
                let _permit = self.admit(&body.tenant)?;
                Ok(results(vec![
                    self.bounded(self.on_query_runtime(async move { this.tag_names(body).await }))
                        .await?,
                ]))
            }
            wire::TAG_VALUES => {
                let (this, body) = (self.clone(), decode_body::<wire::TagValuesRequest>(&action.body)?);
                let _permit = self.admit(&body.tenant)?;
                Ok(results(vec![
                    self.bounded(self.on_query_runtime(async move { this.tag_values(body).await }))
                        .await?,
                ]))
            }
            other => Err(Status::invalid_argument(format!("unknown action {other:?}"))),
        }
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        let actions = [wire::SEARCH, wire::TAG_NAMES, wire::TAG_VALUES].map(|a| {
            Ok(ActionType {
                r#type: a.to_owned(),
                description: String::new(),
            })
        });
        Ok(Response::new(Box::pin(futures::stream::iter(actions))))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("the querier needs no handshake"))
    }

    async fn list_flights(&self, _request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented("the querier lists no flights"))
    }

    async fn get_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented("use DoGet with a query ticket"))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("use DoGet with a query ticket"))
    }

    async fn get_schema(&self, _request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("use DoGet with a query ticket"))
    }

    async fn do_put(&self, _request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        Err(Status::unimplemented(
            "the querier stores nothing; send data to an acceptor",
        ))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("the querier has no exchanges"))
    }
}
