//! Tenant-scoped tables over Parquet files and writer buffers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, FixedSizeBinaryArray, RecordBatch, TimestampNanosecondArray};
use async_trait::async_trait;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext, col, lit};
use datafusion::scalar::ScalarValue;
use object_store::ObjectStore;
use signaldb_catalog::{Catalog, FileRecord};
use signaldb_config::{Signal, TenantId};
use signaldb_schema::columns;
use url::Url;

use crate::bounds::{OnlyOurStore, QueryMemory, read_only_sql, with_deadline};
use crate::byid::{DEFAULT_INDEX_CACHE_BYTES, FileIndexes};
use crate::counting::{CountingStore, ReadStats};
use crate::cpu::{CpuRuntime, IoStore};
use crate::distributed::Cluster;
use crate::listing::FileLists;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("catalog: {0}")]
    Catalog(#[from] signaldb_catalog::Error),
    #[error("query execution: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("reading writer buffers: {0}")]
    Buffers(String),
    #[error("{0}")]
    BadRequest(String),
    /// A bound was reached (too many candidate traces, too many queries).
    #[error("{0}")]
    Exhausted(String),
    /// A fault of the engine, not of the query (a query task that failed).
    #[error("internal error: {0}")]
    Internal(String),
}

/// What part of a tenant's buffered spans a query needs; the writers apply
/// it, so only that crosses the network. Every part narrows the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BufferFilter {
    /// Only the spans of these traces (empty: of any trace).
    pub trace_ids: Vec<[u8; 16]>,
    /// Only spans overlapping `[min, max]` nanoseconds.
    pub range: Option<(i64, i64)>,
    /// Only spans meeting this span-level condition.
    pub condition: Option<signaldb_traceql::FieldExpr>,
    /// Only these columns of the span schema, in this order (all when
    /// `None`).
    pub columns: Option<Vec<&'static str>>,
    /// Enough spans for this many traces, any of them: each writer reads
    /// its newest data first and stops once that many distinct traces are
    /// selected (all when `None`). Needs the trace id among `columns`.
    pub max_traces: Option<usize>,
}

impl BufferFilter {
    /// Every column of the spans of trace `id`.
    pub fn trace(id: [u8; 16]) -> Self {
        Self {
            trace_ids: vec![id],
            ..Self::default()
        }
    }

    /// Every column of the spans overlapping `range` (all when `None`).
    pub fn range(range: Option<(i64, i64)>) -> Self {
        Self {
            range,
            ..Self::default()
        }
    }
}

/// The writers' unflushed data. Implementations return only the spans
/// `filter` selects, with the columns it names: queries do not filter them
/// again.
#[async_trait]
pub trait BufferSource: Send + Sync + std::fmt::Debug + 'static {
    async fn buffered(&self, tenant: &TenantId, filter: BufferFilter) -> Result<Buffered, QueryError>;
}

/// What the writers' buffers gave a query.
#[derive(Debug, Clone, Default)]
pub struct Buffered {
    pub batches: Vec<RecordBatch>,
    /// Writers that could not be read (unreachable, failed or too slow):
    /// what they alone hold is missing from the answer, which says so.
    pub unreachable: Vec<String>,
}

impl From<Vec<RecordBatch>> for Buffered {
    fn from(batches: Vec<RecordBatch>) -> Self {
        Self {
            batches,
            unreachable: Vec::new(),
        }
    }
}

/// A [`BufferSource`] with nothing buffered.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBuffers;

#[async_trait]
impl BufferSource for NoBuffers {
    async fn buffered(&self, _tenant: &TenantId, _filter: BufferFilter) -> Result<Buffered, QueryError> {
        Ok(Buffered::default())
    }
}

/// A buffer source whose calls run on the I/O runtime, whichever runtime
/// makes them (they are network calls to the writers).
#[derive(Debug)]
struct IoBuffers {
    inner: Arc<dyn BufferSource>,
    io: tokio::runtime::Handle,
}

#[async_trait]
impl BufferSource for IoBuffers {
    async fn buffered(&self, tenant: &TenantId, filter: BufferFilter) -> Result<Buffered, QueryError> {
        let (inner, tenant) = (Arc::clone(&self.inner), tenant.clone());
        // Aborted when the query stops waiting for it.
        crate::cpu::AbortOnDrop(self.io.spawn(async move { inner.buffered(&tenant, filter).await }))
            .await
            .map_err(|e| QueryError::Internal(format!("buffer read task failed: {e}")))?
    }
}

