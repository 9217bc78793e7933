//! OTLP -> Arrow.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeBinaryArray, FixedSizeBinaryBuilder, Int32Array, Int64Array, ListArray, PrimitiveArray,
    RecordBatch, StringBuilder, StructArray, UInt32Array,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::TimestampNanosecondType;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::{EVENT_FIELDS, EVENT_ITEM, LINK_FIELDS, LINK_ITEM, schema, span_count};
use crate::Error;
use crate::attributes::{self, Prepared};
use crate::columns::{self, event, link};

const TRACE_ID_LEN: usize = 16;
const SPAN_ID_LEN: usize = 8;
const MAX_OFFSET: usize = i32::MAX as usize;

/// Where a span is in the request, for errors.
#[derive(Debug, Clone, Copy)]
struct Loc {
    resource: usize,
    scope: usize,
    span: usize,
}

impl Loc {
    fn error(self, field: impl Into<String>, reason: String) -> Error {
        Error::InvalidSpan {
            resource: self.resource,
            scope: self.scope,
            span: self.span,
            field: field.into(),
            reason,
        }
    }

    fn check_len(self, field: impl FnOnce() -> String, id: &[u8], want: usize) -> Result<(), Error> {
        if id.len() == want {
            Ok(())
        } else {
            Err(self.error(field(), format!("is {} bytes, expected {want}", id.len())))
        }
    }

    fn time(self, field: impl FnOnce() -> String, nanos: u64) -> Result<i64, Error> {
        i64::try_from(nanos).map_err(|_| self.error(field(), format!("is {nanos}, which exceeds i64::MAX")))
    }
}

/// Resource columns, shared by every span of a `ResourceSpans`.
#[derive(Debug)]
struct ResourceCtx<'a> {
    attributes: Prepared<'a>,
    dropped: u32,
    schema_url: &'a str,
    service_name: Option<&'a str>,
}

impl<'a> ResourceCtx<'a> {
    fn new(rs: &'a ResourceSpans) -> Self {
        let (attrs, dropped) = rs
            .resource
            .as_ref()
            .map_or((&[][..], 0), |r| (&r.attributes[..], r.dropped_attributes_count));
        Self {
            attributes: Prepared::new(attrs),
            dropped,
            schema_url: &rs.schema_url,
            service_name: service_name(attrs),
        }
    }
}

/// The first `service.name` resource attribute, if it is a string.
fn service_name(attrs: &[KeyValue]) -> Option<&str> {
    let kv = attrs.iter().find(|kv| kv.key == SERVICE_NAME_KEY)?;
    match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// The resource attribute copied to the `service_name` column.
const SERVICE_NAME_KEY: &str = "service.name";

/// Scope columns, shared by every span of a `ScopeSpans`.
#[derive(Debug)]
struct ScopeCtx<'a> {
    name: &'a str,
    version: &'a str,
    attributes: Prepared<'a>,
    dropped: u32,
    schema_url: &'a str,
}

impl<'a> ScopeCtx<'a> {
    fn new(ss: &'a ScopeSpans) -> Self {
        match ss.scope.as_ref() {
            Some(s) => Self {
                name: &s.name,
                version: &s.version,
                attributes: Prepared::new(&s.attributes),
                dropped: s.dropped_attributes_count,
                schema_url: &ss.schema_url,
            },
            None => Self {
                name: "",
                version: "",
                attributes: Prepared::default(),
                dropped: 0,
                schema_url: &ss.schema_url,
            },
        }
    }
}

/// Appends `s` unless the column would outgrow 32-bit offsets.
fn push_str(b: &mut StringBuilder, s: &str, column: &str) -> Result<(), Error> {
    if b.values_slice().len() + s.len() > MAX_OFFSET {
        return Err(Error::TooLarge {
            column: column.to_owned(),
        });
    }
    b.append_value(s);
    Ok(())
}

fn list_offset(len: usize, column: &str) -> Result<i32, Error> {
    i32::try_from(len).map_err(|_| Error::TooLarge {
        column: column.to_owned(),
    })
}

