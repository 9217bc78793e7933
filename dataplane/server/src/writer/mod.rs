//! The writer: receives Arrow batches over Flight `DoPut`, logs each to its
//! own WAL (fsync before the acknowledgement), buffers them in memory where
//! they are queryable at once, and flushes sorted Parquet to object storage on
//! size and age. A flushed file is registered in the catalog together with the
//! names of the batches it holds; only then is the WAL trimmed.

mod flush;
pub(crate) mod select;
pub mod service;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use bytes::Bytes;
use object_store::ObjectStore;
use prost::Message;
use signaldb_catalog::{BatchId, Catalog};
use signaldb_config::{TenantId, WriterConfig};
use signaldb_wal::Wal;
use tokio::sync::{Mutex, watch};
use tracing::{info, warn};

pub use flush::FlushReport;

use crate::metrics::{IpcLabels, Metrics};
use crate::proto::{PutAck, PutMetadata, WriterWalRecord};

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("bad batch metadata: {0}")]
    BadMetadata(String),
    #[error("batch does not match the span schema: {0}")]
    BadSchema(String),
    #[error("this writer is draining and accepts no new data")]
    Draining,
    #[error("writer buffer is full ({buffered} of {limit} bytes); retry later")]
    BufferFull { buffered: usize, limit: usize },
    #[error("writer WAL: {0}")]
    Wal(signaldb_wal::Error),
    #[error("catalog: {0}")]
    Catalog(#[from] signaldb_catalog::Error),
    #[error("encoding batch for the WAL: {0}")]
    Encode(arrow_schema::ArrowError),
    #[error("flush: {0}")]
    Flush(flush::FlushError),
}

/// How long the catalog remembers which batches were stored.
pub const BATCH_NAME_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often a writer prunes older batch names.
const BATCH_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// A buffered batch and the distinct trace ids in it, sorted, so a lookup
/// by trace id passes over the batches without them instead of comparing
/// every buffered row.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) batch: RecordBatch,
    traces: Arc<[[u8; 16]]>,
}

impl Held {
    fn new(batch: RecordBatch) -> Self {
        let mut traces: Vec<[u8; 16]> = batch
            .column_by_name(signaldb_schema::columns::TRACE_ID)
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::FixedSizeBinaryArray>())
            .map(|ids| {
                ids.iter()
                    .flatten()
                    .filter_map(|id| <[u8; 16]>::try_from(id).ok())
                    .collect()
            })
            .unwrap_or_default();
        traces.sort_unstable();
        traces.dedup();
        Self {
            batch,
            traces: traces.into(),
        }
    }

    /// Whether the batch holds a span of one of `ids`.
    fn holds_any(&self, ids: &HashSet<[u8; 16]>) -> bool {
        ids.iter().any(|id| self.traces.binary_search(id).is_ok())
    }
}

/// What the writer holds for one tenant.
#[derive(Debug, Default)]
struct TenantBuffer {
    batches: Vec<Held>,
    ids: Vec<BatchId>,
    seqs: Vec<u64>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct State {
    tenants: HashMap<TenantId, TenantBuffer>,
    /// Bytes in `tenants` plus bytes being flushed.
    bytes: usize,
    oldest: Option<Instant>,
    /// Names of every batch held in memory (buffered or being flushed).
    held: HashSet<BatchId>,
    /// Batches taken by a running flush, queryable until their file is registered.
    flushing: HashMap<TenantId, Vec<Held>>,
}

/// The writer role's core. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: String,
    wal: Wal,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    /// The local store's directory, whose files are fsynced before they are
    /// registered; `None` for object storage that is durable on upload (S3).
    local_root: Option<std::path::PathBuf>,
    config: WriterConfig,
    metrics: Metrics,
    state: std::sync::Mutex<State>,
    flush_lock: Mutex<()>,
    draining: AtomicBool,
    /// Puts between their draining check and their buffer insert.
    in_flight: std::sync::atomic::AtomicUsize,
}

