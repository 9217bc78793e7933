//! The crate's error type.

use arrow_schema::{ArrowError, DataType};

/// Why a conversion failed. Every variant says where (which span, field or
/// column) and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A span of the OTLP input cannot be stored, e.g. an id of the wrong
    /// length or a timestamp beyond `i64::MAX`.
    #[error("span {span} of scope {scope} of resource {resource}: {field} {reason}")]
    InvalidSpan {
        /// Index of the `ResourceSpans` in the request.
        resource: usize,
        /// Index of the `ScopeSpans` in its `ResourceSpans`.
        scope: usize,
        /// Index of the span in its `ScopeSpans`.
        span: usize,
        /// The offending field, e.g. `trace_id` or `links[2].span_id`.
        field: String,
        /// What is wrong with it, e.g. `is 5 bytes, expected 16`.
        reason: String,
    },

    /// The partitioning function sent a span to a partition that does not exist.
    #[error(
        "span {span} of scope {scope} of resource {resource}: partition_of returned {partition}, but there are only {partitions} partitions"
    )]
    PartitionOutOfRange {
        /// Index of the `ResourceSpans` in the request.
        resource: usize,
        /// Index of the `ScopeSpans` in its `ResourceSpans`.
        scope: usize,
        /// Index of the span in its `ScopeSpans`.
        span: usize,
        /// What the function returned.
        partition: usize,
        /// How many partitions were asked for.
        partitions: usize,
    },

    /// The input holds more data than one Arrow array with 32-bit offsets can.
    #[error(
        "column `{column}` would exceed 2 GiB of data or 2^31 entries in one batch; convert the spans in smaller requests"
    )]
    TooLarge {
        /// The column (or nested field, dotted) that overflowed.
        column: String,
    },

    /// A column needed to rebuild OTLP is not in the batch.
    #[error("column `{column}` is missing")]
    MissingColumn {
        /// The column's name (nested fields are dotted, e.g. `links.item.flags`).
        column: String,
    },

    /// A column has a type that cannot be read as the schema's type.
    #[error("column `{column}` has type {actual}, expected {expected}")]
    ColumnType {
        /// The column's name (nested fields are dotted).
        column: String,
        /// Its type in the batch.
        actual: DataType,
        /// Its type in the schema.
        expected: DataType,
    },

    /// A value in the batch cannot be turned back into OTLP.
    #[error("row {row}: column `{column}`: {reason}")]
    InvalidValue {
        /// The row of the batch.
        row: usize,
        /// The column's name (nested fields are dotted).
        column: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Arrow refused to build or cast an array.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
}
