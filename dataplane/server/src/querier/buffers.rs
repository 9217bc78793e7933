//! The querier's view of the writers' unflushed data: Flight `DoGet` to every
//! live writer (draining ones included: they still hold data until flushed).

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::Ticket;
use arrow_flight::decode::FlightRecordBatchStream;
use async_trait::async_trait;
use futures::TryStreamExt;
use prost::Message;
use signaldb_catalog::Catalog;
use signaldb_config::{Capability, Role, TenantId};
use signaldb_query::{BufferFilter, BufferSource, Buffered, QueryError};
use tracing::warn;

use crate::endpoints::{Readiness, Use};
use crate::flight::FlightPool;
use crate::now_ms;
use crate::proto::BufferTicket;

/// Reads buffers from the writers registered in the catalog.
#[derive(Debug, Clone)]
pub struct WriterBuffers {
    pub catalog: Arc<dyn Catalog>,
    pub pool: FlightPool,
    pub ttl: Duration,
    pub timeout: Duration,
    /// In Kubernetes: skip writers whose pods are not serving.
    pub readiness: Option<Readiness>,
}

#[async_trait]
impl BufferSource for WriterBuffers {
    async fn buffered(&self, tenant: &TenantId, filter: BufferFilter) -> Result<Buffered, QueryError> {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let writers = self
            .catalog
            .live_services(Capability::Storage, now_ms(), ttl_ms)
            .await?;
        let writers = match &self.readiness {
            Some(r) => r.filter(Role::Writer, writers, Use::Read),
            None => writers,
        };
        let ticket = BufferTicket {
            tenant: tenant.to_string(),
            trace_id: Vec::new(),
            has_range: filter.range.is_some(),
            min_time_ns: filter.range.map(|r| r.0).unwrap_or_default(),
            max_time_ns: filter.range.map(|r| r.1).unwrap_or_default(),
            trace_ids: filter.trace_ids.iter().map(|id| id.to_vec()).collect(),
            condition: filter
                .condition
                .as_ref()
                .map(|c| signaldb_traceql::ConditionPlan::new(Some(c))),
            columns: filter
                .columns
                .map(|cols| cols.iter().map(|c| (*c).to_owned()).collect())
                .unwrap_or_default(),
            max_traces: filter.max_traces.map_or(0, |n| n.max(1) as u64),
        };
        let ticket = Ticket {
            ticket: ticket.encode_to_vec().into(),
        };
        let fetches = writers.iter().map(|w| {
            let ticket = ticket.clone();
            async move {
                let fetch = async {
                    let mut client = self.pool.client(&w.address).map_err(|e| e.to_string())?;
                    let stream = client.do_get(ticket).await.map_err(|s| s.to_string())?.into_inner();
                    FlightRecordBatchStream::new_from_flight_data(
                        stream.map_err(|s| arrow_flight::error::FlightError::Tonic(Box::new(s))),
                    )
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(|e| e.to_string())
                };
                match tokio::time::timeout(self.timeout, fetch).await {
                    Ok(Ok(batches)) => Ok(batches),
                    Ok(Err(e)) => {
                        warn!(writer = %w.id, error = %e, "cannot read a writer's buffer; the answer says it is partial");
                        Err(w.id.clone())
                    }
                    Err(_) => {
                        warn!(writer = %w.id, "reading a writer's buffer timed out; the answer says it is partial");
                        Err(w.id.clone())
                    }
                }
            }
        });
        let mut out = Buffered::default();
        for fetched in futures::future::join_all(fetches).await {
            match fetched {
                Ok(batches) => out.batches.extend(batches),
                Err(writer) => out.unreachable.push(writer),
            }
        }
        Ok(out)
    }
}
