//! Arrow -> OTLP.

use std::ops::Range;

use arrow::array::{
    Array, ArrayRef, FixedSizeBinaryArray, Int32Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampNanosecondArray, UInt32Array,
};
use arrow_schema::DataType;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::{EVENT_ITEM, LINK_ITEM, schema, timestamp};
use crate::columns::{self, event, link};
use crate::read::{child, downcast};
use crate::{Error, attributes, read};

fn list_range(offsets: &[i32], index: usize) -> Range<usize> {
    let start = offsets.get(index).copied().unwrap_or(0);
    let end = offsets.get(index + 1).copied().unwrap_or(start);
    usize::try_from(start).unwrap_or(0)..usize::try_from(end).unwrap_or(0)
}

fn invalid(row: usize, column: &str, reason: String) -> Error {
    Error::InvalidValue {
        row,
        column: column.to_owned(),
        reason,
    }
}

fn time(array: &TimestampNanosecondArray, i: usize, row: usize, column: &str) -> Result<u64, Error> {
    let t = array.value(i);
    u64::try_from(t).map_err(|_| invalid(row, column, format!("time {t} is negative")))
}

#[derive(Debug)]
struct EventsReader<'a> {
    offsets: &'a [i32],
    time: &'a TimestampNanosecondArray,
    name: &'a StringArray,
    attributes: attributes::Reader<'a>,
    dropped: &'a UInt32Array,
}

impl<'a> EventsReader<'a> {
    fn new(array: &'a ArrayRef) -> Result<Self, Error> {
        let column = columns::EVENTS;
        let ty = DataType::List(std::sync::Arc::clone(&EVENT_ITEM));
        let list: &ListArray = downcast(array, column, &ty)?;
        let items: &StructArray = downcast(list.values(), column, &ty)?;
        let attrs_path = format!("{column}.{}.{}", columns::LIST_ITEM, event::ATTRIBUTES);
        let attrs = items
            .column_by_name(event::ATTRIBUTES)
            .ok_or_else(|| Error::MissingColumn {
                column: attrs_path.clone(),
            })?;
        Ok(Self {
            offsets: list.value_offsets(),
            time: child(items, column, event::TIME_UNIX_NANO, &timestamp())?,
            name: child(items, column, event::NAME, &DataType::Utf8)?,
            attributes: attributes::Reader::new(attrs_path, attrs)?,
            dropped: child(items, column, event::DROPPED_ATTRIBUTES_COUNT, &DataType::UInt32)?,
        })
    }

    fn read(&self, row: usize) -> Result<Vec<Event>, Error> {
        let range = list_range(self.offsets, row);
        let mut out = Vec::with_capacity(range.len());
        for j in range {
            out.push(Event {
                time_unix_nano: time(self.time, j, row, "events.item.time_unix_nano")?,
                name: self.name.value(j).to_owned(),
                attributes: self.attributes.read(j, row)?,
                dropped_attributes_count: self.dropped.value(j),
            });
        }
        Ok(out)
    }
}

#[derive(Debug)]
struct LinksReader<'a> {
    offsets: &'a [i32],
    trace_id: &'a FixedSizeBinaryArray,
    span_id: &'a FixedSizeBinaryArray,
    trace_state: &'a StringArray,
    attributes: attributes::Reader<'a>,
    dropped: &'a UInt32Array,
    flags: &'a UInt32Array,
}

impl<'a> LinksReader<'a> {
    fn new(array: &'a ArrayRef) -> Result<Self, Error> {
        let column = columns::LINKS;
        let ty = DataType::List(std::sync::Arc::clone(&LINK_ITEM));
        let list: &ListArray = downcast(array, column, &ty)?;
        let items: &StructArray = downcast(list.values(), column, &ty)?;
        let attrs_path = format!("{column}.{}.{}", columns::LIST_ITEM, link::ATTRIBUTES);
        let attrs = items
            .column_by_name(link::ATTRIBUTES)
            .ok_or_else(|| Error::MissingColumn {
                column: attrs_path.clone(),
            })?;
        Ok(Self {
            offsets: list.value_offsets(),
            trace_id: child(items, column, link::TRACE_ID, &DataType::FixedSizeBinary(16))?,
            span_id: child(items, column, link::SPAN_ID, &DataType::FixedSizeBinary(8))?,
            trace_state: child(items, column, link::TRACE_STATE, &DataType::Utf8)?,
            attributes: attributes::Reader::new(attrs_path, attrs)?,
            dropped: child(items, column, link::DROPPED_ATTRIBUTES_COUNT, &DataType::UInt32)?,
            flags: child(items, column, link::FLAGS, &DataType::UInt32)?,
        })
    }

