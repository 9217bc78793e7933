//! Spans as Parquet files: sorted by trace id, then start time, zstd on the
//! large columns and LZ4 on the others, page statistics on every column, a page index, and a trace-id bloom filter per
//! row group sized for the file's distinct trace ids. The writer flushes
//! with this; tests build stored files with it.

use std::sync::Arc;

use arrow_array::{Array, FixedSizeBinaryArray, RecordBatch, TimestampNanosecondArray};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::columns;

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Rows per data page: the page index then narrows a trace-by-id to about
/// one page per column.
pub const PAGE_ROWS: usize = 1024;

/// Largest dictionary page of a column chunk.
pub const DICTIONARY_PAGE_BYTES: usize = 32 * 1024;

/// Leaf columns written without a dictionary.
const NO_DICTIONARY: &[&[&str]] = &[
    &[columns::TRACE_ID],
    &[columns::SPAN_ID],
    &[columns::PARENT_SPAN_ID],
    &[columns::START_TIME_UNIX_NANO],
    &[columns::END_TIME_UNIX_NANO],
    &[columns::DURATION_NANO],
    &[columns::ATTRIBUTES, "list", "item", "int"],
    &[columns::ATTRIBUTES, "list", "item", "double"],
];

/// Leaf columns compressed with zstd: those that hold most of a file's
/// bytes and compress well (times, repeated ids, attribute values).
///
/// Every other leaf column is LZ4 (or not compressed, see
/// [`UNCOMPRESSED`]): the Parquet reader makes a zstd compressor and a
/// decompressor for every zstd column chunk it opens, and over the 70 leaf
/// columns a trace by id reads, making them took a fifth of its CPU. The
/// small columns (dictionary indices, types, booleans, columns a load
/// leaves empty) gain little from zstd; an LZ4 chunk needs no context.
const ZSTD_COLUMNS: &[&[&str]] = &[
    &[columns::TRACE_ID],
    &[columns::PARENT_SPAN_ID],
    &[columns::START_TIME_UNIX_NANO],
    &[columns::END_TIME_UNIX_NANO],
    &[columns::DURATION_NANO],
    &[columns::ATTRIBUTES, "list", "item", "str"],
    &[columns::ATTRIBUTES, "list", "item", "int"],
    &[columns::ATTRIBUTES, "list", "item", "double"],
    &[columns::RESOURCE_ATTRIBUTES, "list", "item", "str"],
    &[columns::EVENTS, "list", "item", "attributes", "list", "item", "str"],
];

/// Leaf columns stored without compression: random by definition.
const UNCOMPRESSED: &[&[&str]] = &[&[columns::SPAN_ID]];

/// Columns of lists whose leaf columns get no statistics: queries cannot
/// prune by the values inside a list, and a flush spent a twentieth of the
/// ingest path's CPU comparing attribute strings for their page minimums
/// and maximums.
const NO_STATISTICS: &[&str] = &[
    columns::ATTRIBUTES,
    columns::RESOURCE_ATTRIBUTES,
    columns::SCOPE_ATTRIBUTES,
    columns::EVENTS,
    columns::LINKS,
];

/// Why spans could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("sorting spans: {0}")]
    Sort(arrow_schema::ArrowError),
    #[error("writing Parquet: {0}")]
    Parquet(parquet::errors::ParquetError),
}

/// One Parquet file of spans, encoded in memory.
#[derive(Debug, Clone)]
pub struct EncodedFile {
    pub bytes: Vec<u8>,
    pub summary: FileSummary,
}

/// What the catalog records of a file of spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSummary {
    pub rows: usize,
    /// Earliest start and latest end of the spans, unix nanoseconds.
    pub min_time_ns: i64,
    pub max_time_ns: i64,
    /// First and last trace id (the rows are sorted by trace id).
    pub trace_ids: Option<TraceIdRange>,
}

/// The smallest and largest trace id of a file.
pub type TraceIdRange = ([u8; 16], [u8; 16]);

