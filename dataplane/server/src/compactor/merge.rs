//! One compaction job's data work: a k-way merge of span files (each sorted
//! by trace id, then start time) into new files of the same order, keeping
//! the first copy of every (trace id, span id), split at trace boundaries
//! once a file reaches its share of the target size.
//!
//! It runs on a blocking thread: the merge and the Parquet encoding are CPU
//! work. Reads from object storage are awaited on the I/O runtime through
//! its handle, and each output is uploaded part by part as it is encoded,
//! so the job holds one batch per input and one row group per output,
//! never a file.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;

use arrow_array::{Array, FixedSizeBinaryArray, RecordBatch, TimestampNanosecondArray};
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use signaldb_catalog::FileRecord;
use signaldb_query::StoreReader;
use signaldb_schema::columns;
use signaldb_schema::traces::parquet::{EncodeError, FileSummary, SortedSpanWriter, traces_in};
use tokio::runtime::Handle;

use crate::upload::{self, PartSink, UploadError};

/// Rows decoded from an input at a time: small, as the job holds one
/// decoded batch per input (spans with their attributes take a few KiB
/// each decoded).
const INPUT_ROWS: usize = 256;

/// Rows gathered before they go to the output.
const BATCH_ROWS: usize = 2048;

/// Why a merge failed. Nothing it wrote is registered then; an output
/// already uploaded is an orphan that orphan collection deletes.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: parquet::errors::ParquetError,
    },
    #[error("{path} does not hold spans: {reason}")]
    Schema { path: String, reason: String },
    #[error("merging spans: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("uploading {path}: {source}")]
    Upload { path: String, source: object_store::Error },
    #[error("syncing {path} to disk: {source}")]
    Sync { path: String, source: std::io::Error },
    #[error("handing {path} to its upload: {source}")]
    Hand { path: String, source: std::io::Error },
    #[error("upload task failed: {0}")]
    Join(String),
}

/// A file the merge wrote.
#[derive(Debug, Clone)]
pub(super) struct Output {
    pub(super) path: Path,
    pub(super) summary: FileSummary,
    pub(super) size: usize,
}

/// What a merge did.
#[derive(Debug, Clone, Default)]
pub(super) struct Merged {
    pub(super) outputs: Vec<Output>,
    pub(super) rows_in: u64,
    pub(super) duplicates: u64,
}

/// Where and how a merge writes.
pub(super) struct Target {
    pub(super) store: Arc<dyn ObjectStore>,
    /// Local object root to fsync outputs under (`file://` storage).
    pub(super) local_root: Option<std::path::PathBuf>,
    /// Rows after which an output is closed at the next trace boundary.
    pub(super) rows_per_file: usize,
    /// A fresh path for each output.
    pub(super) next_path: Box<dyn FnMut() -> Path + Send>,
}

/// One input: its stream and the batch being merged.
struct Input {
    path: String,
    stream: ParquetRecordBatchStream<StoreReader>,
    batch: RecordBatch,
    ids: FixedSizeBinaryArray,
    spans: FixedSizeBinaryArray,
    starts: TimestampNanosecondArray,
    /// Next row of `batch`.
    row: usize,
    /// Index of `batch` in the piece being gathered.
    slot: usize,
}

type Key = Reverse<([u8; 16], i64, usize)>;

impl Input {
    fn key(&self, index: usize) -> Key {
        let id = <[u8; 16]>::try_from(self.ids.value(self.row)).unwrap_or_default();
        Reverse((id, self.starts.value(self.row), index))
    }

