//! What a query may do and how long it may take: SQL limited to queries, an
//! object store registry that knows only SignalDB's store, and a deadline on
//! every result stream.

use std::sync::Arc;
use std::time::Duration;

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use object_store::ObjectStore;
use url::Url;

/// SQL that reads only: no DDL (`CREATE EXTERNAL TABLE`, views), no DML
/// (`INSERT`, `COPY`), no statements (`SET`, transactions), anywhere in the
/// plan, so `EXPLAIN ANALYZE COPY ...` is refused like `COPY ...`.
pub(crate) fn read_only_sql() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// An object store registry holding SignalDB's store under one URL and
/// nothing else: a plan can never reach `file://` or any other store.
#[derive(Debug)]
pub(crate) struct OnlyOurStore {
    url: Url,
    store: Arc<dyn ObjectStore>,
}

impl OnlyOurStore {
    pub(crate) fn new(url: Url, store: Arc<dyn ObjectStore>) -> Self {
        Self { url, store }
    }

    fn key(url: &Url) -> (&str, &str) {
        (url.scheme(), url.host_str().unwrap_or_default())
    }
}

impl ObjectStoreRegistry for OnlyOurStore {
    fn register_store(&self, _url: &Url, _store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        // Fixed at construction; nothing can add a store.
        None
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        if Self::key(url) == Self::key(&self.url) {
            Ok(Arc::clone(&self.store))
        } else {
            Err(DataFusionError::Plan(format!(
                "object store {url} is not available: queries read only SignalDB's own tables"
            )))
        }
    }
}

/// A query ran past its time limit.
#[derive(Debug, thiserror::Error)]
#[error("query exceeded its time limit of {}", humanize(*.0))]
pub struct QueryTimedOut(pub Duration);

fn humanize(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Whether `e` (or what it wraps) is a [`QueryTimedOut`].
pub fn is_timeout(e: &DataFusionError) -> bool {
    match e.find_root() {
        DataFusionError::External(inner) => inner.downcast_ref::<QueryTimedOut>().is_some(),
        _ => false,
    }
}

/// `stream`, ending with a [`QueryTimedOut`] error once `limit` has passed
/// since `started`. Dropping the inner stream then cancels its work.
pub(crate) fn with_deadline(
    stream: SendableRecordBatchStream,
    started: tokio::time::Instant,
    limit: Duration,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let deadline = started + limit;
    let timed = futures::stream::unfold(Some(stream), move |state| async move {
        let mut inner = state?;
        match tokio::time::timeout_at(deadline, inner.next()).await {
            Ok(Some(item)) => Some((item, Some(inner))),
            Ok(None) => None,
            Err(_) => Some((Err(DataFusionError::External(Box::new(QueryTimedOut(limit)))), None)),
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, timed))
}

/// What one query holds outside DataFusion's operators (the writers'
/// buffered spans it received, spans it collected, a trace it assembles),
/// counted against the engine's memory pool, the one that bounds the
/// operators too. Given back when the query's last part drops it.
#[derive(Debug)]
pub(crate) struct QueryMemory {
    reservation: datafusion::execution::memory_pool::MemoryReservation,
}

impl QueryMemory {
    pub(crate) fn new(pool: &Arc<dyn datafusion::execution::memory_pool::MemoryPool>) -> Arc<Self> {
        let reservation = datafusion::execution::memory_pool::MemoryConsumer::new("query").register(pool);
        Arc::new(Self { reservation })
    }

    /// Counts `bytes` more, or refuses when the pool has no room for them.
    pub(crate) fn grow(&self, bytes: usize) -> Result<(), crate::QueryError> {
        self.reservation.try_grow(bytes).map_err(|_| {
            crate::QueryError::Exhausted(format!(
                "the query needs more memory than the querier has left for queries (querier.memory_limit); \
                 it holds {} MiB of spans; narrow the time range or the query, or lower limit or select",
                (self.reservation.size() + bytes) / (1024 * 1024)
            ))
        })
    }

    /// Counts the data of `batches`.
    pub(crate) fn hold(&self, batches: &[arrow_array::RecordBatch]) -> Result<(), crate::QueryError> {
        self.grow(batches.iter().map(signaldb_schema::data_bytes).sum())
    }
}
