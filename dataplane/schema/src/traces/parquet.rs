//! Spans as Parquet files: sorted by trace id, then start time, zstd, page
//! statistics on every column, a page index, and a trace-id bloom filter per
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
    pub rows: usize,
    /// Earliest start and latest end of the spans, unix nanoseconds.
    pub min_time_ns: i64,
    pub max_time_ns: i64,
    /// First and last trace id (the rows are sorted by trace id).
    pub trace_ids: Option<TraceIdRange>,
}

/// The smallest and largest trace id of a file.
pub type TraceIdRange = ([u8; 16], [u8; 16]);

/// Sorts and encodes spans as one Parquet file; None when there are no rows.
pub fn encode_parquet(batches: &[RecordBatch]) -> Result<Option<EncodedFile>, EncodeError> {
    let schema = super::schema();
    let all = arrow::compute::concat_batches(&schema, batches).map_err(EncodeError::Sort)?;
    if all.num_rows() == 0 {
        return Ok(None);
    }
    let sorted = sort_spans(&all).map_err(EncodeError::Sort)?;
    let (min_time_ns, max_time_ns) = time_range(&sorted);
    let (trace_ids, traces) = trace_id_range(&sorted);
    let trace_id_idx = schema.index_of(columns::TRACE_ID).map_err(EncodeError::Sort)?;
    let start_idx = schema
        .index_of(columns::START_TIME_UNIX_NANO)
        .map_err(EncodeError::Sort)?;
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(EncodeError::Parquet)?))
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
    // Ids and times hardly repeat: a dictionary would be all cost.
    for column in NO_DICTIONARY {
        props = props
            .set_column_dictionary_enabled(ColumnPath::new(column.iter().map(|p| (*p).to_owned()).collect()), false);
    }
    let props = props.build();
    let mut out = Vec::with_capacity(sorted.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(&mut out, Arc::clone(&schema), Some(props)).map_err(EncodeError::Parquet)?;
    writer.write(&sorted).map_err(EncodeError::Parquet)?;
    writer.close().map_err(EncodeError::Parquet)?;
    Ok(Some(EncodedFile {
        bytes: out,
        rows: sorted.num_rows(),
        min_time_ns,
        max_time_ns,
        trace_ids,
    }))
}

/// The first and last trace id of spans sorted by trace id, and how many
/// distinct trace ids there are.
fn trace_id_range(sorted: &RecordBatch) -> (Option<TraceIdRange>, usize) {
    let Some(ids) = sorted
        .column_by_name(columns::TRACE_ID)
        .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
    else {
        return (None, sorted.num_rows());
    };
    let id = |i: usize| <[u8; 16]>::try_from(ids.value(i)).ok();
    let n = ids.len();
    let distinct = (0..n).filter(|&i| i == 0 || ids.value(i) != ids.value(i - 1)).count();
    let range = match (n, ids.null_count()) {
        (0, _) => None,
        (_, 0) => id(0).zip(id(n - 1)),
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
        assert_eq!(file.rows, 900);
        let (min, max) = file.trace_ids.unwrap();
        assert_eq!(min, *traces.iter().min().unwrap());
        assert_eq!(max, *traces.iter().max().unwrap());
        assert_eq!((file.min_time_ns, file.max_time_ns), (1_000_000 - 299 * 10, 2_000_000));
        assert!(encode_parquet(&[]).is_err() || encode_parquet(&[spans_of(&[], 1)]).unwrap().is_none());
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