/// Counts a put as in flight while alive.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Writer {
    pub fn new(
        id: String,
        wal: Wal,
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn ObjectStore>,
        local_root: Option<std::path::PathBuf>,
        config: WriterConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                id,
                wal,
                catalog,
                store,
                local_root,
                config,
                metrics,
                state: std::sync::Mutex::new(State::default()),
                flush_lock: Mutex::new(()),
                draining: AtomicBool::new(false),
                in_flight: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.inner.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Refills the buffer from the WAL after a restart. Batches that a flush
    /// already registered in the catalog (the process died between
    /// registration and WAL trim) are trimmed instead of stored twice.
    pub async fn restore(&self, replay: Vec<signaldb_wal::ReplayEntry>) -> Result<usize, WriterError> {
        let mut decoded = Vec::with_capacity(replay.len());
        for entry in replay {
            // A record put refuses (not the span schema) would fail every
            // flush of the buffer it joined.
            let decoded_record =
                decode_record(&entry.payload).and_then(|(meta, batches)| match check_schema(&batches) {
                    Ok(()) => Ok((meta, batches)),
                    Err(e) => Err(e.to_string()),
                });
            match decoded_record {
                Ok((meta, batches)) => match TenantId::new(meta.tenant.clone()) {
                    Ok(tenant) => decoded.push((entry.seq, tenant, batch_id(&self.inner.id, &meta), batches)),
                    Err(e) => {
                        warn!(seq = entry.seq, error = %e, "writer WAL record with a bad tenant; skipped");
                        self.inner.metrics.record_skipped("writer");
                        self.inner.wal.mark_done(&[entry.seq]);
                    }
                },
                Err(e) => {
                    warn!(seq = entry.seq, error = %e, "undecodable writer WAL record; skipped");
                    self.inner.metrics.record_skipped("writer");
                    self.inner.wal.mark_done(&[entry.seq]);
                }
            }
        }
        let mut registered = HashSet::new();
        for chunk in decoded.chunks(1000) {
            let ids: Vec<BatchId> = chunk.iter().map(|(_, _, id, _)| id.clone()).collect();
            registered.extend(self.inner.catalog.batches_seen(&ids).await?);
        }
        let mut restored = 0;
        for (seq, tenant, id, batches) in decoded {
            if registered.contains(&id) || !self.insert(tenant, id, seq, batches) {
                self.inner.wal.mark_done(&[seq]);
            } else {
                restored += 1;
            }
        }
        Ok(restored)
    }

    /// Stores one batch durably; see the module docs. `received` is the
    /// batch's Arrow IPC stream as it arrived, logged as it is; without it
    /// the batches are encoded for the log.
    pub async fn put(
        &self,
        meta: PutMetadata,
        batches: Vec<RecordBatch>,
        received: Option<Bytes>,
    ) -> Result<PutAck, WriterError> {
        let i = &self.inner;
        // Count first, check second: a drain that sees no puts in flight
        // after setting the flag knows none can still add data.
        i.in_flight.fetch_add(1, Ordering::AcqRel);
        let _in_flight = InFlight(&i.in_flight);
        if i.draining.load(Ordering::Acquire) {
            return Err(WriterError::Draining);
        }
        let tenant = TenantId::new(meta.tenant.clone()).map_err(|e| WriterError::BadMetadata(e.to_string()))?;
        if meta.source.is_empty() {
            return Err(WriterError::BadMetadata("source is empty".into()));
        }
        check_schema(&batches)?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let id = batch_id(&self.inner.id, &meta);
        let ack = |duplicate| PutAck {
            seq: meta.seq,
            part: meta.part,
            rows: rows as u64,
            duplicate,
        };
        {
            let st = self.state();
            if st.held.contains(&id) {
                i.metrics.writer_duplicate_batches.inc();
                return Ok(ack(true));
            }
            if st.bytes >= i.config.max_buffer_size.as_usize() {
                return Err(WriterError::BufferFull {
                    buffered: st.bytes,
                    limit: i.config.max_buffer_size.as_usize(),
                });
            }
        }
        if meta.maybe_duplicate && !i.catalog.batches_seen(std::slice::from_ref(&id)).await?.is_empty() {
            i.metrics.writer_duplicate_batches.inc();
            return Ok(ack(true));
        }
        let ipc = match received {
            Some(ipc) => {
                i.metrics
                    .writer_wal_ipc_bytes
                    .get_or_create(&IpcLabels { logged: "as_received" })
                    .inc_by(ipc.len() as u64);
                ipc
            }
            None => {
                let ipc = encode_ipc(&batches).map_err(WriterError::Encode)?;
                i.metrics
                    .writer_wal_ipc_bytes
                    .get_or_create(&IpcLabels { logged: "encoded" })
                    .inc_by(ipc.len() as u64);
                ipc
            }
        };
        let record = WriterWalRecord {
            meta: Some(meta.clone()),
            ipc,
        };
        let seq = i
            .wal
            .append(Bytes::from(record.encode_to_vec()))
            .await
            .map_err(WriterError::Wal)?;
        if !self.insert(tenant, id, seq, batches) {
            // A concurrent put of the same batch won the race; ours is redundant.
            i.wal.mark_done(&[seq]);
            i.metrics.writer_duplicate_batches.inc();
            return Ok(ack(true));
        }
        i.metrics.writer_batches.inc();
        i.metrics.writer_rows.inc_by(rows as u64);
        Ok(ack(false))
    }

    /// Adds a logged batch to the buffer; false if it was already held.
    fn insert(&self, tenant: TenantId, id: BatchId, seq: u64, batches: Vec<RecordBatch>) -> bool {
        let batches: Vec<Held> = batches.into_iter().map(Held::new).collect();
        let mut st = self.state();
        if !st.held.insert(id.clone()) {
            return false;
        }
        // Each byte once: arrays decoded from one IPC message share its
        // allocation (counting allocations flushed 10x too many files).
        let bytes: usize = batches.iter().map(|h| signaldb_schema::data_bytes(&h.batch)).sum();
        st.bytes += bytes;
        st.oldest.get_or_insert_with(Instant::now);
        let buf = st.tenants.entry(tenant).or_default();
        buf.batches.extend(batches);
        buf.ids.push(id);
        buf.seqs.push(seq);
        buf.bytes += bytes;
        self.inner
            .metrics
            .writer_buffer_bytes
            .set(i64::try_from(st.bytes).unwrap_or(i64::MAX));
        true
    }

    /// Bytes buffered and age of the oldest buffered batch.
    pub fn buffered(&self) -> (usize, Option<Duration>) {
        let st = self.state();
        let buffered: usize = st.tenants.values().map(|t| t.bytes).sum();
        (buffered, st.oldest.map(|t| t.elapsed()))
    }

    /// Starts (or ends) draining: while draining the writer refuses new data.
    pub fn set_draining(&self, draining: bool) {
        self.inner.draining.store(draining, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// Forgets batch names registered more than [`BATCH_NAME_RETENTION`] ago.
    /// A replay older than that (an acceptor down for a week) may store its
    /// spans again; queries deduplicate them.
    async fn prune_batch_names(&self) {
        let keep = i64::try_from(BATCH_NAME_RETENTION.as_millis()).unwrap_or(i64::MAX);
        match self
            .inner
            .catalog
            .prune_batches(crate::now_ms().saturating_sub(keep))
            .await
        {
            Ok(0) => {}
            Ok(n) => info!(names = n, "pruned old batch names from the catalog"),
            Err(e) => warn!(error = %e, "pruning batch names failed; retried later"),
        }
    }

    /// Puts that passed the draining check and have not finished.
    pub fn puts_in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Bytes in the writer's WAL not yet flushed and registered.
    pub fn wal_pending_bytes(&self) -> u64 {
        self.inner.wal.stats().pending_bytes
    }

    /// The tenant's unflushed spans (buffered or being flushed) that match
    /// `selection`, with the columns it asks for, in the order received
    /// (with a trace cap, only the newest of them: [`select::Selection::apply_all`]).
    pub(crate) fn read_buffer(
        &self,
        tenant: &TenantId,
        selection: &select::Selection,
    ) -> Result<Vec<RecordBatch>, arrow_schema::ArrowError> {
        let wanted = selection.trace_ids();
        let batches: Vec<RecordBatch> = {
            let st = self.state();
            let buffered = st.tenants.get(tenant).map(|t| t.batches.iter()).into_iter().flatten();
            let flushing = st.flushing.get(tenant).map(|b| b.iter()).into_iter().flatten();
            // In the order received: what is being flushed came first.
            flushing
                .chain(buffered)
                .filter(|h| wanted.is_empty() || h.holds_any(wanted))
                .map(|h| h.batch.clone())
                .collect()
        };
        selection.apply_all(batches)
    }

    /// Flushes on size and age until shutdown, then flushes everything.
    pub async fn run_flusher(self, mut shutdown: watch::Receiver<bool>) {
        let tick = Duration::from_millis(250).min(self.inner.config.flush_max_age);
        let mut backoff = Duration::ZERO;
        let mut last_prune: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick + backoff) => {}
                _ = shutdown.changed() => break,
            }
            let (bytes, age) = self.buffered();
            let due = bytes >= self.inner.config.flush_max_size.as_usize()
                || age.is_some_and(|a| a >= self.inner.config.flush_max_age);
            if due {
                match self.flush().await {
                    Ok(_) => {
                        backoff = Duration::ZERO;
                        if last_prune.is_none_or(|t| t.elapsed() >= BATCH_PRUNE_EVERY) {
                            last_prune = Some(Instant::now());
                            self.prune_batch_names().await;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "flush failed; data stays buffered and logged, retrying");
                        backoff = (backoff * 2).clamp(Duration::from_millis(500), Duration::from_secs(30));
                    }
                }
            }
        }
        info!("writer shutting down: flushing buffered data");
        for attempt in 1..=5u32 {
            match self.flush().await {
                Ok(r) => {
                    info!(files = r.files, rows = r.rows, "final flush done");
                    return;
                }
                Err(e) => {
                    warn!(attempt, error = %e, "final flush failed; the WAL keeps the data for the next start");
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                }
            }
        }
    }
}