pub(crate) const STORE_URL: &str = "signaldb://store/";

/// The data one query reads, taken once by [`QueryEngine::snapshot`] and
/// shared by its steps (a search's candidate scan and its chunked reads), so
/// the writers' buffers and the catalog are asked once per query.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub(crate) range: Option<(i64, i64)>,
    pub(crate) buffered: Vec<RecordBatch>,
    pub(crate) files: Vec<FileRecord>,
    /// What the query holds, the buffered spans first.
    memory: Arc<QueryMemory>,
}

/// How long a query may run unless configured otherwise.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs queries for one process; cheap to clone.
#[derive(Debug, Clone)]
pub struct QueryEngine {
    catalog: Arc<dyn Catalog>,
    pub(crate) store: Arc<dyn ObjectStore>,
    buffers: Arc<dyn BufferSource>,
    runtime: Arc<RuntimeEnv>,
    timeout: Duration,
    lists: FileLists,
    pub(crate) indexes: FileIndexes,
    cpu: Option<CpuRuntime>,
    pub(crate) cluster: Option<Cluster>,
}

impl QueryEngine {
    pub fn new(
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn ObjectStore>,
        buffers: Arc<dyn BufferSource>,
    ) -> Result<Self, QueryError> {
        let runtime = Self::runtime(&store, None)?;
        Ok(Self {
            catalog,
            store,
            buffers,
            runtime,
            timeout: DEFAULT_QUERY_TIMEOUT,
            lists: FileLists::default(),
            indexes: FileIndexes::new(DEFAULT_INDEX_CACHE_BYTES),
            cpu: None,
            cluster: None,
        })
    }

    /// Splits the file scans of searches that read every file in range
    /// across `peers` (this querier included, reachable at `self_url`),
    /// `files_per_task` files a task, calls carrying the `authorization`
    /// header value (`Bearer <cluster token>`); `on_task` is called for each
    /// share this querier's worker runs. Serve
    /// [`QueryEngine::worker_service`] so the peers can do the same.
    /// Call it last when building the engine: the workers read through the
    /// store and memory pool as configured so far.
    pub fn with_cluster(
        mut self,
        peers: Arc<crate::Peers>,
        authorization: Option<&str>,
        self_url: Url,
        files_per_task: usize,
        on_task: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<Self, QueryError> {
        let url = Url::parse(STORE_URL).map_err(|e| QueryError::BadRequest(e.to_string()))?;
        let runtime = Arc::new(RuntimeEnv {
            memory_pool: Arc::clone(&self.runtime.memory_pool),
            disk_manager: Arc::clone(&self.runtime.disk_manager),
            cache_manager: Arc::clone(&self.runtime.cache_manager),
            object_store_registry: Arc::new(OnlyOurStore::new(url, Arc::clone(&self.store))),
        });
        self.cluster = Some(Cluster::new(
            runtime,
            authorization,
            self_url,
            peers,
            files_per_task,
            on_task,
        )?);
        Ok(self)
    }

    /// The gRPC service through which peers run their share of a split
    /// scan here (see [`QueryEngine::with_cluster`]).
    pub fn worker_service(&self) -> Option<impl crate::distributed::WorkerServer> {
        let cluster = self.cluster.as_ref()?;
        Some(crate::cpu::OnQueryRuntime::new(
            cluster.worker_service(),
            self.cpu.as_ref(),
        ))
    }

    /// Runs queries given to [`QueryEngine::run`] and [`QueryEngine::run_stream`]
    /// on `cpu`, and hands their object-store reads and buffer calls back
    /// to its I/O runtime.
    pub fn with_cpu_runtime(mut self, cpu: CpuRuntime) -> Self {
        self.store = Arc::new(IoStore::new(Arc::clone(&self.store), cpu.io().clone()));
        self.buffers = Arc::new(IoBuffers {
            inner: Arc::clone(&self.buffers),
            io: cpu.io().clone(),
        });
        self.cpu = Some(cpu);
        self
    }

    /// Runs `query` on the query runtime (inline without one) and waits
    /// for it; dropping the returned future stops the query.
    pub async fn run<T: Send + 'static>(
        &self,
        query: impl std::future::Future<Output = Result<T, QueryError>> + Send + 'static,
    ) -> Result<T, QueryError> {
        match &self.cpu {
            Some(cpu) => cpu.run(query).await?,
            None => query.await,
        }
    }