    fn read(&self, row: usize) -> Result<Vec<Link>, Error> {
        let range = list_range(self.offsets, row);
        let mut out = Vec::with_capacity(range.len());
        for j in range {
            out.push(Link {
                trace_id: self.trace_id.value(j).to_vec(),
                span_id: self.span_id.value(j).to_vec(),
                trace_state: self.trace_state.value(j).to_owned(),
                attributes: self.attributes.read(j, row)?,
                dropped_attributes_count: self.dropped.value(j),
                flags: self.flags.value(j),
            });
        }
        Ok(out)
    }
}

pub(super) fn convert(batch: &RecordBatch) -> Result<Vec<ResourceSpans>, Error> {
    use columns::*;
    let schema = schema();
    // The batch's column `name`, normalized to the schema's type.
    let get = |name: &str| read::column(batch, schema.field_with_name(name)?);
    let fsb16 = DataType::FixedSizeBinary(16);
    let fsb8 = DataType::FixedSizeBinary(8);
    let (utf8, i32t, u32t, ts) = (DataType::Utf8, DataType::Int32, DataType::UInt32, timestamp());

    // Owned normalized arrays; the typed views below borrow them.
    let a_trace_id = get(TRACE_ID)?;
    let a_span_id = get(SPAN_ID)?;
    let a_parent = get(PARENT_SPAN_ID)?;
    let a_trace_state = get(TRACE_STATE)?;
    let a_name = get(NAME)?;
    let a_kind = get(KIND)?;
    let a_start = get(START_TIME_UNIX_NANO)?;
    let a_end = get(END_TIME_UNIX_NANO)?;
    let a_flags = get(FLAGS)?;
    let a_status_code = get(STATUS_CODE)?;
    let a_status_message = get(STATUS_MESSAGE)?;
    let a_attributes = get(ATTRIBUTES)?;
    let a_dropped_attributes = get(DROPPED_ATTRIBUTES_COUNT)?;
    let a_dropped_events = get(DROPPED_EVENTS_COUNT)?;
    let a_dropped_links = get(DROPPED_LINKS_COUNT)?;
    let a_events = get(EVENTS)?;
    let a_links = get(LINKS)?;
    let a_resource_attributes = get(RESOURCE_ATTRIBUTES)?;
    let a_resource_dropped = get(RESOURCE_DROPPED_ATTRIBUTES_COUNT)?;
    let a_resource_schema_url = get(RESOURCE_SCHEMA_URL)?;
    let a_scope_name = get(SCOPE_NAME)?;
    let a_scope_version = get(SCOPE_VERSION)?;
    let a_scope_attributes = get(SCOPE_ATTRIBUTES)?;
    let a_scope_dropped = get(SCOPE_DROPPED_ATTRIBUTES_COUNT)?;
    let a_scope_schema_url = get(SCOPE_SCHEMA_URL)?;

    let trace_id: &FixedSizeBinaryArray = downcast(&a_trace_id, TRACE_ID, &fsb16)?;
    let span_id: &FixedSizeBinaryArray = downcast(&a_span_id, SPAN_ID, &fsb8)?;
    let parent: &FixedSizeBinaryArray = downcast(&a_parent, PARENT_SPAN_ID, &fsb8)?;
    let trace_state: &StringArray = downcast(&a_trace_state, TRACE_STATE, &utf8)?;
    let name: &StringArray = downcast(&a_name, NAME, &utf8)?;
    let kind: &Int32Array = downcast(&a_kind, KIND, &i32t)?;
    let start: &TimestampNanosecondArray = downcast(&a_start, START_TIME_UNIX_NANO, &ts)?;
    let end: &TimestampNanosecondArray = downcast(&a_end, END_TIME_UNIX_NANO, &ts)?;
    let flags: &UInt32Array = downcast(&a_flags, FLAGS, &u32t)?;
    let status_code: &Int32Array = downcast(&a_status_code, STATUS_CODE, &i32t)?;
    let status_message: &StringArray = downcast(&a_status_message, STATUS_MESSAGE, &utf8)?;
    let attributes = attributes::Reader::new(ATTRIBUTES.to_owned(), &a_attributes)?;
    let dropped_attributes: &UInt32Array = downcast(&a_dropped_attributes, DROPPED_ATTRIBUTES_COUNT, &u32t)?;
    let dropped_events: &UInt32Array = downcast(&a_dropped_events, DROPPED_EVENTS_COUNT, &u32t)?;
    let dropped_links: &UInt32Array = downcast(&a_dropped_links, DROPPED_LINKS_COUNT, &u32t)?;
    let events = EventsReader::new(&a_events)?;
    let links = LinksReader::new(&a_links)?;
    let resource_attributes = attributes::Reader::new(RESOURCE_ATTRIBUTES.to_owned(), &a_resource_attributes)?;
    let resource_dropped: &UInt32Array = downcast(&a_resource_dropped, RESOURCE_DROPPED_ATTRIBUTES_COUNT, &u32t)?;
    let resource_schema_url: &StringArray = downcast(&a_resource_schema_url, RESOURCE_SCHEMA_URL, &utf8)?;
    let scope_name: &StringArray = downcast(&a_scope_name, SCOPE_NAME, &utf8)?;
    let scope_version: &StringArray = downcast(&a_scope_version, SCOPE_VERSION, &utf8)?;
    let scope_attributes = attributes::Reader::new(SCOPE_ATTRIBUTES.to_owned(), &a_scope_attributes)?;
    let scope_dropped: &UInt32Array = downcast(&a_scope_dropped, SCOPE_DROPPED_ATTRIBUTES_COUNT, &u32t)?;
    let scope_schema_url: &StringArray = downcast(&a_scope_schema_url, SCOPE_SCHEMA_URL, &utf8)?;

    let same_resource = |a: usize, b: usize| {
        resource_dropped.value(a) == resource_dropped.value(b)
            && resource_schema_url.value(a) == resource_schema_url.value(b)
            && resource_attributes.equal(a, b)
    };
    let same_scope = |a: usize, b: usize| {
        scope_name.value(a) == scope_name.value(b)
            && scope_version.value(a) == scope_version.value(b)
            && scope_dropped.value(a) == scope_dropped.value(b)
            && scope_schema_url.value(a) == scope_schema_url.value(b)
            && scope_attributes.equal(a, b)
    };
    let id = |array: &FixedSizeBinaryArray, row: usize, column: &str| {
        if array.is_valid(row) {
            Ok(array.value(row).to_vec())
        } else {
            Err(invalid(row, column, "is null".to_owned()))
        }
    };

    let mut out: Vec<ResourceSpans> = Vec::new();
    for row in 0..batch.num_rows() {
        let new_resource = row == 0 || !same_resource(row - 1, row);
        if new_resource {
            out.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: resource_attributes.read(row, row)?,
                    dropped_attributes_count: resource_dropped.value(row),
                    entity_refs: Vec::new(),
                }),
                scope_spans: Vec::new(),
                schema_url: resource_schema_url.value(row).to_owned(),
            });
        }
        let Some(rs) = out.last_mut() else { continue };
        if new_resource || !same_scope(row - 1, row) {
            rs.scope_spans.push(ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope_name.value(row).to_owned(),
                    version: scope_version.value(row).to_owned(),
                    attributes: scope_attributes.read(row, row)?,
                    dropped_attributes_count: scope_dropped.value(row),
                }),
                spans: Vec::new(),
                schema_url: scope_schema_url.value(row).to_owned(),
            });
        }
        let Some(ss) = rs.scope_spans.last_mut() else {
            continue;
        };
        ss.spans.push(Span {
            trace_id: id(trace_id, row, TRACE_ID)?,
            span_id: id(span_id, row, SPAN_ID)?,
            trace_state: trace_state.value(row).to_owned(),
            parent_span_id: if parent.is_valid(row) {
                parent.value(row).to_vec()
            } else {
                Vec::new()
            },
            flags: flags.value(row),
            name: name.value(row).to_owned(),
            kind: kind.value(row),
            start_time_unix_nano: time(start, row, row, START_TIME_UNIX_NANO)?,
            end_time_unix_nano: time(end, row, row, END_TIME_UNIX_NANO)?,
            attributes: attributes.read(row, row)?,
            dropped_attributes_count: dropped_attributes.value(row),
            events: events.read(row)?,
            dropped_events_count: dropped_events.value(row),
            links: links.read(row)?,
            dropped_links_count: dropped_links.value(row),
            status: Some(Status {
                message: status_message.value(row).to_owned(),
                code: status_code.value(row),
            }),
        });
    }
    Ok(out)
}