    /// Moves to the next batch; false at the end of the file.
    fn next_batch(&mut self, rt: &Handle) -> Result<bool, MergeError> {
        loop {
            match rt.block_on(self.stream.next()) {
                None => return Ok(false),
                Some(Err(source)) => {
                    return Err(MergeError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
                Some(Ok(batch)) if batch.num_rows() == 0 => continue,
                Some(Ok(batch)) => {
                    let batch = align(&batch).map_err(|reason| MergeError::Schema {
                        path: self.path.clone(),
                        reason,
                    })?;
                    let column = |name: &str| -> Result<FixedSizeBinaryArray, MergeError> {
                        batch
                            .column_by_name(name)
                            .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
                            .cloned()
                            .ok_or_else(|| MergeError::Schema {
                                path: self.path.clone(),
                                reason: format!("{name} is not fixed-size binary"),
                            })
                    };
                    self.ids = column(columns::TRACE_ID)?;
                    self.spans = column(columns::SPAN_ID)?;
                    self.starts = batch
                        .column_by_name(columns::START_TIME_UNIX_NANO)
                        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
                        .cloned()
                        .ok_or_else(|| MergeError::Schema {
                            path: self.path.clone(),
                            reason: "start time is not a timestamp".into(),
                        })?;
                    self.batch = batch;
                    self.row = 0;
                    return Ok(true);
                }
            }
        }
    }
}

/// The batch in the span schema: columns matched by name, a nullable column
/// missing from an older file filled with nulls, types cast.
fn align(batch: &RecordBatch) -> Result<RecordBatch, String> {
    let schema = signaldb_schema::traces::schema();
    let mut cols = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => cols.push(Arc::clone(c)),
            Some(c) => cols.push(arrow::compute::cast(c, f.data_type()).map_err(|e| e.to_string())?),
            None if f.is_nullable() => cols.push(arrow::array::new_null_array(f.data_type(), batch.num_rows())),
            None => return Err(format!("column {} is missing", f.name())),
        }
    }
    RecordBatch::try_new(schema, cols).map_err(|e| e.to_string())
}

/// An output being written: its encoder on this thread, its upload on the
/// I/O runtime.
struct OutputFile {
    path: Path,
    writer: SortedSpanWriter<PartSink>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
    upload: tokio::task::JoinHandle<Result<(usize, ()), UploadError<String>>>,
}

impl OutputFile {
    fn open(rt: &Handle, target: &mut Target, traces_hint: usize) -> Result<Self, MergeError> {
        let path = (target.next_path)();
        let (sink, parts) = upload::channel();
        let (done, finished) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let store = Arc::clone(&target.store);
        let location = path.clone();
        let upload = rt.spawn(async move {
            let encoded = async move { finished.await.unwrap_or_else(|_| Err("the merge stopped".into())) };
            upload::upload(&store, &location, parts, encoded).await
        });
        Ok(Self {
            path,
            writer: SortedSpanWriter::try_new(sink, traces_hint)?,
            done,
            upload,
        })
    }

    /// Completes the file and its upload.
    fn close(self, rt: &Handle, target: &Target) -> Result<Option<Output>, MergeError> {
        let Self {
            path,
            writer,
            done,
            upload,
        } = self;
        let closed = writer.close().map_err(MergeError::from).and_then(|(summary, sink)| {
            sink.finish().map_err(|source| MergeError::Hand {
                path: path.to_string(),
                source,
            })?;
            Ok(summary)
        });
        let summary = match closed {
            Ok(summary) => summary,
            Err(e) => {
                // The upload is aborted: nothing becomes visible.
                let _ = done.send(Err(e.to_string()));
                let _ = rt.block_on(upload);
                return Err(e);
            }
        };
        let _ = done.send(Ok(()));
        let (size, ()) = rt
            .block_on(upload)
            .map_err(|e| MergeError::Join(e.to_string()))?
            .map_err(|e| match e {
                UploadError::Store(source) => MergeError::Upload {
                    path: path.to_string(),
                    source,
                },
                UploadError::Encode(reason) => MergeError::Join(reason),
            })?;
        let Some(summary) = summary else {
            return Ok(None);
        };
        if let Some(root) = &target.local_root {
            crate::storage::sync_local(root, &path).map_err(|source| MergeError::Sync {
                path: path.to_string(),
                source,
            })?;
        }
        Ok(Some(Output { path, summary, size }))
    }
}

