//! Row selections over buffered span batches.

use arrow_array::{Array, BooleanArray, FixedSizeBinaryArray, RecordBatch, TimestampNanosecondArray};
use arrow_schema::ArrowError;
use signaldb_schema::columns;

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> Result<&'a T, ArrowError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} missing or of the wrong type")))
}

/// Rows of the trace `id`.
pub(super) fn trace_mask(b: &RecordBatch, id: &[u8]) -> Result<BooleanArray, ArrowError> {
    let ids: &FixedSizeBinaryArray = column(b, columns::TRACE_ID)?;
    Ok((0..ids.len()).map(|i| Some(ids.value(i) == id)).collect())
}

/// Rows of spans overlapping `[min, max]` nanoseconds.
pub(super) fn time_mask(b: &RecordBatch, min: i64, max: i64) -> Result<BooleanArray, ArrowError> {
    let start: &TimestampNanosecondArray = column(b, columns::START_TIME_UNIX_NANO)?;
    let end: &TimestampNanosecondArray = column(b, columns::END_TIME_UNIX_NANO)?;
    Ok((0..start.len())
        .map(|i| Some(end.value(i) >= min && start.value(i) <= max))
        .collect())
}