fn fixed_size_binary(width: i32, values: Vec<u8>) -> Result<ArrayRef, Error> {
    Ok(Arc::new(FixedSizeBinaryArray::try_new(
        width,
        Buffer::from_vec(values),
        None,
    )?))
}

fn timestamps(values: Vec<i64>) -> ArrayRef {
    Arc::new(PrimitiveArray::<TimestampNanosecondType>::new(ScalarBuffer::from(values), None).with_timezone("UTC"))
}

fn u32s(values: Vec<u32>) -> ArrayRef {
    Arc::new(UInt32Array::new(ScalarBuffer::from(values), None))
}

/// How much data the spans of one partition hold, to size its builders up
/// front (growing large buffers costs copies and page faults).
#[derive(Debug, Default, Clone, Copy)]
struct Sizes {
    spans: usize,
    trace_state: usize,
    name: usize,
    status_message: usize,
    service_name: usize,
    resource_schema_url: usize,
    scope_name: usize,
    scope_version: usize,
    scope_schema_url: usize,
    attributes: attributes::Size,
    resource_attributes: attributes::Size,
    scope_attributes: attributes::Size,
    events: usize,
    event_name: usize,
    event_attributes: attributes::Size,
    links: usize,
    link_trace_state: usize,
    link_attributes: attributes::Size,
}

/// Sizes of what every span of a resource or scope repeats.
#[derive(Debug, Default, Clone, Copy)]
struct SharedSizes {
    resource_attributes: attributes::Size,
    service_name: usize,
    resource_schema_url: usize,
    scope_attributes: attributes::Size,
    scope_name: usize,
    scope_version: usize,
    scope_schema_url: usize,
}

impl Sizes {
    fn add(&mut self, span: &Span, shared: &SharedSizes) {
        self.spans += 1;
        self.trace_state += span.trace_state.len();
        self.name += span.name.len();
        self.status_message += span.status.as_ref().map_or(0, |s| s.message.len());
        self.attributes.add_list(&span.attributes);
        self.events += span.events.len();
        for e in &span.events {
            self.event_name += e.name.len();
            self.event_attributes.add_list(&e.attributes);
        }
        self.links += span.links.len();
        for l in &span.links {
            self.link_trace_state += l.trace_state.len();
            self.link_attributes.add_list(&l.attributes);
        }
        self.service_name += shared.service_name;
        self.resource_schema_url += shared.resource_schema_url;
        self.resource_attributes.add(&shared.resource_attributes);
        self.scope_name += shared.scope_name;
        self.scope_version += shared.scope_version;
        self.scope_schema_url += shared.scope_schema_url;
        self.scope_attributes.add(&shared.scope_attributes);
    }
}

#[derive(Debug)]
struct EventsBuilder {
    offsets: Vec<i32>,
    time: Vec<i64>,
    name: StringBuilder,
    attributes: attributes::Builder,
    dropped: Vec<u32>,
}

impl EventsBuilder {
    fn with_size(size: &Sizes) -> Self {
        let mut offsets = Vec::with_capacity(size.spans + 1);
        offsets.push(0);
        let n = size.events;
        Self {
            offsets,
            time: Vec::with_capacity(n),
            name: StringBuilder::with_capacity(n, size.event_name),
            attributes: attributes::Builder::with_size("events.item.attributes", &size.event_attributes),
            dropped: Vec::with_capacity(n),
        }
    }

    fn append(&mut self, events: &[Event], loc: Loc) -> Result<(), Error> {
        for (i, e) in events.iter().enumerate() {
            let field = || format!("events[{i}].{}", event::TIME_UNIX_NANO);
            self.time.push(loc.time(field, e.time_unix_nano)?);
            push_str(&mut self.name, &e.name, "events.item.name")?;
            self.attributes.append(&e.attributes)?;
            self.dropped.push(e.dropped_attributes_count);
        }
        self.offsets.push(list_offset(self.time.len(), columns::EVENTS)?);
        Ok(())
    }

