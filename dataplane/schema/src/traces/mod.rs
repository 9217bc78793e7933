//! The span schema and OTLP <-> Arrow conversion of spans.
//!
//! One row per span. Resource and scope are flattened into columns of every
//! span's row; events and links are nested lists. See [`columns`] for every
//! column's name and type.
//!
//! The conversion is lossless for everything the schema stores, i.e. every
//! field of OTLP's `ResourceSpans`, `ScopeSpans`, `Span`, `Event`, `Link`,
//! `Status`, `Resource` and `InstrumentationScope` with these exceptions:
//!
//! - Grouping: reading back groups consecutive rows with equal resource and
//!   scope into one `ResourceSpans` / `ScopeSpans`. Resources and scopes
//!   without spans are not stored.
//! - Absent messages: a missing `resource`, `scope` or `status` reads back as
//!   a present one with default (empty) fields.
//! - Development-status fields outside the schema are dropped:
//!   `Resource.entity_refs` and `KeyValue.key_strindex` of top-level
//!   attributes (nested arrays and kvlists keep it, being stored encoded).

use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use crate::columns::{self, event, link};
use crate::{Error, attributes};

mod decode;
mod encode;
pub mod parquet;
pub mod select;
#[cfg(test)]
mod tests;

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

static EVENT_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    Fields::from(vec![
        Field::new(event::TIME_UNIX_NANO, timestamp(), false),
        Field::new(event::NAME, DataType::Utf8, false),
        Field::new(event::ATTRIBUTES, attributes::data_type(), false),
        Field::new(event::DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
    ])
});

static EVENT_ITEM: LazyLock<FieldRef> = LazyLock::new(|| {
    Arc::new(Field::new(
        columns::LIST_ITEM,
        DataType::Struct(EVENT_FIELDS.clone()),
        false,
    ))
});

static LINK_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    Fields::from(vec![
        Field::new(link::TRACE_ID, DataType::FixedSizeBinary(16), false),
        Field::new(link::SPAN_ID, DataType::FixedSizeBinary(8), false),
        Field::new(link::TRACE_STATE, DataType::Utf8, false),
        Field::new(link::ATTRIBUTES, attributes::data_type(), false),
        Field::new(link::DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
        Field::new(link::FLAGS, DataType::UInt32, false),
    ])
});

static LINK_ITEM: LazyLock<FieldRef> = LazyLock::new(|| {
    Arc::new(Field::new(
        columns::LIST_ITEM,
        DataType::Struct(LINK_FIELDS.clone()),
        false,
    ))
});

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use columns::*;
    let attrs = attributes::data_type;
    let fields = vec![
        Field::new(TRACE_ID, DataType::FixedSizeBinary(16), false),
        Field::new(SPAN_ID, DataType::FixedSizeBinary(8), false),
        Field::new(PARENT_SPAN_ID, DataType::FixedSizeBinary(8), true),
        Field::new(TRACE_STATE, DataType::Utf8, false),
        Field::new(NAME, DataType::Utf8, false),
        Field::new(KIND, DataType::Int32, false),
        Field::new(START_TIME_UNIX_NANO, timestamp(), false),
        Field::new(END_TIME_UNIX_NANO, timestamp(), false),
        Field::new(DURATION_NANO, DataType::Int64, false),
        Field::new(FLAGS, DataType::UInt32, false),
        Field::new(STATUS_CODE, DataType::Int32, false),
        Field::new(STATUS_MESSAGE, DataType::Utf8, false),
        Field::new(ATTRIBUTES, attrs(), false),
        Field::new(DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
        Field::new(DROPPED_EVENTS_COUNT, DataType::UInt32, false),
        Field::new(DROPPED_LINKS_COUNT, DataType::UInt32, false),
        Field::new(EVENTS, DataType::List(Arc::clone(&EVENT_ITEM)), false),
        Field::new(LINKS, DataType::List(Arc::clone(&LINK_ITEM)), false),
        Field::new(SERVICE_NAME, DataType::Utf8, true),
        Field::new(RESOURCE_ATTRIBUTES, attrs(), false),
        Field::new(RESOURCE_DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
        Field::new(RESOURCE_SCHEMA_URL, DataType::Utf8, false),
        Field::new(SCOPE_NAME, DataType::Utf8, false),
        Field::new(SCOPE_VERSION, DataType::Utf8, false),
        Field::new(SCOPE_ATTRIBUTES, attrs(), false),
        Field::new(SCOPE_DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
        Field::new(SCOPE_SCHEMA_URL, DataType::Utf8, false),
    ]
    .into_iter()
    .chain(DEDICATED.iter().map(|d| {
        let data_type = match d.kind {
            DedicatedType::String => DataType::Utf8,
            DedicatedType::Number => DataType::Float64,
        };
        Field::new(d.column, data_type, true)
    }))
    .collect::<Vec<_>>();
    let metadata = [
        (SCHEMA_METADATA_KEY.to_owned(), TRACES_SCHEMA.to_owned()),
        (SCHEMA_VERSION_METADATA_KEY.to_owned(), TRACES_SCHEMA_VERSION.to_owned()),
    ];
    Arc::new(Schema::new_with_metadata(fields, metadata.into_iter().collect()))
});

/// The Arrow schema of spans (one row per span), with metadata
/// `{"signaldb.schema": "traces", "signaldb.schema_version": "2"}` (version 2
/// added the dedicated attribute columns, [`columns::DEDICATED`]).
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// Converts every span of `resource_spans` into one batch, rows in input
/// order.
pub fn otlp_to_arrow(resource_spans: &[ResourceSpans]) -> Result<RecordBatch, Error> {
    let mut batches = encode::convert(resource_spans, 1, |_| 0)?;
    Ok(batches.pop().unwrap_or_else(|| RecordBatch::new_empty(schema())))
}

/// Converts every span of `resource_spans` in one pass into `partitions`
/// batches: batch `i` holds, in input order, the spans whose trace id
/// `partition_of` maps to `i`. Partitions without spans get an empty batch.
/// A span mapped to a partition `>= partitions` is an error.
pub fn otlp_to_arrow_partitioned(
    resource_spans: &[ResourceSpans],
    partitions: usize,
    partition_of: impl Fn(&[u8]) -> usize,
) -> Result<Vec<RecordBatch>, Error> {
    encode::convert(resource_spans, partitions, partition_of)
}

/// Converts rows back to OTLP, in row order, grouping consecutive rows with
/// equal resource (attributes, dropped count, schema URL) and scope (name,
/// version, attributes, dropped count, schema URL) into one `ResourceSpans` /
/// `ScopeSpans`.
///
/// Accepts batches of [`schema`] as written or read back from Parquet or IPC,
/// including other representations of its types (view, large or dictionary
/// strings and binaries, large lists, other list item names, nullable
/// fields). Columns are found by name; `duration_nano` and `service_name`
/// (derived copies) are not needed, other columns are ignored.
pub fn arrow_to_otlp(batch: &RecordBatch) -> Result<Vec<ResourceSpans>, Error> {
    decode::convert(batch)
}

/// The number of spans in `resource_spans` (rows [`otlp_to_arrow`] makes).
pub fn span_count(resource_spans: &[ResourceSpans]) -> usize {
    resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}
