//! Delivery of logged requests to writers: route each trace over the writer
//! ring, `DoPut` one batch per writer, retry with backoff until every part is
//! durably held by its writers, then mark the WAL entry done.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prometheus_client::metrics::gauge::Gauge;
use prost::Message;
use signaldb_config::TenantId;
use signaldb_wal::Wal;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{debug, warn};

use crate::discovery::{Ring, WriterDirectory, trace_key};
use crate::flight::{FlightPool, put_batch};
use crate::metrics::{DecodeLabels, Metrics};
use crate::proto::{PutMetadata, SIGNAL_TRACES};

/// A WAL entry waiting for delivery: its span rows as converted when the
/// request was accepted, or, when they did not fit
/// `acceptor.max_converted_pending` (and after a restart), the request as
/// logged, converted when it is delivered.
#[derive(Debug)]
pub struct Pending {
    seq: u64,
    tenant: TenantId,
    /// Bytes of the entry as logged: what it costs of `max_delivering`.
    logged: usize,
    content: Content,
    replayed: bool,
    accepted: Instant,
}

#[derive(Debug)]
enum Content {
    /// The request's protobuf bytes.
    Logged(Bytes),
    /// Its span rows, holding their bytes of the converted budget until
    /// the entry is dropped.
    Rows { rows: RecordBatch, _held: HeldRows },
}

impl Pending {
    /// An entry replayed from the WAL: converted when delivered.
    pub(crate) fn logged(seq: u64, tenant: TenantId, request: Bytes) -> Self {
        Self {
            seq,
            tenant,
            logged: request.len(),
            content: Content::Logged(request),
            replayed: true,
            accepted: Instant::now(),
        }
    }

    /// An entry just accepted, with its span rows when `budget` has room
    /// for them; else its logged bytes, converted again when delivered.
    pub(crate) fn accepted(
        seq: u64,
        tenant: TenantId,
        request: Bytes,
        rows: RecordBatch,
        budget: &ConvertedBudget,
    ) -> Self {
        let logged = request.len();
        let content = match budget.hold(signaldb_schema::data_bytes(&rows)) {
            Some(held) => Content::Rows { rows, _held: held },
            None => Content::Logged(request),
        };
        Self {
            seq,
            tenant,
            logged,
            content,
            replayed: false,
            accepted: Instant::now(),
        }
    }
}

/// Bytes of span rows that accepted entries may hold while they wait for
/// delivery (`acceptor.max_converted_pending`); cheap to clone.
#[derive(Debug, Clone)]
pub struct ConvertedBudget {
    held: Arc<AtomicUsize>,
    limit: usize,
    /// Shows `held`.
    gauge: Gauge,
}

impl ConvertedBudget {
    pub fn new(limit: usize, gauge: Gauge) -> Self {
        Self {
            held: Arc::new(AtomicUsize::new(0)),
            limit,
            gauge,
        }
    }

    /// Holds `bytes` until the returned guard drops, if they fit.
    fn hold(&self, bytes: usize) -> Option<HeldRows> {
        let before = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .ok()?;
        self.gauge.set(i64::try_from(before + bytes).unwrap_or(i64::MAX));
        Some(HeldRows {
            budget: self.clone(),
            bytes,
        })
    }
}

/// Bytes of the converted budget, given back on drop.
#[derive(Debug)]
struct HeldRows {
    budget: ConvertedBudget,
    bytes: usize,
}

impl Drop for HeldRows {
    fn drop(&mut self) {
        let before = self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
        self.budget
            .gauge
            .set(i64::try_from(before.saturating_sub(self.bytes)).unwrap_or(i64::MAX));
    }
}

/// One writer partition of an entry.
struct Part {
    no: u32,
    route_key: u64,
    batch: RecordBatch,
    held_by: Vec<String>,
}

/// Delivers pending entries, up to `max_delivering` bytes of them (as
/// logged) at once.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub source: String,
    pub wal: Wal,
    pub writers: WriterDirectory,
    pub pool: FlightPool,
    pub metrics: Metrics,
    pub replication_factor: usize,
    pub max_backoff: Duration,
    pub max_delivering: usize,
    /// How long shutdown waits for queued deliveries.
    pub shutdown_grace: Duration,
}