    fn finish(mut self) -> Result<ArrayRef, Error> {
        let children: Vec<ArrayRef> = vec![
            timestamps(self.time),
            Arc::new(self.name.finish()),
            self.attributes.finish()?,
            u32s(self.dropped),
        ];
        let items = StructArray::try_new(EVENT_FIELDS.clone(), children, None)?;
        let list = ListArray::try_new(
            Arc::clone(&EVENT_ITEM),
            OffsetBuffer::new(ScalarBuffer::from(self.offsets)),
            Arc::new(items),
            None,
        )?;
        Ok(Arc::new(list))
    }
}

#[derive(Debug)]
struct LinksBuilder {
    offsets: Vec<i32>,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    trace_state: StringBuilder,
    attributes: attributes::Builder,
    dropped: Vec<u32>,
    flags: Vec<u32>,
}

impl LinksBuilder {
    fn with_size(size: &Sizes) -> Self {
        let mut offsets = Vec::with_capacity(size.spans + 1);
        offsets.push(0);
        let n = size.links;
        Self {
            offsets,
            trace_id: Vec::with_capacity(n * TRACE_ID_LEN),
            span_id: Vec::with_capacity(n * SPAN_ID_LEN),
            trace_state: StringBuilder::with_capacity(n, size.link_trace_state),
            attributes: attributes::Builder::with_size("links.item.attributes", &size.link_attributes),
            dropped: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
        }
    }

    fn append(&mut self, links: &[Link], loc: Loc) -> Result<(), Error> {
        for (i, l) in links.iter().enumerate() {
            loc.check_len(|| format!("links[{i}].{}", link::TRACE_ID), &l.trace_id, TRACE_ID_LEN)?;
            loc.check_len(|| format!("links[{i}].{}", link::SPAN_ID), &l.span_id, SPAN_ID_LEN)?;
            self.trace_id.extend_from_slice(&l.trace_id);
            self.span_id.extend_from_slice(&l.span_id);
            push_str(&mut self.trace_state, &l.trace_state, "links.item.trace_state")?;
            self.attributes.append(&l.attributes)?;
            self.dropped.push(l.dropped_attributes_count);
            self.flags.push(l.flags);
        }
        self.offsets.push(list_offset(self.dropped.len(), columns::LINKS)?);
        Ok(())
    }

    fn finish(mut self) -> Result<ArrayRef, Error> {
        let children: Vec<ArrayRef> = vec![
            fixed_size_binary(16, self.trace_id)?,
            fixed_size_binary(8, self.span_id)?,
            Arc::new(self.trace_state.finish()),
            self.attributes.finish()?,
            u32s(self.dropped),
            u32s(self.flags),
        ];
        let items = StructArray::try_new(LINK_FIELDS.clone(), children, None)?;
        let list = ListArray::try_new(
            Arc::clone(&LINK_ITEM),
            OffsetBuffer::new(ScalarBuffer::from(self.offsets)),
            Arc::new(items),
            None,
        )?;
        Ok(Arc::new(list))
    }
}

/// The columns of one output batch.
#[derive(Debug)]
struct SpansBuilder {
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: FixedSizeBinaryBuilder,
    trace_state: StringBuilder,
    name: StringBuilder,
    kind: Vec<i32>,
    start: Vec<i64>,
    end: Vec<i64>,
    duration: Vec<i64>,
    flags: Vec<u32>,
    status_code: Vec<i32>,
    status_message: StringBuilder,
    attributes: attributes::Builder,
    dropped_attributes: Vec<u32>,
    dropped_events: Vec<u32>,
    dropped_links: Vec<u32>,
    events: EventsBuilder,
    links: LinksBuilder,
    service_name: StringBuilder,
    resource_attributes: attributes::Builder,
    resource_dropped: Vec<u32>,
    resource_schema_url: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: attributes::Builder,
    scope_dropped: Vec<u32>,
    scope_schema_url: StringBuilder,
    dedicated: DedicatedBuilder,
    /// The resource and scope of the last row: a span of the same one repeats
    /// its attribute lists by copying.
    last: Option<(usize, usize)>,
}