/// Rows gathered into one sorted piece before it goes to the Parquet
/// writer: what the encoder holds beyond its input is this piece and the
/// encoded pages of one row group.
const PIECE_ROWS: usize = 8 * 1024;

/// Sorts and encodes spans as one Parquet file in memory; None when there
/// are no rows. For files of any size, [`write_parquet`] writes to a sink.
pub fn encode_parquet(batches: &[RecordBatch]) -> Result<Option<EncodedFile>, EncodeError> {
    let mut bytes = Vec::new();
    Ok(write_parquet(batches, &mut bytes)?.map(|summary| EncodedFile { bytes, summary }))
}

/// Sorts spans by trace id, then start time, and writes them to `sink` as
/// one Parquet file; None (and nothing written) when there are no rows.
///
/// The input is never copied whole: only the sort keys (trace id and start
/// time, 24 bytes a row) are gathered and sorted, and the rows are then
/// taken from the input batches [`PIECE_ROWS`] at a time, in order, and
/// written. The sink receives each row group as it is finished.
pub fn write_parquet<W: std::io::Write + Send>(
    batches: &[RecordBatch],
    sink: W,
) -> Result<Option<FileSummary>, EncodeError> {
    let schema = super::schema();
    let batches: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows == 0 {
        return Ok(None);
    }
    let order = SortOrder::of(&batches).map_err(EncodeError::Sort)?;
    let trace_id_idx = schema.index_of(columns::TRACE_ID).map_err(EncodeError::Sort)?;
    let start_idx = schema
        .index_of(columns::START_TIME_UNIX_NANO)
        .map_err(EncodeError::Sort)?;
    let props = writer_properties(trace_id_idx, start_idx, order.traces)?;
    let mut writer = ArrowWriter::try_new(sink, Arc::clone(&schema), Some(props)).map_err(EncodeError::Parquet)?;
    let starts: Vec<usize> = batches
        .iter()
        .scan(0usize, |at, b| {
            let start = *at;
            *at += b.num_rows();
            Some(start)
        })
        .collect();
    let mut pairs = Vec::with_capacity(PIECE_ROWS);
    for piece in order.indices.values().chunks(PIECE_ROWS) {
        pairs.clear();
        pairs.extend(piece.iter().map(|&row| {
            let row = row as usize;
            let batch = starts.partition_point(|&s| s <= row) - 1;
            (batch, row - starts[batch])
        }));
        let sorted = arrow::compute::interleave_record_batch(&batches, &pairs).map_err(EncodeError::Sort)?;
        writer.write(&sorted).map_err(EncodeError::Parquet)?;
    }
    writer.append_key_value_metadata(traces_entry(order.traces));
    writer.close().map_err(EncodeError::Parquet)?;
    Ok(Some(FileSummary {
        rows,
        min_time_ns: order.min_time_ns,
        max_time_ns: order.max_time_ns,
        trace_ids: order.trace_ids,
    }))
}

/// Key of the Parquet key-value metadata entry that holds a file's number
/// of distinct trace ids.
pub const TRACES_KEY: &str = "signaldb.traces";

fn traces_entry(traces: usize) -> parquet::file::metadata::KeyValue {
    parquet::file::metadata::KeyValue::new(TRACES_KEY.to_owned(), traces.to_string())
}

/// The number of distinct trace ids a file's metadata records, when its
/// writer recorded it.
pub fn traces_in(metadata: &parquet::file::metadata::FileMetaData) -> Option<usize> {
    metadata
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == TRACES_KEY)
        .and_then(|kv| kv.value.as_deref())
        .and_then(|v| v.parse().ok())
}