/// The name under which `writer` stores a batch. Names are per writer: with
/// replication several writers store the same batch, each once.
fn batch_id(writer: &str, meta: &PutMetadata) -> BatchId {
    BatchId {
        source: format!("{writer}/{}", meta.source),
        seq: meta.seq,
        part: meta.part,
    }
}

fn encode_ipc(batches: &[RecordBatch]) -> Result<Bytes, arrow_schema::ArrowError> {
    let schema = signaldb_schema::traces::schema();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    Ok(Bytes::from(w.into_inner()?))
}

/// Whether every batch has the span schema (what `put` takes and a flush
/// can write).
fn check_schema(batches: &[RecordBatch]) -> Result<(), WriterError> {
    let expected = signaldb_schema::traces::schema();
    for b in batches {
        if b.schema().fields() != expected.fields() {
            return Err(WriterError::BadSchema(format!(
                "got columns [{}]",
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

/// Decodes one record of the writer's WAL (a [`WriterWalRecord`]: the
/// batch's metadata and its Arrow IPC stream), as [`Writer::restore`] does
/// for each replayed entry. Public for the `writer_wal_record` fuzz target;
/// a damaged record is an error, never a panic.
pub fn decode_record(payload: &[u8]) -> Result<(PutMetadata, Vec<RecordBatch>), String> {
    let record = WriterWalRecord::decode(payload).map_err(|e| e.to_string())?;
    let meta = record.meta.ok_or("record has no metadata")?;
    // The stream is decoded from the record's bytes in place: what it
    // allocates is bounded by the record, whatever lengths a damaged header
    // claims (a StreamReader allocates a claimed body length up front). And
    // arrow-ipc panics, instead of failing, on some malformed streams (a
    // buffer that reaches past the message body). Both found by fuzzing:
    // restore runs at every start, so a record it cannot read must be
    // skipped with a warning, never crash the writer at every start.
    let batches = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut ipc = arrow::buffer::Buffer::from(record.ipc);
        let mut decoder = arrow_ipc::reader::StreamDecoder::new();
        let mut batches = Vec::new();
        while !ipc.is_empty() {
            if let Some(batch) = decoder.decode(&mut ipc).map_err(|e| e.to_string())? {
                batches.push(batch);
            }
        }
        decoder.finish().map_err(|e| e.to_string())?;
        Ok::<_, String>(batches)
    }))
    .map_err(|_| "malformed Arrow IPC stream (the decoder panicked)".to_owned())??;
    Ok((meta, batches))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A batch decoded from IPC (as the writer gets it over Flight and from
    /// its WAL) counts about what it held before encoding, not its message
    /// body once per array.
    #[test]
    fn decoded_batches_count_each_byte_once() {
        let mut f = crate::loadgen::RequestFactory::new(1, 10, 10);
        let req = f.request(500);
        let batch = signaldb_schema::traces::otlp_to_arrow(&req.resource_spans).unwrap();
        let ipc = encode_ipc(std::slice::from_ref(&batch)).unwrap();
        let decoded: Vec<RecordBatch> = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let counted: usize = decoded.iter().map(signaldb_schema::data_bytes).sum();
        let naive: usize = decoded.iter().map(RecordBatch::get_array_memory_size).sum();
        let original = signaldb_schema::data_bytes(&batch);
        assert!(
            counted <= original * 11 / 10 && counted >= original * 9 / 10,
            "{counted} vs {original}"
        );
        assert!(naive > counted * 5, "the naive count over-counts: {naive} vs {counted}");
    }

    /// Only span-schema batches pass, on `put` and on restore alike.
    #[test]
    fn only_span_batches_pass_the_schema_check() {
        let mut f = crate::loadgen::RequestFactory::new(1, 10, 10);
        let batch = signaldb_schema::traces::otlp_to_arrow(&f.request(5).resource_spans).unwrap();
        assert!(check_schema(std::slice::from_ref(&batch)).is_ok());
        let narrower = batch.project(&[0, 1]).unwrap();
        let err = check_schema(&[batch, narrower]).unwrap_err();
        assert!(matches!(err, WriterError::BadSchema(_)), "{err}");
    }

    /// A record whose IPC stream names a buffer past the end of its message
    /// body (arrow-ipc panics on it) is refused, not a panic.
    #[test]
    fn a_record_with_a_buffer_past_its_body_is_refused() {
        let values: arrow_array::ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![7_i64]));
        let batch = RecordBatch::try_from_iter([("x", values)]).unwrap();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        let mut ipc = w.into_inner().unwrap();
        // The values buffer's entry in the batch's metadata: offset 0, 8 bytes.
        let entry: Vec<u8> = [0_i64.to_le_bytes(), 8_i64.to_le_bytes()].concat();
        let at = ipc.windows(16).rposition(|w| w == entry.as_slice()).unwrap();
        ipc[at + 8..at + 16].copy_from_slice(&(8_i64 + (1 << 31)).to_le_bytes());
        let meta = PutMetadata {
            tenant: "t".into(),
            source: "acceptor".into(),
            seq: 1,
            ..Default::default()
        };
        let record = WriterWalRecord {
            meta: Some(meta),
            ipc: Bytes::from(ipc),
        };
        let err = decode_record(&record.encode_to_vec()).unwrap_err();
        assert!(err.contains("Arrow IPC"), "{err}");
    }

    /// What `put` logs, `restore` reads back: every batch, every row.
    #[test]
    fn a_logged_record_decodes_to_its_batches() {
        let mut f = crate::loadgen::RequestFactory::new(3, 10, 4);
        let batches: Vec<RecordBatch> = [f.request(30), f.request(7)]
            .iter()
            .map(|r| signaldb_schema::traces::otlp_to_arrow(&r.resource_spans).unwrap())
            .collect();
        let meta = PutMetadata {
            tenant: "t".into(),
            source: "acceptor".into(),
            seq: 9,
            part: 2,
            ..Default::default()
        };
        let record = WriterWalRecord {
            meta: Some(meta.clone()),
            ipc: encode_ipc(&batches).unwrap(),
        };
        let (decoded_meta, decoded) = decode_record(&record.encode_to_vec()).unwrap();
        assert_eq!(decoded_meta, meta);
        assert_eq!(decoded, batches);
    }

    /// A stream cut short, or whose first message claims 2 GiB, is refused.
    #[test]
    fn a_record_with_a_short_or_overlong_stream_is_refused() {
        let mut f = crate::loadgen::RequestFactory::new(4, 10, 4);
        let batch = signaldb_schema::traces::otlp_to_arrow(&f.request(5).resource_spans).unwrap();
        let ipc = encode_ipc(std::slice::from_ref(&batch)).unwrap();
        let mut claims_2gib = ipc.to_vec();
        // After the continuation marker: the schema message's length.
        claims_2gib[4..8].copy_from_slice(&0x7fff_fff0_u32.to_le_bytes());
        for ipc in [ipc.slice(..ipc.len() / 2), Bytes::from(claims_2gib)] {
            let record = WriterWalRecord {
                meta: Some(PutMetadata::default()),
                ipc,
            };
            assert!(decode_record(&record.encode_to_vec()).is_err());
        }
    }

    /// A held batch knows its traces: a lookup passes over the batches
    /// without the trace asked for.
    #[test]
    fn held_batches_know_their_traces() {
        let mut f = crate::loadgen::RequestFactory::new(2, 10, 2);
        let req = f.request(100);
        let batch = signaldb_schema::traces::otlp_to_arrow(&req.resource_spans).unwrap();
        let ids = batch
            .column_by_name(signaldb_schema::columns::TRACE_ID)
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::FixedSizeBinaryArray>()
            .unwrap();
        let first = <[u8; 16]>::try_from(ids.value(0)).unwrap();
        let held = Held::new(batch);
        assert_eq!(held.traces.len(), 10, "100 spans of 10 traces");
        assert!(held.holds_any(&HashSet::from([first])));
        assert!(!held.holds_any(&HashSet::from([[0xee; 16]])));
        assert!(held.holds_any(&HashSet::from([[0xee; 16], first])));
    }
}