impl SpansBuilder {
    fn with_size(size: &Sizes) -> Self {
        let n = size.spans;
        Self {
            trace_id: Vec::with_capacity(n * TRACE_ID_LEN),
            span_id: Vec::with_capacity(n * SPAN_ID_LEN),
            parent_span_id: FixedSizeBinaryBuilder::with_capacity(n, SPAN_ID_LEN as i32),
            trace_state: StringBuilder::with_capacity(n, size.trace_state),
            name: StringBuilder::with_capacity(n, size.name),
            kind: Vec::with_capacity(n),
            start: Vec::with_capacity(n),
            end: Vec::with_capacity(n),
            duration: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            status_code: Vec::with_capacity(n),
            status_message: StringBuilder::with_capacity(n, size.status_message),
            attributes: attributes::Builder::with_size(columns::ATTRIBUTES, &size.attributes),
            dropped_attributes: Vec::with_capacity(n),
            dropped_events: Vec::with_capacity(n),
            dropped_links: Vec::with_capacity(n),
            events: EventsBuilder::with_size(size),
            links: LinksBuilder::with_size(size),
            service_name: StringBuilder::with_capacity(n, size.service_name),
            resource_attributes: attributes::Builder::with_size(
                columns::RESOURCE_ATTRIBUTES,
                &size.resource_attributes,
            ),
            resource_dropped: Vec::with_capacity(n),
            resource_schema_url: StringBuilder::with_capacity(n, size.resource_schema_url),
            scope_name: StringBuilder::with_capacity(n, size.scope_name),
            scope_version: StringBuilder::with_capacity(n, size.scope_version),
            scope_attributes: attributes::Builder::with_size(columns::SCOPE_ATTRIBUTES, &size.scope_attributes),
            scope_dropped: Vec::with_capacity(n),
            scope_schema_url: StringBuilder::with_capacity(n, size.scope_schema_url),
            dedicated: DedicatedBuilder::with_capacity(n),
            last: None,
        }
    }

    /// Appends one span; its trace id has been checked.
    fn append(&mut self, resource: &ResourceCtx<'_>, scope: &ScopeCtx<'_>, span: &Span, loc: Loc) -> Result<(), Error> {
        use columns::*;
        loc.check_len(|| SPAN_ID.to_owned(), &span.span_id, SPAN_ID_LEN)?;
        let start = loc.time(|| START_TIME_UNIX_NANO.to_owned(), span.start_time_unix_nano)?;
        let end = loc.time(|| END_TIME_UNIX_NANO.to_owned(), span.end_time_unix_nano)?;
        if span.parent_span_id.is_empty() {
            self.parent_span_id.append_null();
        } else {
            loc.check_len(|| PARENT_SPAN_ID.to_owned(), &span.parent_span_id, SPAN_ID_LEN)?;
            self.parent_span_id.append_value(&span.parent_span_id)?;
        }
        self.trace_id.extend_from_slice(&span.trace_id);
        self.span_id.extend_from_slice(&span.span_id);
        push_str(&mut self.trace_state, &span.trace_state, TRACE_STATE)?;
        push_str(&mut self.name, &span.name, NAME)?;
        self.kind.push(span.kind);
        self.start.push(start);
        self.end.push(end);
        self.duration.push(end.saturating_sub(start));
        self.flags.push(span.flags);
        let (code, message) = span.status.as_ref().map_or((0, ""), |s| (s.code, s.message.as_str()));
        self.status_code.push(code);
        push_str(&mut self.status_message, message, STATUS_MESSAGE)?;
        self.attributes.append(&span.attributes)?;
        self.dedicated.append(&span.attributes)?;
        self.dropped_attributes.push(span.dropped_attributes_count);
        self.dropped_events.push(span.dropped_events_count);
        self.dropped_links.push(span.dropped_links_count);
        self.events.append(&span.events, loc)?;
        self.links.append(&span.links, loc)?;
        match resource.service_name {
            Some(s) => push_str(&mut self.service_name, s, SERVICE_NAME)?,
            None => self.service_name.append_null(),
        }
        let same_resource = self.last.is_some_and(|(r, _)| r == loc.resource);
        let same_scope = self.last == Some((loc.resource, loc.scope));
        self.last = Some((loc.resource, loc.scope));
        if same_resource {
            self.resource_attributes.repeat_last()?;
        } else {
            self.resource_attributes.append_prepared(&resource.attributes)?;
        }
        self.resource_dropped.push(resource.dropped);
        push_str(&mut self.resource_schema_url, resource.schema_url, RESOURCE_SCHEMA_URL)?;
        push_str(&mut self.scope_name, scope.name, SCOPE_NAME)?;
        push_str(&mut self.scope_version, scope.version, SCOPE_VERSION)?;
        if same_scope {
            self.scope_attributes.repeat_last()?;
        } else {
            self.scope_attributes.append_prepared(&scope.attributes)?;
        }
        self.scope_dropped.push(scope.dropped);
        push_str(&mut self.scope_schema_url, scope.schema_url, SCOPE_SCHEMA_URL)?;
        Ok(())
    }