/// Writes spans that arrive already sorted by trace id, then start time
/// (e.g. merged from sorted files), as one Parquet file of the same layout
/// as [`write_parquet`], batch by batch: it holds one row group's pages,
/// never the file.
pub struct SortedSpanWriter<W: std::io::Write + Send> {
    writer: ArrowWriter<W>,
    rows: usize,
    traces: usize,
    first_id: Option<[u8; 16]>,
    last_id: Option<[u8; 16]>,
    min_time_ns: Option<i64>,
    max_time_ns: Option<i64>,
}

impl<W: std::io::Write + Send> std::fmt::Debug for SortedSpanWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SortedSpanWriter")
            .field("rows", &self.rows)
            .field("traces", &self.traces)
            .finish_non_exhaustive()
    }
}

impl<W: std::io::Write + Send> SortedSpanWriter<W> {
    /// A writer to `sink`, whose trace-id bloom filters are sized for
    /// `traces_hint` distinct traces (an upper bound is fine).
    pub fn try_new(sink: W, traces_hint: usize) -> Result<Self, EncodeError> {
        let schema = super::schema();
        let trace_id_idx = schema.index_of(columns::TRACE_ID).map_err(EncodeError::Sort)?;
        let start_idx = schema
            .index_of(columns::START_TIME_UNIX_NANO)
            .map_err(EncodeError::Sort)?;
        let props = writer_properties(trace_id_idx, start_idx, traces_hint)?;
        Ok(Self {
            writer: ArrowWriter::try_new(sink, schema, Some(props)).map_err(EncodeError::Parquet)?,
            rows: 0,
            traces: 0,
            first_id: None,
            last_id: None,
            min_time_ns: None,
            max_time_ns: None,
        })
    }

    /// Appends `batch` (span schema), whose rows continue the sorted order.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), EncodeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let column = |name: &str| {
            batch.column_by_name(name).ok_or_else(|| {
                EncodeError::Sort(arrow_schema::ArrowError::SchemaError(format!("missing column {name}")))
            })
        };
        let ids = column(columns::TRACE_ID)?
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .ok_or_else(|| {
                EncodeError::Sort(arrow_schema::ArrowError::SchemaError("trace_id is not 16 bytes".into()))
            })?;
        for i in 0..ids.len() {
            let Ok(id) = <[u8; 16]>::try_from(ids.value(i)) else {
                continue;
            };
            if self.last_id != Some(id) {
                if self.last_id.is_some_and(|last| last > id) {
                    return Err(EncodeError::Sort(arrow_schema::ArrowError::InvalidArgumentError(
                        "spans are not sorted by trace id".into(),
                    )));
                }
                self.traces += 1;
                self.last_id = Some(id);
                self.first_id.get_or_insert(id);
            }
        }
        let times = |name: &str| -> Result<Option<TimestampNanosecondArray>, EncodeError> {
            Ok(column(name)?
                .as_any()
                .downcast_ref::<TimestampNanosecondArray>()
                .cloned())
        };
        if let Some(min) = times(columns::START_TIME_UNIX_NANO)?
            .as_ref()
            .and_then(arrow::compute::min)
        {
            self.min_time_ns = Some(self.min_time_ns.map_or(min, |m| m.min(min)));
        }
        if let Some(max) = times(columns::END_TIME_UNIX_NANO)?
            .as_ref()
            .and_then(arrow::compute::max)
        {
            self.max_time_ns = Some(self.max_time_ns.map_or(max, |m| m.max(max)));
        }
        self.writer.write(batch).map_err(EncodeError::Parquet)?;
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes written to the sink so far plus those buffered for the row
    /// group in progress.
    pub fn bytes(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }

    /// Finishes the file and hands back the sink; the summary is None when
    /// no row was written (the sink then holds an empty file, not to keep).
    pub fn close(mut self) -> Result<(Option<FileSummary>, W), EncodeError> {
        self.writer.append_key_value_metadata(traces_entry(self.traces));
        let sink = self.writer.into_inner().map_err(EncodeError::Parquet)?;
        if self.rows == 0 {
            return Ok((None, sink));
        }
        let min_time_ns = self.min_time_ns.unwrap_or(0);
        let summary = FileSummary {
            rows: self.rows,
            min_time_ns,
            max_time_ns: self.max_time_ns.unwrap_or(min_time_ns).max(min_time_ns),
            trace_ids: self.first_id.zip(self.last_id),
        };
        Ok((Some(summary), sink))
    }
}