    /// `stream` polled on the query runtime (as it is without one).
    pub fn run_stream(&self, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        match &self.cpu {
            Some(cpu) => cpu.run_stream(stream),
            None => stream,
        }
    }

    /// Bounds the in-memory file indexes trace-by-id uses (Parquet footers,
    /// page indexes, trace-id bloom filters) to `bytes`.
    pub fn with_index_cache(mut self, bytes: usize) -> Self {
        self.indexes = FileIndexes::new(bytes);
        self
    }

    /// Until `stop` turns true, every `interval`: loads the file indexes of
    /// every tenant's files registered since the last round (all of them
    /// the first time), so the first lookup after a flush or a restart does
    /// not pay for them. Failures are logged and retried next round.
    pub async fn warm_indexes(&self, interval: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.warm_once().await {
                tracing::warn!(error = %e, "loading file indexes ahead of queries failed; retried later");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// One round of [`QueryEngine::warm_indexes`].
    pub async fn warm_once(&self) -> Result<(), QueryError> {
        for tenant in self.catalog.list_tenants().await? {
            let files = self.files(&tenant, None).await?;
            self.indexes.warm(&self.store, &files).await;
        }
        Ok(())
    }

    /// Bytes the file indexes hold now.
    pub fn index_cache_bytes(&self) -> usize {
        self.indexes.bytes()
    }

    fn runtime(store: &Arc<dyn ObjectStore>, memory_limit: Option<usize>) -> Result<Arc<RuntimeEnv>, QueryError> {
        let url = Url::parse(STORE_URL).map_err(|e| QueryError::BadRequest(e.to_string()))?;
        let mut builder =
            RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(OnlyOurStore::new(url, Arc::clone(store))));
        if let Some(bytes) = memory_limit {
            builder = builder.with_memory_limit(bytes, 1.0);
        }
        Ok(builder.build_arc()?)
    }

    /// Bounds the memory of query operators (sorts, aggregations, joins) to
    /// `bytes`; a query that needs more fails with a resources-exhausted error.
    pub fn with_memory_limit(mut self, bytes: usize) -> Result<Self, QueryError> {
        self.runtime = Self::runtime(&self.store, Some(bytes))?;
        Ok(self)
    }

    /// Ends every query that runs longer than `timeout` with [`crate::QueryTimedOut`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a query may run.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A session for one query: the engine's memory pool and metadata
    /// caches, and a view of the store that counts reads into `stats`.
    pub(crate) fn context(&self, stats: &ReadStats) -> Result<SessionContext, QueryError> {
        let url = Url::parse(STORE_URL).map_err(|e| QueryError::BadRequest(e.to_string()))?;
        let counted: Arc<dyn ObjectStore> = Arc::new(CountingStore::new(Arc::clone(&self.store), stats.clone()));
        let runtime = Arc::new(RuntimeEnv {
            memory_pool: Arc::clone(&self.runtime.memory_pool),
            disk_manager: Arc::clone(&self.runtime.disk_manager),
            cache_manager: Arc::clone(&self.runtime.cache_manager),
            object_store_registry: Arc::new(OnlyOurStore::new(url, counted)),
        });
        Ok(SessionContext::new_with_config_rt(Self::session_config(), runtime))
    }

    pub(crate) fn session_config() -> SessionConfig {
        let mut config = SessionConfig::new().with_target_partitions(2);
        scan_options(&mut config);
        config
    }

    pub(crate) async fn files(
        &self,
        tenant: &TenantId,
        range: Option<(i64, i64)>,
    ) -> Result<Vec<FileRecord>, QueryError> {
        self.lists
            .files(self.catalog.as_ref(), tenant, Signal::Traces, range)
            .await
    }

    /// What one step of a query reads: the writers' buffered spans matching
    /// `filter`, then the tenant's files in `range`. Buffers first, then
    /// files: a flush that registers its file in between shows those spans
    /// twice (and they are deduplicated), never zero times.
    pub async fn snapshot(
        &self,
        tenant: &TenantId,
        range: Option<(i64, i64)>,
        filter: BufferFilter,
        stats: &ReadStats,
    ) -> Result<Snapshot, QueryError> {
        let Buffered {
            batches: buffered,
            unreachable,
        } = self.buffers.buffered(tenant, filter).await?;
        stats.add_unreachable(unreachable);
        stats.add_bytes(buffered.iter().map(|b| signaldb_schema::data_bytes(b) as u64).sum());
        let memory = QueryMemory::new(&self.runtime.memory_pool);
        memory.hold(&buffered)?;
        let files = self.files(tenant, range).await?;
        Ok(Snapshot {
            range,
            buffered,
            files,
            memory,
        })
    }

    /// A session counting reads into `stats`, and the snapshot's buffers as
    /// a DataFrame.
    fn buffers_frame(&self, snap: &Snapshot, stats: &ReadStats) -> Result<(SessionContext, DataFrame), QueryError> {
        let ctx = self.context(stats)?;
        let table = MemTable::try_new(signaldb_schema::traces::schema(), vec![snap.buffered.clone()])?;
        let buffers = ctx.read_table(Arc::new(table))?;
        Ok((ctx, buffers))
    }

    /// The snapshot's spans: its files UNION its buffers, as a DataFrame
    /// built without SQL.
    fn all_spans(&self, snap: &Snapshot, stats: &ReadStats) -> Result<(SessionContext, DataFrame), QueryError> {
        let (ctx, buffers) = self.buffers_frame(snap, stats)?;
        if snap.files.is_empty() {
            return Ok((ctx, buffers));
        }
        let stored = ctx.read_table(self.listing(&snap.files)?)?;
        Ok((ctx, stored.union(buffers)?))
    }

    /// A table over `files` (of the span schema), scanned with the
    /// querier's cached file indexes.
    pub(crate) fn listing(&self, files: &[FileRecord]) -> Result<Arc<crate::table::SpanFiles>, QueryError> {
        Ok(Arc::new(crate::table::SpanFiles::new(files, self.indexes.clone())))
    }

    /// [`Self::listing`], each file read in windows of rows
    /// ([`crate::table::SpanFiles::windowed`]): for scans that may stop early.
    pub(crate) fn windowed_listing(&self, files: &[FileRecord]) -> Arc<crate::table::SpanFiles> {
        Arc::new(crate::table::SpanFiles::new(files, self.indexes.clone()).windowed())
    }

    /// All spans of a trace, deduplicated, or None.
    pub async fn trace_by_id(
        &self,
        tenant: &TenantId,
        trace_id: [u8; 16],
        range: Option<(i64, i64)>,
    ) -> Result<Option<RecordBatch>, QueryError> {
        self.trace_by_id_counted(tenant, trace_id, range, &ReadStats::default())
            .await
    }

    /// [`QueryEngine::trace_by_id`], counting what it read (and the writers
    /// it could not read) into `stats`.
    pub async fn trace_by_id_counted(
        &self,
        tenant: &TenantId,
        trace_id: [u8; 16],
        range: Option<(i64, i64)>,
        stats: &ReadStats,
    ) -> Result<Option<RecordBatch>, QueryError> {
        let snap = self
            .snapshot(tenant, range, BufferFilter::trace(trace_id), stats)
            .await?;
        let mut batches = snap.buffered;
        let wanted = HashSet::from([trace_id]);
        let stored = self
            .indexes
            .read_traces(&self.store, &snap.files, &wanted, None)
            .await?;
        snap.memory.hold(&stored)?;
        batches.extend(stored);
        let batch = dedup_spans(&batches)?;
        Ok((batch.num_rows() > 0).then_some(batch))
    }

    /// Every span of the tenant overlapping `range` (nanoseconds), deduplicated.
    pub async fn spans(&self, tenant: &TenantId, range: Option<(i64, i64)>) -> Result<RecordBatch, QueryError> {
        self.spans_projected(tenant, range, None).await
    }

    /// Like [`QueryEngine::spans`], reading only `projection` (column names;
    /// must include the trace and span ids). Parquet skips the other columns,
    /// which for searches that touch no attributes is most of the data.
    pub async fn spans_projected(
        &self,
        tenant: &TenantId,
        range: Option<(i64, i64)>,
        projection: Option<&[&str]>,
    ) -> Result<RecordBatch, QueryError> {
        let stats = ReadStats::default();
        let snap = self.snapshot(tenant, range, BufferFilter::range(range), &stats).await?;
        let (_ctx, all) = self.all_spans(&snap, &stats)?;
        let mut df = in_range(all, range)?;
        let schema = match projection {
            Some(cols) => {
                df = df.select_columns(cols)?;
                let full = signaldb_schema::traces::schema();
                Arc::new(full.project(&cols.iter().map(|c| full.index_of(c)).collect::<Result<Vec<_>, _>>()?)?)
            }
            None => signaldb_schema::traces::schema(),
        };
        // Collected under the query's memory bound, refused once past it.
        let mut stream = df.execute_stream().await?;
        let mut batches = Vec::new();
        while let Some(batch) = futures::StreamExt::next(&mut stream).await {
            let batch = batch?;
            snap.memory.hold(std::slice::from_ref(&batch))?;
            batches.push(batch);
        }
        dedup_with_schema(&batches, &schema)
    }

    /// The spans in `range` of the traces `ids`, deduplicated, reading only
    /// `projection` (must include the trace and span ids): from the
    /// snapshot's buffers, and from the files through their cached indexes,
    /// only the pages that can hold one of the traces.
    pub async fn spans_of_traces(
        &self,
        snap: &Snapshot,
        ids: &[[u8; 16]],
        projection: &[&str],
        stats: &ReadStats,
    ) -> Result<RecordBatch, QueryError> {
        let full = signaldb_schema::traces::schema();
        let schema = Arc::new(
            full.project(
                &projection
                    .iter()
                    .map(|c| full.index_of(c))
                    .collect::<Result<Vec<_>, _>>()?,
            )?,
        );
        if ids.is_empty() {
            return Ok(RecordBatch::new_empty(schema));
        }
        let wanted: HashSet<[u8; 16]> = ids.iter().copied().collect();
        // The writers sent only these traces' spans in range.
        let mut batches = snap
            .buffered
            .iter()
            .map(|b| align(b, &schema))
            .collect::<Result<Vec<_>, _>>()?;
        // The files give these traces' rows; the range is left to apply.
        let counted: Arc<dyn ObjectStore> = Arc::new(CountingStore::new(Arc::clone(&self.store), stats.clone()));
        let stored = self
            .indexes
            .read_traces(&counted, &snap.files, &wanted, Some(projection))
            .await?;
        snap.memory.hold(&stored)?;
        for batch in stored {
            let in_range = signaldb_schema::traces::select::select(&batch, &HashSet::new(), snap.range)?;
            batches.push(align(&in_range, &schema)?);
        }
        dedup_with_schema(&batches, &schema)
    }

    /// Runs SQL against the tenant's `spans` table and streams the result.
    pub async fn sql(&self, tenant: &TenantId, sql: &str) -> Result<SendableRecordBatchStream, QueryError> {
        let started = tokio::time::Instant::now();
        let stats = ReadStats::default();
        let snap = self.snapshot(tenant, None, BufferFilter::range(None), &stats).await?;
        let (ctx, all) = self.all_spans(&snap, &stats)?;
        ctx.register_table("all_spans", all.into_view())?;
        // Each span once, however many copies replication, retries or a
        // concurrent flush left.
        ctx.sql("CREATE VIEW spans AS SELECT DISTINCT ON (trace_id, span_id) * FROM all_spans")
            .await?;
        // Only queries: no DDL, DML or statement anywhere in the plan can
        // change what another query sees or write a file.
        let df = ctx.sql_with_options(sql, read_only_sql()).await?;
        let stream = df.execute_stream().await?;
        // The buffered spans stay counted while the plan can read them.
        let schema = stream.schema();
        let memory = Arc::clone(&snap.memory);
        let held = futures::StreamExt::map(stream, move |batch| {
            let _held = &memory;
            batch
        });
        let stream = Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema, held,
        ));
        Ok(with_deadline(stream, started, self.timeout))
    }

    /// The schema of the `spans` table.
    pub fn spans_schema(&self) -> arrow_schema::SchemaRef {
        signaldb_schema::traces::schema()
    }
}