impl Delivery {
    /// Runs until shutdown. On shutdown it keeps delivering what is queued
    /// for up to `shutdown_grace`; whatever is left stays in the WAL and is
    /// delivered after the next start.
    pub async fn run(self, mut rx: mpsc::UnboundedReceiver<Pending>, shutdown: watch::Receiver<bool>) {
        // One permit per KiB; an entry larger than the whole budget waits
        // for all of it and is delivered alone.
        let budget = u32::try_from(self.max_delivering / 1024).unwrap_or(u32::MAX).max(1);
        let permits = Arc::new(Semaphore::new(budget as usize));
        let mut tasks = tokio::task::JoinSet::new();
        let mut stop = shutdown.clone();
        let deadline = Arc::new(std::sync::OnceLock::new());
        let mut stopping = false;
        loop {
            let pending = if stopping {
                // Past the deadline, what is still queued stays in the WAL.
                if deadline.get().is_some_and(|d| Instant::now() >= *d) {
                    break;
                }
                match rx.try_recv() {
                    Ok(p) => p,
                    Err(_) => break,
                }
            } else {
                tokio::select! {
                    p = rx.recv() => match p { Some(p) => p, None => break },
                    _ = stop.changed() => {
                        stopping = true;
                        let _ = deadline.set(Instant::now() + self.shutdown_grace);
                        continue;
                    }
                }
            };
            let cost = u32::try_from(pending.logged / 1024)
                .unwrap_or(u32::MAX)
                .clamp(1, budget);
            let permit = tokio::select! {
                p = Arc::clone(&permits).acquire_many_owned(cost) => match p { Ok(p) => p, Err(_) => break },
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    let _ = deadline.set(Instant::now() + self.shutdown_grace);
                    continue;
                }
                _ = tokio::time::sleep_until(deadline.get().copied().unwrap_or_else(Instant::now).into()), if stopping => break,
            };
            let this = self.clone();
            let (shutdown, deadline) = (shutdown.clone(), Arc::clone(&deadline));
            tasks.spawn(async move {
                this.deliver(pending, shutdown, deadline).await;
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        let _ = deadline.set(Instant::now() + self.shutdown_grace);
        let until = deadline.get().copied().unwrap_or_else(Instant::now);
        let grace = tokio::time::sleep_until(until.into());
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                _ = &mut grace => {
                    warn!(left = tasks.len(), "shutdown grace over; undelivered entries stay in the WAL");
                    tasks.abort_all();
                    break
                }
            }
        }
    }

    async fn ring(&self) -> Arc<Ring> {
        let ring = self.writers.ring();
        if !ring.is_empty() {
            return ring;
        }
        match self.writers.refresh().await {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "no writers known and the catalog is unreachable");
                ring
            }
        }
    }

    async fn deliver(
        &self,
        p: Pending,
        mut shutdown: watch::Receiver<bool>,
        deadline: Arc<std::sync::OnceLock<Instant>>,
    ) {
        let mut backoff = Duration::from_millis(50);
        let mut parts: Option<Vec<Part>> = None;
        let mut attempt = 0u32;
        loop {
            let ring = self.ring().await;
            if !ring.is_empty() {
                if parts.is_none() {
                    match partition(&p, &ring, &self.metrics) {
                        Ok(v) => parts = Some(v),
                        Err(e) => {
                            // Validated before logging, so this means a bug or a
                            // damaged record; keep it out of the way and say so.
                            warn!(seq = p.seq, error = %e, "cannot convert WAL entry; dropping it");
                            self.metrics.entries_dropped.inc();
                            self.wal.mark_done(&[p.seq]);
                            return;
                        }
                    }
                }
                if let Some(parts) = parts.as_mut() {
                    self.attempt(&p, &ring, parts, attempt > 0 || p.replayed).await;
                    let need = self.replication_factor.min(ring.len()).max(1);
                    if parts.iter().all(|part| part.held_by.len() >= need) {
                        self.wal.mark_done(&[p.seq]);
                        self.metrics.deliveries.inc();
                        self.metrics
                            .delivery_latency_seconds
                            .observe(p.accepted.elapsed().as_secs_f64());
                        self.metrics.set_wal_pending("acceptor", self.wal.stats().pending_bytes);
                        return;
                    }
                }
            }
            attempt += 1;
            if attempt == 1 || attempt.is_multiple_of(20) {
                debug!(seq = p.seq, attempt, "delivery incomplete; retrying");
            }
            // After shutdown, keep trying until the grace deadline.
            if let Some(d) = deadline.get() {
                if Instant::now() + backoff > *d {
                    return;
                }
                tokio::time::sleep(backoff).await;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {
                        let _ = deadline.get_or_init(|| Instant::now() + self.shutdown_grace);
                    }
                }
            }
            backoff = (backoff * 2).min(self.max_backoff);
            if attempt.is_multiple_of(4) {
                let _ = self.writers.refresh().await;
            }
        }
    }

    /// Sends every part that lacks replicas to the writers the ring names now.
    async fn attempt(&self, p: &Pending, ring: &Ring, parts: &mut [Part], maybe_duplicate: bool) {
        let mut sends = Vec::new();
        for (idx, part) in parts.iter().enumerate() {
            for w in ring.replicas(part.route_key, self.replication_factor) {
                if part.held_by.contains(&w.id) {
                    continue;
                }
                let meta = PutMetadata {
                    tenant: p.tenant.as_str().to_owned(),
                    signal: SIGNAL_TRACES,
                    source: self.source.clone(),
                    seq: p.seq,
                    part: part.no,
                    maybe_duplicate,
                };
                let batch = part.batch.clone();
                let (id, address) = (w.id.clone(), w.address.clone());
                let pool = self.pool.clone();
                sends.push(async move {
                    let r = put_batch(&pool, &address, &meta, batch).await;
                    (idx, id, address, r)
                });
            }
        }
        for (idx, id, address, result) in futures::future::join_all(sends).await {
            match result {
                Ok(_ack) => parts[idx].held_by.push(id),
                Err(e) => {
                    self.metrics.delivery_attempts_failed.inc();
                    debug!(writer = %id, error = %e, "delivery attempt failed");
                    if e.code().is_none_or(|c| c == tonic::Code::Unavailable) {
                        self.pool.forget(&address);
                    }
                }
            }
        }
    }
}