/// The Parquet layout of a file of spans holding `traces` distinct traces.
fn writer_properties(trace_id_idx: usize, start_idx: usize, traces: usize) -> Result<WriterProperties, EncodeError> {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        // Reading one page of a column means reading and decompressing its
        // whole dictionary page first: at the default 1 MiB limit a
        // trace-by-id decompressed 4 MiB of dictionaries to return ten
        // spans. Small dictionaries serve the columns with few values
        // (names, keys, services); the others fall back to plain values
        // early, and zstd still compresses their repeats.
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Small pages: the page index then narrows a trace-by-id to about
        // one page per column instead of decoding up to 20,000 rows to skip.
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_column_bloom_filter_enabled(ColumnPath::from(columns::TRACE_ID), true)
        // 0.01%: a lookup over a hundred files then passes a second file's
        // filter one time in a hundred (1% made that two times in three),
        // for 4 bytes per trace.
        .set_column_bloom_filter_fpp(ColumnPath::from(columns::TRACE_ID), 0.0001)
        // Sized for the distinct trace ids, not the rows: a tenth of the
        // size at ten spans per trace, for the same false-positive rate.
        .set_column_bloom_filter_max_ndv(ColumnPath::from(columns::TRACE_ID), traces.max(1) as u64)
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
        ]));
    let zstd = Compression::ZSTD(ZstdLevel::try_new(3).map_err(EncodeError::Parquet)?);
    for column in ZSTD_COLUMNS {
        props = props.set_column_compression(column_path(column), zstd);
    }
    for column in UNCOMPRESSED {
        props = props.set_column_compression(column_path(column), Compression::UNCOMPRESSED);
    }
    let leaves = parquet::arrow::ArrowSchemaConverter::new()
        .convert(&super::schema())
        .map_err(EncodeError::Parquet)?;
    for leaf in leaves.columns() {
        if leaf
            .path()
            .parts()
            .first()
            .is_some_and(|root| NO_STATISTICS.contains(&root.as_str()))
        {
            props = props.set_column_statistics_enabled(leaf.path().clone(), EnabledStatistics::None);
        }
    }
    // Ids and times hardly repeat: a dictionary would be all cost.
    for column in NO_DICTIONARY {
        props = props.set_column_dictionary_enabled(column_path(column), false);
    }
    Ok(props.build())
}

fn column_path(parts: &[&str]) -> ColumnPath {
    ColumnPath::new(parts.iter().map(|p| (*p).to_owned()).collect())
}

/// The order of the rows of several batches (numbered across them, first
/// batch first) by trace id, then start time, and what the catalog keeps
/// of them.
struct SortOrder {
    indices: arrow_array::UInt32Array,
    traces: usize,
    min_time_ns: i64,
    max_time_ns: i64,
    trace_ids: Option<TraceIdRange>,
}