/// How every session of the engine reads Parquet, here and on the workers.
/// Rows of the batches DataFusion reads and passes on: one data page of a
/// span file ([`signaldb_schema::traces::parquet::PAGE_ROWS`]). The Parquet
/// reader decodes only the pages a batch needs, and a search that stops at
/// `limit` stops after the batch that completed it: at DataFusion's 8192, a
/// broad search decoded attribute lists for eight times the rows it used
/// (p50 22.9-26.9 ms on 1M spans; 14.7-15.7 at 2048, 12.3-13.7 at 1024).
pub(crate) const SCAN_BATCH_ROWS: usize = signaldb_schema::traces::parquet::PAGE_ROWS;

pub(crate) fn scan_options(config: &mut SessionConfig) {
    *config = std::mem::take(config).with_batch_size(SCAN_BATCH_ROWS);
    let options = config.options_mut();
    // Keep Utf8/Binary as written (the span schema), not view types.
    options.execution.parquet.schema_force_view_types = false;
    options.execution.parquet.pushdown_filters = true;
    options.execution.parquet.bloom_filter_on_read = true;
    // Table-level statistics are recomputed from every file's footer on
    // every query; pruning uses the row-group statistics and bloom filters,
    // which need none of it.
    options.execution.collect_statistics = false;
}

