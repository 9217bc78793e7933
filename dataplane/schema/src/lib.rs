//! Arrow schemas of SignalDB's signals and lossless conversion between OTLP
//! and Arrow.
//!
//! - [`columns`]: the names of every column and nested field, and the codes
//!   stored in them.
//! - [`traces`]: the span schema (one row per span) and OTLP <-> Arrow
//!   conversion of spans.
//!
//! Attribute lists of every signal share one Arrow type, ATTRIBUTES:
//! `List<Struct{key, type, str, int, double, bool, bytes}>`; see
//! [`columns::attribute`].

mod attributes;
pub mod columns;
mod error;
mod read;
pub mod traces;

pub use error::Error;

/// The bytes of data `batch` holds, each counted once. Arrays decoded from
/// one Arrow IPC message share its allocation, so summing every array's
/// allocation (`get_array_memory_size`) counts the message once per array.
pub fn data_bytes(batch: &arrow_array::RecordBatch) -> usize {
    use arrow_array::Array;
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}
