//! Which rows of a span batch belong to some traces or overlap a time
//! range: the selections the writers apply to their buffers and the querier
//! to the rows it reads back.

use std::collections::HashSet;

use arrow_array::{Array, BooleanArray, FixedSizeBinaryArray, RecordBatch, TimestampNanosecondArray};
use arrow_schema::ArrowError;

use crate::columns;

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> Result<&'a T, ArrowError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} missing or of the wrong type")))
}

/// Rows of the traces `ids` (a byte comparison per row for a single id).
pub fn trace_mask(batch: &RecordBatch, ids: &HashSet<[u8; 16]>) -> Result<BooleanArray, ArrowError> {
    let trace: &FixedSizeBinaryArray = column(batch, columns::TRACE_ID)?;
    if ids.len() == 1
        && let Some(only) = ids.iter().next()
    {
        return Ok((0..trace.len())
            .map(|i| Some(trace.value(i) == only.as_slice()))
            .collect());
    }
    Ok((0..trace.len())
        .map(|i| Some(<[u8; 16]>::try_from(trace.value(i)).is_ok_and(|id| ids.contains(&id))))
        .collect())
}

/// Rows of spans overlapping `[min, max]` nanoseconds.
pub fn time_mask(batch: &RecordBatch, min: i64, max: i64) -> Result<BooleanArray, ArrowError> {
    let start: &TimestampNanosecondArray = column(batch, columns::START_TIME_UNIX_NANO)?;
    let end: &TimestampNanosecondArray = column(batch, columns::END_TIME_UNIX_NANO)?;
    Ok((0..start.len())
        .map(|i| Some(end.value(i) >= min && start.value(i) <= max))
        .collect())
}

/// The rows of `batch` of the traces `ids` (any when empty) that overlap
/// `range` (any when `None`).
pub fn select(
    batch: &RecordBatch,
    ids: &HashSet<[u8; 16]>,
    range: Option<(i64, i64)>,
) -> Result<RecordBatch, ArrowError> {
    let mut keep = if ids.is_empty() {
        None
    } else {
        Some(trace_mask(batch, ids)?)
    };
    if let Some((min, max)) = range {
        let times = time_mask(batch, min, max)?;
        keep = Some(match keep {
            Some(k) => arrow::compute::and(&k, &times)?,
            None => times,
        });
    }
    match keep {
        Some(mask) => arrow::compute::filter_record_batch(batch, &mask),
        None => Ok(batch.clone()),
    }
}