/// Spans overlapping `range` (nanoseconds), or all.
pub(crate) fn in_range(
    df: datafusion::dataframe::DataFrame,
    range: Option<(i64, i64)>,
) -> Result<datafusion::dataframe::DataFrame, QueryError> {
    let Some((min, max)) = range else {
        return Ok(df);
    };
    let ts = |v| lit(ScalarValue::TimestampNanosecond(Some(v), Some("UTC".into())));
    Ok(df.filter(
        col(columns::END_TIME_UNIX_NANO)
            .gt_eq(ts(min))
            .and(col(columns::START_TIME_UNIX_NANO).lt_eq(ts(max))),
    )?)
}

/// Concatenates span batches, keeping the first row of every
/// (trace id, span id): a span delivered twice (a retry that crossed a writer
/// change, or a buffer read while its flush registered) is returned once.
pub fn dedup_spans(batches: &[RecordBatch]) -> Result<RecordBatch, QueryError> {
    dedup_with_schema(batches, &signaldb_schema::traces::schema())
}

/// [`dedup_spans`] for batches of `schema` (the span schema or a projection of it).
fn dedup_with_schema(batches: &[RecordBatch], schema: &arrow_schema::SchemaRef) -> Result<RecordBatch, QueryError> {
    let batches: Vec<RecordBatch> = batches.iter().map(|b| align(b, schema)).collect::<Result<_, _>>()?;
    let all = arrow::compute::concat_batches(schema, &batches)?;
    let trace = fsb(&all, columns::TRACE_ID)?;
    let span = fsb(&all, columns::SPAN_ID)?;
    let mut seen = HashSet::with_capacity(all.num_rows());
    let mut keep = Vec::with_capacity(all.num_rows());
    for i in 0..all.num_rows() {
        keep.push(seen.insert((trace.value(i), span.value(i))));
    }
    if keep.iter().all(|k| *k) {
        return Ok(all);
    }
    let mask = arrow_array::BooleanArray::from(keep);
    Ok(arrow::compute::filter_record_batch(&all, &mask)?)
}