    fn finish(mut self) -> Result<RecordBatch, Error> {
        let columns: Vec<ArrayRef> = vec![
            fixed_size_binary(16, self.trace_id)?,
            fixed_size_binary(8, self.span_id)?,
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.name.finish()),
            Arc::new(Int32Array::new(ScalarBuffer::from(self.kind), None)),
            timestamps(self.start),
            timestamps(self.end),
            Arc::new(Int64Array::new(ScalarBuffer::from(self.duration), None)),
            u32s(self.flags),
            Arc::new(Int32Array::new(ScalarBuffer::from(self.status_code), None)),
            Arc::new(self.status_message.finish()),
            self.attributes.finish()?,
            u32s(self.dropped_attributes),
            u32s(self.dropped_events),
            u32s(self.dropped_links),
            self.events.finish()?,
            self.links.finish()?,
            Arc::new(self.service_name.finish()),
            self.resource_attributes.finish()?,
            u32s(self.resource_dropped),
            Arc::new(self.resource_schema_url.finish()),
            Arc::new(self.scope_name.finish()),
            Arc::new(self.scope_version.finish()),
            self.scope_attributes.finish()?,
            u32s(self.scope_dropped),
            Arc::new(self.scope_schema_url.finish()),
        ]
        .into_iter()
        .chain(self.dedicated.finish())
        .collect();
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// The dedicated attribute columns ([`columns::DEDICATED`]), in schema order.
#[derive(Debug)]
struct DedicatedBuilder {
    columns: Vec<DedicatedColumn>,
}

#[derive(Debug)]
enum DedicatedColumn {
    String(StringBuilder),
    Number(Vec<Option<f64>>),
}

impl DedicatedBuilder {
    fn with_capacity(n: usize) -> Self {
        Self {
            columns: columns::DEDICATED
                .iter()
                .map(|d| match d.kind {
                    columns::DedicatedType::String => DedicatedColumn::String(StringBuilder::with_capacity(n, 0)),
                    columns::DedicatedType::Number => DedicatedColumn::Number(Vec::with_capacity(n)),
                })
                .collect(),
        }
    }

    /// One value (or null) per dedicated column: the first attribute of
    /// `attrs` with its key, when of the column's type.
    fn append(&mut self, attrs: &[KeyValue]) -> Result<(), Error> {
        let mut first: [Option<&Value>; columns::DEDICATED.len()] = [None; columns::DEDICATED.len()];
        let mut found = 0;
        for kv in attrs {
            if let Some(i) = columns::DEDICATED.iter().position(|d| d.attribute == kv.key)
                && let Some(slot) = first.get_mut(i)
                && slot.is_none()
            {
                *slot = Some(kv.value.as_ref().and_then(|v| v.value.as_ref()).unwrap_or(&NO_VALUE));
                found += 1;
                if found == first.len() {
                    break;
                }
            }
        }
        for ((column, value), d) in self.columns.iter_mut().zip(first).zip(columns::DEDICATED) {
            match (column, value) {
                (DedicatedColumn::String(b), Some(Value::StringValue(s))) => push_str(b, s, d.column)?,
                (DedicatedColumn::String(b), _) => b.append_null(),
                (DedicatedColumn::Number(v), Some(Value::IntValue(i))) => v.push(Some(*i as f64)),
                (DedicatedColumn::Number(v), Some(Value::DoubleValue(x))) if !x.is_nan() => v.push(Some(*x)),
                (DedicatedColumn::Number(v), _) => v.push(None),
            }
        }
        Ok(())
    }