/// Merges `inputs` into new files per `target`; see the module docs.
pub(super) fn merge(rt: &Handle, inputs: &[FileRecord], mut target: Target) -> Result<Merged, MergeError> {
    let mut open = Vec::with_capacity(inputs.len());
    let mut traces_hint = 0usize;
    for file in inputs {
        let reader = StoreReader::new(
            Arc::clone(&target.store),
            Path::from(file.path.as_str()),
            u64::try_from(file.size_bytes).unwrap_or_default(),
        );
        let read_err = |source| MergeError::Read {
            path: file.path.clone(),
            source,
        };
        let builder = rt
            .block_on(ParquetRecordBatchStreamBuilder::new(reader))
            .map_err(read_err)?;
        traces_hint += traces_in(builder.metadata().file_metadata())
            .unwrap_or_else(|| usize::try_from(file.rows).unwrap_or_default());
        let stream = builder.with_batch_size(INPUT_ROWS).build().map_err(read_err)?;
        let empty_ids = FixedSizeBinaryArray::new_null(16, 0);
        let mut input = Input {
            path: file.path.clone(),
            stream,
            batch: RecordBatch::new_empty(signaldb_schema::traces::schema()),
            ids: empty_ids.clone(),
            spans: empty_ids,
            starts: TimestampNanosecondArray::from(Vec::<i64>::new()),
            row: 0,
            slot: 0,
        };
        if input.next_batch(rt)? {
            open.push(input);
        }
    }
    let hint_per_file = traces_hint.min(target.rows_per_file.max(1));

    let mut merged = Merged::default();
    let mut heap: BinaryHeap<Key> = open.iter().enumerate().map(|(i, input)| input.key(i)).collect();
    let mut slots: Vec<RecordBatch> = Vec::with_capacity(open.len() * 2);
    for input in &mut open {
        input.slot = slots.len();
        slots.push(input.batch.clone());
    }
    let mut piece: Vec<(usize, usize)> = Vec::with_capacity(BATCH_ROWS);
    let mut out: Option<OutputFile> = None;
    let mut current: Option<[u8; 16]> = None;
    let mut seen: HashSet<[u8; 8]> = HashSet::new();

    while let Some(Reverse((id, _, i))) = heap.pop() {
        merged.rows_in += 1;
        if current != Some(id) {
            // A trace boundary: the place to close a full output.
            let full = out
                .as_ref()
                .is_some_and(|o| o.writer.rows() + piece.len() >= target.rows_per_file);
            if full {
                write_piece(&mut out, &mut piece, &mut slots, &mut open)?;
                if let Some(file) = out.take()
                    && let Some(done) = file.close(rt, &target)?
                {
                    merged.outputs.push(done);
                }
            }
            current = Some(id);
            seen.clear();
        }
        let input = &mut open[i];
        let span = <[u8; 8]>::try_from(input.spans.value(input.row)).unwrap_or_default();
        if seen.insert(span) {
            piece.push((input.slot, input.row));
        } else {
            merged.duplicates += 1;
        }
        input.row += 1;
        let more = input.row < input.batch.num_rows() || {
            let more = input.next_batch(rt)?;
            if more {
                input.slot = slots.len();
                slots.push(input.batch.clone());
            }
            more
        };
        if more {
            heap.push(open[i].key(i));
        }
        if piece.len() >= BATCH_ROWS {
            if out.is_none() {
                out = Some(OutputFile::open(rt, &mut target, hint_per_file)?);
            }
            write_piece(&mut out, &mut piece, &mut slots, &mut open)?;
        }
    }
    if !piece.is_empty() && out.is_none() {
        out = Some(OutputFile::open(rt, &mut target, hint_per_file)?);
    }
    write_piece(&mut out, &mut piece, &mut slots, &mut open)?;
    if let Some(file) = out.take()
        && let Some(done) = file.close(rt, &target)?
    {
        merged.outputs.push(done);
    }
    Ok(merged)
}

/// Writes the gathered rows to the output, then keeps only the inputs'
/// current batches as slots.
fn write_piece(
    out: &mut Option<OutputFile>,
    piece: &mut Vec<(usize, usize)>,
    slots: &mut Vec<RecordBatch>,
    open: &mut [Input],
) -> Result<(), MergeError> {
    if piece.is_empty() {
        return Ok(());
    }
    if let Some(file) = out.as_mut() {
        let refs: Vec<&RecordBatch> = slots.iter().collect();
        let rows = arrow::compute::interleave_record_batch(&refs, piece)?;
        file.writer.write(&rows)?;
    }
    piece.clear();
    slots.clear();
    for input in open.iter_mut() {
        input.slot = slots.len();
        slots.push(input.batch.clone());
    }
    Ok(())
}
