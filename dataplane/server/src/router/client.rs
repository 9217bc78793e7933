//! The router's client of the queriers: picks a live querier from the
//! catalog (capability `QueryExecution`) and calls it over Flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::{Action, FlightData, Ticket};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use signaldb_catalog::Catalog;
use signaldb_config::{Capability, Role, TenantId};
use tonic::Status;

use crate::endpoints::{Readiness, Use};
use crate::flight::FlightPool;
use crate::now_ms;
use crate::proto::{QueryKind, QueryTicket, TraceByIdQuery};

/// Calls queriers.
#[derive(Debug, Clone)]
pub struct QuerierClient {
    catalog: Arc<dyn Catalog>,
    pool: FlightPool,
    ttl: Duration,
    next: Arc<AtomicUsize>,
    readiness: Option<Readiness>,
}

impl QuerierClient {
    pub fn new(catalog: Arc<dyn Catalog>, pool: FlightPool, ttl: Duration) -> Self {
        Self {
            catalog,
            pool,
            ttl,
            next: Arc::new(AtomicUsize::new(0)),
            readiness: None,
        }
    }

    /// Also skips queriers whose pods the EndpointSlices say are not ready.
    pub fn with_readiness(mut self, readiness: Option<Readiness>) -> Self {
        self.readiness = readiness;
        self
    }

    /// A live querier's address, round robin.
    async fn pick(&self) -> Result<String, Status> {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let queriers = self
            .catalog
            .live_services(Capability::QueryExecution, now_ms(), ttl_ms)
            .await
            .map_err(|e| Status::unavailable(format!("catalog: {e}")))?;
        let queriers = match &self.readiness {
            Some(r) => r.filter(Role::Querier, queriers, Use::Route),
            None => queriers,
        };
        if queriers.is_empty() {
            return Err(Status::unavailable("no querier is registered and alive"));
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % queriers.len();
        Ok(queriers[i].address.clone())
    }

    /// Streams the raw Flight data of a query ticket.
    pub async fn do_get(
        &self,
        ticket: QueryTicket,
    ) -> Result<impl Stream<Item = Result<FlightData, Status>> + Send + 'static, Status> {
        let address = self.pick().await?;
        let mut client = self
            .pool
            .client(&address)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let stream = client
            .do_get(Ticket {
                ticket: ticket.encode_to_vec().into(),
            })
            .await?
            .into_inner();
        Ok(stream)
    }

    /// All spans of a trace, as the querier streams them.
    pub async fn trace_by_id(
        &self,
        tenant: &TenantId,
        trace_id: [u8; 16],
        range: Option<(i64, i64)>,
    ) -> Result<(Vec<String>, BoxStream<'static, Result<RecordBatch, Status>>), Status> {
        let ticket = QueryTicket {
            tenant: tenant.to_string(),
            kind: Some(QueryKind::TraceById(TraceByIdQuery {
                trace_id: trace_id.to_vec(),
                has_range: range.is_some(),
                min_time_ns: range.map(|r| r.0).unwrap_or_default(),
                max_time_ns: range.map(|r| r.1).unwrap_or_default(),
            })),
        };
        let stream = self.do_get(ticket).await?;
        let mut batches = FlightRecordBatchStream::new_from_flight_data(
            stream.map_err(|s| arrow_flight::error::FlightError::Tonic(Box::new(s))),
        );
        // The schema comes first: it names the writers the querier could
        // not read, if any.
        let first = batches.next().await;
        let unreachable: Vec<String> = batches
            .schema()
            .and_then(|s| s.metadata().get(crate::querier::wire::UNREACHABLE_WRITERS_KEY))
            .map(|v| v.split(',').filter(|w| !w.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let status = |e| match e {
            arrow_flight::error::FlightError::Tonic(s) => *s,
            other => Status::internal(other.to_string()),
        };
        let rest = futures::stream::iter(first).chain(batches).map_err(status).boxed();
        Ok((unreachable, rest))
    }

    /// Runs an action on a querier: `request` is its body, and every
    /// message of its result stream is decoded as `Reply`, as it arrives.
    pub async fn action_stream<Req: Message, Reply: Message + Default + 'static>(
        &self,
        name: &str,
        request: &Req,
    ) -> Result<BoxStream<'static, Result<Reply, Status>>, Status> {
        let address = self.pick().await?;
        let mut client = self
            .pool
            .client(&address)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let results = client
            .do_action(Action {
                r#type: name.to_owned(),
                body: request.encode_to_vec().into(),
            })
            .await?
            .into_inner();
        Ok(results
            .map(|result| {
                Reply::decode(result?.body).map_err(|e| Status::internal(format!("undecodable querier result: {e}")))
            })
            .boxed())
    }

    /// Runs an action on a querier and collects its replies.
    pub async fn action<Req: Message, Reply: Message + Default + 'static>(
        &self,
        name: &str,
        request: &Req,
    ) -> Result<Vec<Reply>, Status> {
        self.action_stream(name, request).await?.try_collect().await
    }
}