impl SortOrder {
    fn of(batches: &[&RecordBatch]) -> Result<Self, arrow_schema::ArrowError> {
        use arrow::compute::{SortColumn, concat, lexsort_to_indices};
        let column = |name: &str| -> Result<Vec<&dyn Array>, arrow_schema::ArrowError> {
            batches
                .iter()
                .map(|b| {
                    b.column_by_name(name)
                        .map(|c| c.as_ref())
                        .ok_or_else(|| arrow_schema::ArrowError::SchemaError(format!("missing column {name}")))
                })
                .collect()
        };
        let ids = concat(&column(columns::TRACE_ID)?)?;
        let starts = concat(&column(columns::START_TIME_UNIX_NANO)?)?;
        if ids.len() > u32::MAX as usize {
            return Err(arrow_schema::ArrowError::InvalidArgumentError(format!(
                "{} spans do not fit one file",
                ids.len()
            )));
        }
        let indices = lexsort_to_indices(
            &[
                SortColumn {
                    values: Arc::clone(&ids),
                    options: None,
                },
                SortColumn {
                    values: Arc::clone(&starts),
                    options: None,
                },
            ],
            None,
        )?;
        let (trace_ids, traces) = trace_id_range(&ids, &indices);
        let min_time_ns = starts
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .and_then(arrow::compute::min)
            .unwrap_or(0);
        let max_end = column(columns::END_TIME_UNIX_NANO)?
            .into_iter()
            .filter_map(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
            .filter(|a| a.null_count() < a.len())
            .filter_map(arrow::compute::max)
            .max();
        Ok(Self {
            indices,
            traces,
            min_time_ns,
            max_time_ns: max_end.unwrap_or(min_time_ns).max(min_time_ns),
            trace_ids,
        })
    }
}

/// The first and last trace id of `ids` taken in `order` (sorted by trace
/// id), and how many distinct trace ids there are.
fn trace_id_range(ids: &dyn Array, order: &arrow_array::UInt32Array) -> (Option<TraceIdRange>, usize) {
    let Some(ids) = ids.as_any().downcast_ref::<FixedSizeBinaryArray>() else {
        return (None, order.len());
    };
    let order = order.values();
    let value = |k: usize| ids.value(order[k] as usize);
    let n = order.len();
    let distinct = (0..n).filter(|&k| k == 0 || value(k) != value(k - 1)).count();
    let range = match (n, ids.null_count()) {
        (0, _) => None,
        (_, 0) => <[u8; 16]>::try_from(value(0))
            .ok()
            .zip(<[u8; 16]>::try_from(value(n - 1)).ok()),
        _ => None,
    };
    (range, distinct)
}

/// Orders spans by trace id, then start time.
pub fn sort_spans(batch: &RecordBatch) -> Result<RecordBatch, arrow_schema::ArrowError> {
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use parquet::file::properties::ReaderProperties;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;

    use super::*;

    fn ids(seed: u64, n: usize) -> Vec<[u8; 16]> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                let mut id = [0u8; 16];
                for chunk in id.chunks_mut(8) {
                    x ^= x >> 12;
                    x ^= x << 25;
                    x ^= x >> 27;
                    chunk.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
                }
                id
            })
            .collect()
    }

    fn spans_of(traces: &[[u8; 16]], per_trace: usize) -> RecordBatch {
        let spans = traces
            .iter()
            .enumerate()
            .flat_map(|(t, id)| {
                (0..per_trace).map(move |s| Span {
                    trace_id: id.to_vec(),
                    span_id: vec![s as u8 + 1; 8],
                    name: "op".into(),
                    // Later traces start earlier: the file is reordered.
                    start_time_unix_nano: 1_000_000 - t as u64 * 10 + s as u64,
                    end_time_unix_nano: 2_000_000,
                    ..Default::default()
                })
            })
            .collect();
        crate::traces::otlp_to_arrow(&[ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }])
        .unwrap()
    }

    #[test]
    fn records_the_id_range_and_time_range_of_sorted_rows() {
        let traces = ids(7, 300);
        let file = encode_parquet(&[spans_of(&traces, 3)]).unwrap().unwrap();
        assert_eq!(file.summary.rows, 900);
        let (min, max) = file.summary.trace_ids.unwrap();
        assert_eq!(min, *traces.iter().min().unwrap());
        assert_eq!(max, *traces.iter().max().unwrap());
        assert_eq!(
            (file.summary.min_time_ns, file.summary.max_time_ns),
            (1_000_000 - 299 * 10, 2_000_000)
        );
        assert!(encode_parquet(&[]).is_err() || encode_parquet(&[spans_of(&[], 1)]).unwrap().is_none());
    }

    /// Sorted spans written batch by batch make the same summary as the
    /// sorting writer, record their trace count, and unsorted ones are refused.
    #[test]
    fn sorted_writer_summarises_and_records_the_trace_count() {
        let traces = ids(11, 500);
        let sorted = sort_spans(&spans_of(&traces, 4)).unwrap();
        let whole = encode_parquet(std::slice::from_ref(&sorted)).unwrap().unwrap();
        let mut bytes = Vec::new();
        let mut writer = SortedSpanWriter::try_new(&mut bytes, 500).unwrap();
        for at in (0..sorted.num_rows()).step_by(333) {
            writer
                .write(&sorted.slice(at, 333.min(sorted.num_rows() - at)))
                .unwrap();
        }
        assert_eq!(writer.rows(), 2_000);
        let summary = writer.close().unwrap().0.unwrap();
        assert_eq!(summary, whole.summary);
        for file in [bytes, whole.bytes] {
            let reader = SerializedFileReader::new(Bytes::from(file)).unwrap();
            assert_eq!(traces_in(reader.metadata().file_metadata()), Some(500));
        }

        let mut sink = Vec::new();
        let mut writer = SortedSpanWriter::try_new(&mut sink, 10).unwrap();
        writer.write(&sorted.slice(1_000, 10)).unwrap();
        assert!(
            writer.write(&sorted.slice(0, 10)).is_err(),
            "ids going back are refused"
        );
        let empty = SortedSpanWriter::try_new(Vec::new(), 1).unwrap();
        assert!(empty.close().unwrap().0.is_none());
    }

    /// Spans spread over many batches come out as one file sorted by trace
    /// id, then start time, in full row groups, however the pieces fell.
    #[test]
    fn many_batches_are_sorted_into_full_row_groups() {
        let traces = ids(3, 30_000);
        // Each batch holds every third trace, so every piece interleaves all.
        let batches: Vec<RecordBatch> = (0..3)
            .map(|k| {
                let mine: Vec<[u8; 16]> = traces.iter().skip(k).step_by(3).copied().collect();
                spans_of(&mine, 3)
            })
            .collect();
        let file = encode_parquet(&batches).unwrap().unwrap();
        assert_eq!(file.summary.rows, 90_000);
        let reader = SerializedFileReader::new(Bytes::from(file.bytes.clone())).unwrap();
        let groups: Vec<i64> = reader.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, vec![ROW_GROUP_ROWS as i64, 90_000 - ROW_GROUP_ROWS as i64]);
        let rows = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file.bytes))
            .unwrap()
            .with_batch_size(100_000)
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let id = rows
            .column_by_name(columns::TRACE_ID)
            .unwrap()
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .unwrap();
        let start = rows
            .column_by_name(columns::START_TIME_UNIX_NANO)
            .unwrap()
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        assert_eq!(rows.num_rows(), 90_000);
        for i in 1..rows.num_rows() {
            let (a, b) = ((id.value(i - 1), start.value(i - 1)), (id.value(i), start.value(i)));
            assert!(a <= b, "row {i} out of order");
        }
        let mut expected = traces.clone();
        expected.sort();
        assert_eq!(id.value(0), expected[0]);
        assert_eq!(id.value(89_999), expected[29_999]);
        assert_eq!(file.summary.trace_ids, Some((expected[0], expected[29_999])));
    }

    /// No dictionary page over the bound, and none for ids and times: a
    /// lookup reads the dictionary of every column it touches.
    #[test]
    fn dictionaries_stay_small() {
        let traces = ids(5, 5_000);
        let file = encode_parquet(&[spans_of(&traces, 10)]).unwrap().unwrap();
        let reader = SerializedFileReader::new(Bytes::from(file.bytes)).unwrap();
        let group = reader.metadata().row_group(0);
        for column in group.columns() {
            let path = column.column_path().parts().join(".");
            if let Some(dictionary) = column.dictionary_page_offset() {
                let bytes = column.data_page_offset() - dictionary;
                assert!(
                    bytes <= DICTIONARY_PAGE_BYTES as i64 + 1024,
                    "{path}: dictionary page of {bytes} bytes"
                );
                assert!(
                    !NO_DICTIONARY.iter().any(|p| p.join(".") == path),
                    "{path} must have no dictionary"
                );
            }
        }
    }

    /// zstd on the named large columns, none on span ids, LZ4 on the rest;
    /// every named column exists.
    #[test]
    fn large_columns_are_zstd_and_the_others_lz4() {
        let traces = ids(6, 1_000);
        let file = encode_parquet(&[spans_of(&traces, 10)]).unwrap().unwrap();
        let reader = SerializedFileReader::new(Bytes::from(file.bytes)).unwrap();
        let group = reader.metadata().row_group(0);
        let paths: Vec<String> = group
            .columns()
            .iter()
            .map(|c| c.column_path().parts().join("."))
            .collect();
        for named in ZSTD_COLUMNS.iter().chain(UNCOMPRESSED) {
            assert!(paths.contains(&named.join(".")), "{} is a leaf column", named.join("."));
        }
        for column in group.columns() {
            let path = column.column_path().parts().join(".");
            let expected = if ZSTD_COLUMNS.iter().any(|p| p.join(".") == path) {
                "ZSTD"
            } else if UNCOMPRESSED.iter().any(|p| p.join(".") == path) {
                "UNCOMPRESSED"
            } else {
                "LZ4_RAW"
            };
            assert!(
                format!("{:?}", column.compression()).starts_with(expected),
                "{path}: {:?}, expected {expected}",
                column.compression()
            );
        }
    }

    /// Top-level columns have page statistics; the leaves of list columns
    /// have none.
    #[test]
    fn list_leaves_have_no_statistics() {
        let traces = ids(8, 500);
        let file = encode_parquet(&[spans_of(&traces, 10)]).unwrap().unwrap();
        let reader = SerializedFileReader::new(Bytes::from(file.bytes)).unwrap();
        let group = reader.metadata().row_group(0);
        let mut lists = 0;
        for column in group.columns() {
            let parts = column.column_path().parts();
            let in_list = NO_STATISTICS.contains(&parts[0].as_str());
            lists += usize::from(in_list);
            assert_eq!(
                column.statistics().is_some(),
                !in_list,
                "{}: statistics {:?}",
                parts.join("."),
                column.statistics()
            );
        }
        assert!(lists > 30, "{lists} list leaves");
    }

    /// The trace-id bloom filter holds every stored id and answers "maybe"
    /// for about 0.01% of other ids.
    #[test]
    fn the_trace_id_bloom_filter_is_sized_for_distinct_traces() {
        let traces = ids(11, 2_000);
        let file = encode_parquet(&[spans_of(&traces, 5)]).unwrap().unwrap();
        let options = ReadOptionsBuilder::new()
            .with_reader_properties(ReaderProperties::builder().set_read_bloom_filter(true).build())
            .build();
        let reader = SerializedFileReader::new_with_options(Bytes::from(file.bytes), options).unwrap();
        let group = reader.get_row_group(0).unwrap();
        let leaf = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().parts() == [columns::TRACE_ID])
            .unwrap();
        let bloom = group.get_column_bloom_filter(leaf).unwrap();
        assert!(traces.iter().all(|id| bloom.check(id.as_slice())), "no false negatives");
        let others = ids(12, 100_000);
        let maybe = others.iter().filter(|id| bloom.check(id.as_slice())).count();
        assert!(
            maybe <= 30,
            "{maybe} of 100,000 absent ids pass the bloom filter (expected about 10)"
        );
        assert!(
            bloom.num_blocks() * 32 <= 8 * 1024,
            "2,000 traces need at most 8 KiB of bloom filter, not {} bytes",
            bloom.num_blocks() * 32
        );
    }
}