/// Casts a batch read back from storage to the span schema (same columns).
fn align(batch: &RecordBatch, schema: &arrow_schema::SchemaRef) -> Result<RecordBatch, QueryError> {
    if batch.schema().fields() == schema.fields() {
        return Ok(RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())?);
    }
    let mut cols = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        // Files written before a nullable column existed read it as nulls.
        let Some(c) = batch.column_by_name(f.name()) else {
            if f.is_nullable() {
                cols.push(arrow::array::new_null_array(f.data_type(), batch.num_rows()));
                continue;
            }
            return Err(QueryError::BadRequest(format!("column {} missing", f.name())));
        };
        cols.push(if c.data_type() == f.data_type() {
            Arc::clone(c)
        } else {
            arrow::compute::cast(c, f.data_type())?
        });
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), cols)?)
}

pub(crate) fn fsb<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a FixedSizeBinaryArray, QueryError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
        .ok_or_else(|| QueryError::BadRequest(format!("column {name} is missing or not fixed-size binary")))
}

pub(crate) fn ts<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a TimestampNanosecondArray, QueryError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        .ok_or_else(|| QueryError::BadRequest(format!("column {name} is missing or not a timestamp")))
}

#[allow(dead_code)]
pub(crate) fn non_null(a: &dyn Array, i: usize) -> bool {
    a.is_valid(i)
}
