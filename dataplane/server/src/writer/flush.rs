//! Flushing the buffer: per tenant, concatenate, sort by trace id and start
//! time, write Parquet (zstd, bloom filter on trace id, page statistics),
//! upload, register in the catalog with the batch names, trim the WAL.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, RecordBatch, TimestampNanosecondArray};
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use signaldb_catalog::FileRecord;
use signaldb_config::{Signal, TenantId};
use signaldb_schema::columns;
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
    #[error("sorting spans: {0}")]
    Sort(arrow_schema::ArrowError),
    #[error("writing Parquet: {0}")]
    Parquet(parquet::errors::ParquetError),
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

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Rows per data page.
const PAGE_ROWS: usize = 1024;

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
        let batches = buf.batches.clone();
        let encoded = tokio::task::spawn_blocking(move || encode_parquet(&batches))
            .await
            .map_err(|e| FlushError::Join(e.to_string()))??;
        let Some(file) = encoded else {
            return Ok((0, 0));
        };
        let name = uuid::Uuid::new_v4().to_string();
        let path = file_path(tenant, Signal::Traces, file.min_time_ns, &name);
        let size = file.bytes.len();
        self.inner
            .store
            .put(&path, PutPayload::from(file.bytes))
            .await
            .map_err(|source| FlushError::Upload {
                path: path.to_string(),
                source,
            })?;
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

struct EncodedFile {
    bytes: bytes::Bytes,
    rows: usize,
    min_time_ns: i64,
    max_time_ns: i64,
}

/// Sorts and encodes spans as one Parquet file; None when there are no rows.
fn encode_parquet(batches: &[RecordBatch]) -> Result<Option<EncodedFile>, FlushError> {
    let schema = signaldb_schema::traces::schema();
    let all = arrow::compute::concat_batches(&schema, batches).map_err(FlushError::Sort)?;
    if all.num_rows() == 0 {
        return Ok(None);
    }
    let sorted = sort_spans(&all).map_err(FlushError::Sort)?;
    let (min_time_ns, max_time_ns) = time_range(&sorted);
    let trace_id_idx = schema.index_of(columns::TRACE_ID).map_err(FlushError::Sort)?;
    let start_idx = schema
        .index_of(columns::START_TIME_UNIX_NANO)
        .map_err(FlushError::Sort)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(FlushError::Parquet)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Small pages: the page index then narrows a trace-by-id to about
        // one page per column instead of decoding up to 20,000 rows to skip.
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_column_bloom_filter_enabled(ColumnPath::from(columns::TRACE_ID), true)
        .set_column_bloom_filter_fpp(ColumnPath::from(columns::TRACE_ID), 0.01)
        .set_column_bloom_filter_max_ndv(ColumnPath::from(columns::TRACE_ID), sorted.num_rows() as u64)
        .set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: trace_id_idx as i32,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: start_idx as i32,
                descending: false,
                nulls_first: false,
            },
        ]))
        .build();
    let mut out = Vec::with_capacity(sorted.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(&mut out, Arc::clone(&schema), Some(props)).map_err(FlushError::Parquet)?;
    writer.write(&sorted).map_err(FlushError::Parquet)?;
    writer.close().map_err(FlushError::Parquet)?;
    Ok(Some(EncodedFile {
        bytes: bytes::Bytes::from(out),
        rows: sorted.num_rows(),
        min_time_ns,
        max_time_ns,
    }))
}

/// Orders spans by trace id, then start time.
pub(crate) fn sort_spans(batch: &RecordBatch) -> Result<RecordBatch, arrow_schema::ArrowError> {
    use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| arrow_schema::ArrowError::SchemaError(format!("missing column {name}")))
    };
    let indices = lexsort_to_indices(
        &[
            SortColumn {
                values: col(columns::TRACE_ID)?,
                options: None,
            },
            SortColumn {
                values: col(columns::START_TIME_UNIX_NANO)?,
                options: None,
            },
        ],
        None,
    )?;
    take_record_batch(batch, &indices)
}

fn time_range(batch: &RecordBatch) -> (i64, i64) {
    let get = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>().cloned())
    };
    let min = get(columns::START_TIME_UNIX_NANO)
        .and_then(|a| arrow::compute::min(&a))
        .unwrap_or(0);
    let max = get(columns::END_TIME_UNIX_NANO)
        .and_then(|a| (a.null_count() < a.len()).then(|| arrow::compute::max(&a)).flatten())
        .unwrap_or(min)
        .max(min);
    (min, max)
}