/// Splits an entry's spans by the writer that owns each trace now. A part
/// keeps its number and routing key for every retry.
fn partition(p: &Pending, ring: &Ring, metrics: &Metrics) -> Result<Vec<Part>, String> {
    let tenant = p.tenant.as_str();
    let converted;
    let rows = match &p.content {
        Content::Rows { rows, .. } => rows,
        Content::Logged(bytes) => {
            metrics
                .acceptor_decodes
                .get_or_create(&DecodeLabels { at: "delivery" })
                .inc();
            let request =
                ExportTraceServiceRequest::decode(bytes.clone()).map_err(|e| format!("undecodable request: {e}"))?;
            converted = signaldb_schema::traces::otlp_to_arrow(&request.resource_spans).map_err(|e| e.to_string())?;
            &converted
        }
    };
    let mut parts = Vec::new();
    for batch in by_owner(rows, ring.len(), |tid| ring.owner(trace_key(tenant, tid)).unwrap_or(0))? {
        if batch.num_rows() == 0 {
            continue;
        }
        let route_key = first_trace_key(tenant, &batch).unwrap_or(0);
        parts.push(Part {
            no: content_id(&batch),
            route_key,
            batch,
            held_by: Vec::new(),
        });
    }
    Ok(parts)
}

/// The rows of `rows` by `owner` of their trace id (`0..partitions`), in
/// their order; the batch itself when one owner has them all.
fn by_owner(rows: &RecordBatch, partitions: usize, owner: impl Fn(&[u8]) -> usize) -> Result<Vec<RecordBatch>, String> {
    use arrow_array::Array;
    let ids = rows
        .column_by_name(signaldb_schema::columns::TRACE_ID)
        .and_then(|c| c.as_any().downcast_ref::<arrow_array::FixedSizeBinaryArray>())
        .ok_or("span rows without a trace id column")?;
    let mut indices: Vec<Vec<u32>> = vec![Vec::new(); partitions.max(1)];
    for i in 0..ids.len() {
        let to = owner(ids.value(i)).min(indices.len() - 1);
        indices[to].push(u32::try_from(i).map_err(|_| "more than 2^32 span rows in one request")?);
    }
    if indices.iter().filter(|i| !i.is_empty()).count() <= 1 {
        return Ok(vec![rows.clone()]);
    }
    indices
        .into_iter()
        .map(|i| arrow::compute::take_record_batch(rows, &arrow_array::UInt32Array::from(i)).map_err(|e| e.to_string()))
        .collect()
}

/// A part's number, derived from which spans it holds (not from the ring),
/// so that a replay after the writer set changed can never present a
/// different set of spans under a name a writer already stored: at worst the
/// same spans are stored twice, and queries deduplicate.
fn content_id(batch: &RecordBatch) -> u32 {
    use arrow_array::Array;
    let mut keys: Vec<&[u8]> = Vec::with_capacity(batch.num_rows() * 2);
    let ids = |name| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::FixedSizeBinaryArray>())
    };
    if let (Some(t), Some(s)) = (
        ids(signaldb_schema::columns::TRACE_ID),
        ids(signaldb_schema::columns::SPAN_ID),
    ) {
        for i in 0..t.len() {
            keys.push(t.value(i));
            keys.push(s.value(i));
        }
    }
    let h = crate::discovery::hash64(&keys.concat());
    (h ^ (h >> 32)) as u32
}

fn first_trace_key(tenant: &str, batch: &RecordBatch) -> Option<u64> {
    use arrow_array::Array;
    let col = batch.column_by_name(signaldb_schema::columns::TRACE_ID)?;
    let ids = col.as_any().downcast_ref::<arrow_array::FixedSizeBinaryArray>()?;
    (!ids.is_empty()).then(|| trace_key(tenant, ids.value(0)))
}
