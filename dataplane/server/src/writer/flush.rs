//! Flushing the buffer: per tenant, sort by trace id and start time, write
//! Parquet (zstd, bloom filter on trace id, page statistics) while uploading
//! it part by part, register it in the catalog with the batch names, trim
//! the WAL.

use std::time::Instant;

use arrow_array::RecordBatch;
use signaldb_catalog::FileRecord;
use signaldb_config::{Signal, TenantId};
use tracing::info;

use super::{TenantBuffer, Writer, WriterError};
use crate::now_ms;
use crate::storage::file_path;

/// What one flush wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushReport {
    pub files: usize,
    pub rows: usize,
    pub bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error(transparent)]
    Encode(#[from] signaldb_schema::traces::parquet::EncodeError),
    #[error("uploading {path}: {source}")]
    Upload { path: String, source: object_store::Error },
    #[error("syncing {path} to disk: {source}")]
    Sync { path: String, source: std::io::Error },
    #[error("registering {path} in the catalog: {source}")]
    Register {
        path: String,
        source: signaldb_catalog::Error,
    },
    #[error("flush task failed: {0}")]
    Join(String),
}

impl From<FlushError> for WriterError {
    fn from(e: FlushError) -> Self {
        WriterError::Flush(e)
    }
}

impl Writer {
    /// Flushes everything buffered now. One flush runs at a time; data that
    /// arrives meanwhile waits for the next. On failure the unflushed part goes
    /// back into the buffer (it is still in the WAL either way).
    pub async fn flush(&self) -> Result<FlushReport, WriterError> {
        let _guard = self.inner.flush_lock.lock().await;
        let (taken, oldest): (Vec<(TenantId, TenantBuffer)>, _) = {
            let mut st = self.state();
            let oldest = st.oldest.take();
            let taken: Vec<(TenantId, TenantBuffer)> = std::mem::take(&mut st.tenants).into_iter().collect();
            st.flushing = taken.iter().map(|(t, b)| (t.clone(), b.batches.clone())).collect();
            (taken, oldest)
        };
        let mut report = FlushReport::default();
        let mut remaining = taken.into_iter();
        while let Some((tenant, buf)) = remaining.next() {
            let started = Instant::now();
            match self.flush_tenant(&tenant, &buf).await {
                Ok((rows, bytes)) => {
                    self.inner.wal.mark_done(&buf.seqs);
                    let mut st = self.state();
                    st.flushing.remove(&tenant);
                    for id in &buf.ids {
                        st.held.remove(id);
                    }
                    st.bytes = st.bytes.saturating_sub(buf.bytes);
                    self.inner
                        .metrics
                        .writer_buffer_bytes
                        .set(i64::try_from(st.bytes).unwrap_or(i64::MAX));
                    drop(st);
                    let m = &self.inner.metrics;
                    m.writer_flushes.inc();
                    m.writer_flushed_rows.inc_by(rows as u64);
                    m.writer_flushed_bytes.inc_by(bytes as u64);
                    m.writer_flush_seconds.observe(started.elapsed().as_secs_f64());
                    report.files += 1;
                    report.rows += rows;
                    report.bytes += bytes;
                }
                Err(e) => {
                    self.inner.metrics.writer_flush_failures.inc();
                    let mut st = self.state();
                    st.flushing.clear();
                    // Keep the age of what failed, so the retry comes soon.
                    st.oldest = match (st.oldest, oldest) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b).or_else(|| Some(Instant::now())),
                    };
                    for (t, b) in std::iter::once((tenant, buf)).chain(remaining) {
                        let slot = st.tenants.entry(t).or_default();
                        let newer = std::mem::take(slot);
                        *slot = b;
                        slot.batches.extend(newer.batches);
                        slot.ids.extend(newer.ids);
                        slot.seqs.extend(newer.seqs);
                        slot.bytes += newer.bytes;
                    }
                    return Err(e.into());
                }
            }
        }
        if report.files > 0 {
            info!(
                files = report.files,
                rows = report.rows,
                bytes = report.bytes,
                "flushed"
            );
        }
        Ok(report)
    }

    async fn flush_tenant(&self, tenant: &TenantId, buf: &TenantBuffer) -> Result<(usize, usize), FlushError> {
        let batches: Vec<RecordBatch> = buf.batches.iter().map(|h| h.batch.clone()).collect();
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok((0, 0));
        }
        let name = uuid::Uuid::new_v4().to_string();
        // Named by the flush's oldest span, before the file is written: the
        // file goes to storage part by part while it is encoded.
        let min_time_ns = batches.iter().filter_map(oldest_start).min().unwrap_or(0);
        let path = file_path(tenant, Signal::Traces, min_time_ns, &name);
        let (sink, parts) = crate::upload::channel();
        let encoder = tokio::task::spawn_blocking(move || {
            let mut sink = sink;
            let summary = signaldb_schema::traces::parquet::write_parquet(&batches, &mut sink)?;
            sink.finish()
                .map_err(|e| signaldb_schema::traces::parquet::EncodeError::Parquet(e.into()))?;
            Ok::<_, signaldb_schema::traces::parquet::EncodeError>(summary)
        });
        let encoded = async {
            match encoder.await {
                Ok(r) => r.map_err(FlushError::from),
                Err(e) => Err(FlushError::Join(e.to_string())),
            }
        };
        let (size, summary) = crate::upload::upload(&self.inner.store, &path, parts, encoded)
            .await
            .map_err(|e| match e {
                crate::upload::UploadError::Store(source) => FlushError::Upload {
                    path: path.to_string(),
                    source,
                },
                crate::upload::UploadError::Encode(e) => e,
            })?;
        let Some(file) = summary else {
            return Ok((0, 0));
        };
        if let Some(root) = self.inner.local_root.clone() {
            let location = path.clone();
            tokio::task::spawn_blocking(move || crate::storage::sync_local(&root, &location))
                .await
                .map_err(|e| FlushError::Join(e.to_string()))?
                .map_err(|source| FlushError::Sync {
                    path: path.to_string(),
                    source,
                })?;
        }
        let record = FileRecord {
            path: path.to_string(),
            tenant: tenant.clone(),
            signal: Signal::Traces,
            min_time_ns: file.min_time_ns,
            max_time_ns: file.max_time_ns,
            rows: file.rows as i64,
            size_bytes: size as i64,
            trace_ids: file.trace_ids,
            writer_id: self.inner.id.clone(),
            created_at_ms: now_ms(),
        };
        // A batch this writer registered before (a commit whose reply was
        // lost) must not block the flush forever: register the file with the
        // names not yet known; queries deduplicate the repeated spans.
        let known = self
            .inner
            .catalog
            .batches_seen(&buf.ids)
            .await
            .map_err(|source| FlushError::Register {
                path: path.to_string(),
                source,
            })?;
        let ids: Vec<_> = if known.is_empty() {
            buf.ids.clone()
        } else {
            let known: std::collections::HashSet<_> = known.into_iter().collect();
            buf.ids.iter().filter(|id| !known.contains(*id)).cloned().collect()
        };
        self.inner
            .catalog
            .register_file(&record, &ids)
            .await
            .map_err(|source| FlushError::Register {
                path: path.to_string(),
                source,
            })?;
        Ok((file.rows, size))
    }
}

/// The earliest span start of a batch of spans.
fn oldest_start(batch: &RecordBatch) -> Option<i64> {
    batch
        .column_by_name(signaldb_schema::columns::START_TIME_UNIX_NANO)
        .and_then(|c| c.as_any().downcast_ref::<arrow_array::TimestampNanosecondArray>())
        .and_then(arrow::compute::min)
}