    fn finish(self) -> Vec<ArrayRef> {
        self.columns
            .into_iter()
            .map(|c| -> ArrayRef {
                match c {
                    DedicatedColumn::String(mut b) => Arc::new(b.finish()),
                    DedicatedColumn::Number(v) => Arc::new(arrow::array::Float64Array::from(v)),
                }
            })
            .collect()
    }
}

/// Stands for an attribute without a value.
const NO_VALUE: Value = Value::BoolValue(false);

/// Converts the spans into `partitions` batches, span by span.
///
/// A first pass checks trace ids, asks `partition_of` once per span and
/// sizes every partition; the second fills the builders.
pub(super) fn convert(
    resource_spans: &[ResourceSpans],
    partitions: usize,
    partition_of: impl Fn(&[u8]) -> usize,
) -> Result<Vec<RecordBatch>, Error> {
    // The spans of each partition, in input order.
    let mut members: Vec<Vec<Loc>> = (0..partitions).map(|_| Vec::new()).collect();
    if let [only] = members.as_mut_slice() {
        only.reserve_exact(span_count(resource_spans));
    }
    let mut sizes = vec![Sizes::default(); partitions];
    for (r, rs) in resource_spans.iter().enumerate() {
        let resource = rs.resource.as_ref();
        let mut shared = SharedSizes {
            resource_attributes: resource
                .map_or_else(attributes::Size::default, |r| attributes::Size::of(&r.attributes)),
            service_name: resource.map_or(0, |r| service_name(&r.attributes).map_or(0, str::len)),
            resource_schema_url: rs.schema_url.len(),
            ..SharedSizes::default()
        };
        for (s, ss) in rs.scope_spans.iter().enumerate() {
            let scope = ss.scope.as_ref();
            shared.scope_attributes =
                scope.map_or_else(attributes::Size::default, |s| attributes::Size::of(&s.attributes));
            shared.scope_name = scope.map_or(0, |s| s.name.len());
            shared.scope_version = scope.map_or(0, |s| s.version.len());
            shared.scope_schema_url = ss.schema_url.len();
            for (i, span) in ss.spans.iter().enumerate() {
                let loc = Loc {
                    resource: r,
                    scope: s,
                    span: i,
                };
                loc.check_len(|| columns::TRACE_ID.to_owned(), &span.trace_id, TRACE_ID_LEN)?;
                let p = partition_of(&span.trace_id);
                let size = sizes.get_mut(p).ok_or(Error::PartitionOutOfRange {
                    resource: r,
                    scope: s,
                    span: i,
                    partition: p,
                    partitions,
                })?;
                size.add(span, &shared);
                if let Some(m) = members.get_mut(p) {
                    m.push(loc);
                }
            }
        }
    }

    // Fill one partition after the other: one set of builders written at a
    // time is kinder to caches than spans interleaved across partitions.
    let resources: Vec<ResourceCtx<'_>> = resource_spans.iter().map(ResourceCtx::new).collect();
    let scopes: Vec<Vec<ScopeCtx<'_>>> = resource_spans
        .iter()
        .map(|rs| rs.scope_spans.iter().map(ScopeCtx::new).collect())
        .collect();
    let mut batches = Vec::with_capacity(partitions);
    for (locs, size) in members.iter().zip(&sizes) {
        if locs.is_empty() {
            batches.push(RecordBatch::new_empty(schema()));
            continue;
        }
        let mut builder = SpansBuilder::with_size(size);
        for &loc in locs {
            let found = resources
                .get(loc.resource)
                .zip(scopes.get(loc.resource).and_then(|s| s.get(loc.scope)));
            let span = resource_spans
                .get(loc.resource)
                .and_then(|rs| rs.scope_spans.get(loc.scope))
                .and_then(|ss| ss.spans.get(loc.span));
            // Always found: `loc` was taken from these very vectors.
            if let (Some((resource, scope)), Some(span)) = (found, span) {
                builder.append(resource, scope, span, loc)?;
            }
        }
        batches.push(builder.finish()?);
    }
    Ok(batches)
}
