//! Reading span batches: columns (found by name, cast to the span schema's
//! types where another representation was read back), attributes, traces
//! and per-span field values.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, Float64Array, Int32Array, Int64Array, ListArray,
    RecordBatch, StringArray, StructArray, TimestampNanosecondArray, UInt8Array,
};
use arrow::compute::cast;
use arrow_schema::{DataType, TimeUnit};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;
use signaldb_schema::columns::{self, attribute, value_type};

use crate::ast::{AttributeRef, AttributeScope, FieldRef, Intrinsic};
use crate::error::EvalError;
use crate::value::Value;

/// `cell`'s value, computing it with `init` the first time.
fn cached<T>(cell: &OnceCell<T>, init: impl FnOnce() -> Result<T, EvalError>) -> Result<&T, EvalError> {
    if let Some(v) = cell.get() {
        return Ok(v);
    }
    let v = init()?;
    Ok(cell.get_or_init(|| v))
}

/// Whether `actual` holds `want`'s values in another representation that
/// [`cast`] converts losslessly.
fn castable(actual: &DataType, want: &DataType) -> bool {
    use DataType::*;
    match (actual, want) {
        (Dictionary(_, values), _) => values.as_ref() == want || castable(values, want),
        (LargeUtf8 | Utf8View, Utf8) => true,
        (LargeBinary | BinaryView, Binary) => true,
        (Binary | LargeBinary | BinaryView, FixedSizeBinary(_)) => true,
        (Int8 | Int16 | Int32 | UInt8 | UInt16, Int32) => true,
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32 | Int64, Int64) => true,
        (Float32, Float64) => true,
        (Int8 | Int16 | Int32 | Int64 | UInt16 | UInt32, UInt8) => true,
        (Timestamp(TimeUnit::Nanosecond, _), Timestamp(TimeUnit::Nanosecond, _)) => true,
        _ => false,
    }
}

/// `array` (named `column`, for errors) as `want`'s type.
fn as_type(array: &ArrayRef, column: &str, want: &DataType) -> Result<ArrayRef, EvalError> {
    let actual = array.data_type();
    if actual == want {
        return Ok(Arc::clone(array));
    }
    if castable(actual, want) {
        return Ok(cast(array, want)?);
    }
    Err(EvalError::ColumnType {
        column: column.to_owned(),
        actual: actual.clone(),
        expected: want.to_string(),
    })
}

/// `array` as the concrete array type `T`, which its data type `want`
/// implies.
fn concrete<T: Array + Clone + 'static>(array: &ArrayRef, column: &str, want: &DataType) -> Result<T, EvalError> {
    let array = as_type(array, column, want)?;
    array
        .as_any()
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| EvalError::ColumnType {
            column: column.to_owned(),
            actual: array.data_type().clone(),
            expected: want.to_string(),
        })
}

/// One attribute list column (`attributes` or `resource_attributes`).
#[derive(Debug)]
pub(crate) struct AttrList {
    list: ListArray,
    key: StringArray,
    ty: UInt8Array,
    str: StringArray,
    int: Int64Array,
    double: Float64Array,
    boolean: BooleanArray,
    bytes: BinaryArray,
}

impl AttrList {
    fn new(array: &ArrayRef, column: &str) -> Result<Self, EvalError> {
        let list_err = || EvalError::ColumnType {
            column: column.to_owned(),
            actual: array.data_type().clone(),
            expected: "List<Struct{key, type, str, int, double, bool, bytes}>".to_owned(),
        };
        let array = match array.data_type() {
            DataType::List(_) => Arc::clone(array),
            DataType::LargeList(item) => cast(array, &DataType::List(Arc::clone(item)))?,
            _ => return Err(list_err()),
        };
        let list = array
            .as_any()
            .downcast_ref::<ListArray>()
            .cloned()
            .ok_or_else(list_err)?;
        let items = list
            .values()
            .as_any()
            .downcast_ref::<StructArray>()
            .cloned()
            .ok_or_else(list_err)?;
        let child = |name: &str| -> Result<(ArrayRef, String), EvalError> {
            let path = format!("{column}.{}.{name}", columns::LIST_ITEM);
            let child = items
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| EvalError::MissingColumn { column: path.clone() })?;
            Ok((child, path))
        };
        let typed = |name: &str, want: &DataType| -> Result<(ArrayRef, String), EvalError> {
            let (array, path) = child(name)?;
            Ok((as_type(&array, &path, want)?, path))
        };
        let (key, key_path) = typed(attribute::KEY, &DataType::Utf8)?;
        let (ty, ty_path) = typed(attribute::TYPE, &DataType::UInt8)?;
        let (str, str_path) = typed(attribute::STR, &DataType::Utf8)?;
        let (int, int_path) = typed(attribute::INT, &DataType::Int64)?;
        let (double, double_path) = typed(attribute::DOUBLE, &DataType::Float64)?;
        let (boolean, bool_path) = typed(attribute::BOOL, &DataType::Boolean)?;
        let (bytes, bytes_path) = typed(attribute::BYTES, &DataType::Binary)?;
        Ok(Self {
            key: concrete(&key, &key_path, &DataType::Utf8)?,
            ty: concrete(&ty, &ty_path, &DataType::UInt8)?,
            str: concrete(&str, &str_path, &DataType::Utf8)?,
            int: concrete(&int, &int_path, &DataType::Int64)?,
            double: concrete(&double, &double_path, &DataType::Float64)?,
            boolean: concrete(&boolean, &bool_path, &DataType::Boolean)?,
            bytes: concrete(&bytes, &bytes_path, &DataType::Binary)?,
            list,
        })
    }

    /// The item holding attribute `name` of row `row`, if any (the first,
    /// should a key repeat).
    pub(crate) fn find(&self, row: usize, name: &str) -> Option<usize> {
        if self.list.is_null(row) {
            return None;
        }
        let offsets = self.list.value_offsets();
        let start = usize::try_from(*offsets.get(row)?).ok()?;
        let end = usize::try_from(*offsets.get(row + 1)?).ok()?;
        (start..end).find(|&j| self.key.is_valid(j) && self.key.value(j) == name)
    }

    /// The value of item `j`.
    pub(crate) fn value(&self, j: usize) -> Value<'_> {
        if self.ty.is_null(j) {
            return Value::Unsupported;
        }
        match self.ty.value(j) {
            value_type::STRING if self.str.is_valid(j) => Value::Str(Cow::Borrowed(self.str.value(j))),
            value_type::INT if self.int.is_valid(j) => Value::Int(self.int.value(j)),
            value_type::DOUBLE if self.double.is_valid(j) => Value::Float(self.double.value(j)),
            value_type::BOOL if self.boolean.is_valid(j) => Value::Bool(self.boolean.value(j)),
            value_type::ARRAY if self.bytes.is_valid(j) => decode_array(self.bytes.value(j)),
            _ => Value::Unsupported,
        }
    }
}

/// An array attribute from its protobuf-encoded `AnyValue`.
fn decode_array(encoded: &[u8]) -> Value<'static> {
    let Ok(any) = AnyValue::decode(encoded) else {
        return Value::Unsupported;
    };
    let Some(any_value::Value::ArrayValue(array)) = any.value else {
        return Value::Unsupported;
    };
    Value::Array(
        array
            .values
            .into_iter()
            .map(|item| match item.value {
                Some(any_value::Value::StringValue(s)) => Value::Str(Cow::Owned(s)),
                Some(any_value::Value::IntValue(i)) => Value::Int(i),
                Some(any_value::Value::DoubleValue(x)) => Value::Float(x),
                Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
                _ => Value::Unsupported,
            })
            .collect(),
    )
}

/// The rows of one trace.
#[derive(Debug, Clone)]
pub(crate) struct TraceRows {
    pub(crate) trace_id: [u8; 16],
    pub(crate) rows: Range<usize>,
    /// The root span: parent id null or all zeros; the earliest such span
    /// should there be several.
    pub(crate) root: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct Traces {
    pub(crate) list: Vec<TraceRows>,
    /// Index in `list` of every row's trace.
    pub(crate) of_row: Vec<u32>,
}

/// Lowercase hex, as Tempo writes ids.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Lazily read columns of one span batch.
#[derive(Debug)]
pub(crate) struct Spans<'a> {
    batch: &'a RecordBatch,
    trace_ids: OnceCell<FixedSizeBinaryArray>,
    parents: OnceCell<FixedSizeBinaryArray>,
    starts: OnceCell<TimestampNanosecondArray>,
    ends: OnceCell<TimestampNanosecondArray>,
    names: OnceCell<StringArray>,
    status_messages: OnceCell<StringArray>,
    statuses: OnceCell<Int32Array>,
    kinds: OnceCell<Int32Array>,
    durations: OnceCell<Int64Array>,
    span_attrs: OnceCell<AttrList>,
    resource_attrs: OnceCell<AttrList>,
    traces: OnceCell<Traces>,
    trace_durations: OnceCell<Vec<i64>>,
    root_services: OnceCell<Vec<Option<usize>>>,
    span_ids: OnceCell<FixedSizeBinaryArray>,
    event_names: OnceCell<ListItems>,
    link_trace_ids: OnceCell<ListItems>,
    services: OnceCell<StringArray>,
    dedicated_strings: [OnceCell<StringArray>; columns::DEDICATED.len()],
    dedicated_numbers: [OnceCell<Float64Array>; columns::DEDICATED.len()],
}

/// One field of the struct items of a list column (event names, link
/// trace ids), with the list's offsets and validity.
#[derive(Debug)]
pub(crate) struct ListItems {
    offsets: arrow::buffer::OffsetBuffer<i32>,
    nulls: Option<arrow::buffer::NullBuffer>,
    values: ArrayRef,
}

impl ListItems {
    fn new(array: &ArrayRef, column: &str, field: &str) -> Result<Self, EvalError> {
        let mismatch = || EvalError::ColumnType {
            column: column.to_owned(),
            expected: format!("List<Struct{{{field}, ..}}>"),
            actual: array.data_type().clone(),
        };
        let list = array.as_any().downcast_ref::<ListArray>().ok_or_else(mismatch)?;
        let items = list
            .values()
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(mismatch)?;
        let values = items.column_by_name(field).ok_or_else(mismatch)?;
        Ok(Self {
            offsets: list.offsets().clone(),
            nulls: list.nulls().cloned(),
            values: Arc::clone(values),
        })
    }

    /// The item values of `row` as strings (hex for binary), or nil.
    fn value(&self, row: usize) -> Value<'_> {
        if self.nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            return Value::Nil;
        }
        let (Some(start), Some(end)) = (self.offsets.get(row), self.offsets.get(row + 1)) else {
            return Value::Nil;
        };
        let range = usize::try_from(*start).unwrap_or(0)..usize::try_from(*end).unwrap_or(0);
        let items = if let Some(strings) = self.values.as_any().downcast_ref::<StringArray>() {
            range
                .filter(|i| strings.is_valid(*i))
                .map(|i| Value::Str(Cow::Borrowed(strings.value(i))))
                .collect()
        } else if let Some(ids) = self.values.as_any().downcast_ref::<FixedSizeBinaryArray>() {
            range
                .filter(|i| ids.is_valid(*i))
                .map(|i| Value::Str(Cow::Owned(hex(ids.value(i)))))
                .collect()
        } else {
            Vec::new()
        };
        Value::Array(items)
    }
}

impl<'a> Spans<'a> {
    pub(crate) fn new(batch: &'a RecordBatch) -> Self {
        Self {
            batch,
            trace_ids: OnceCell::new(),
            parents: OnceCell::new(),
            starts: OnceCell::new(),
            ends: OnceCell::new(),
            names: OnceCell::new(),
            status_messages: OnceCell::new(),
            statuses: OnceCell::new(),
            kinds: OnceCell::new(),
            durations: OnceCell::new(),
            span_attrs: OnceCell::new(),
            resource_attrs: OnceCell::new(),
            traces: OnceCell::new(),
            trace_durations: OnceCell::new(),
            root_services: OnceCell::new(),
            span_ids: OnceCell::new(),
            event_names: OnceCell::new(),
            link_trace_ids: OnceCell::new(),
            services: OnceCell::new(),
            dedicated_strings: std::array::from_fn(|_| OnceCell::new()),
            dedicated_numbers: std::array::from_fn(|_| OnceCell::new()),
        }
    }

    /// A batch read without an attribute list answers for the attributes
    /// with columns of their own: a span's dedicated attributes
    /// ([`columns::DEDICATED`]) from their columns, the resource's
    /// `service.name` from [`columns::SERVICE_NAME`]. The columns hold the
    /// values of their type only (strings; numbers), which is all a
    /// condition on them can match; a number with no fraction is read as
    /// an integer, as the attribute was sent.
    fn dedicated(&self, attr: &AttributeRef) -> Result<Option<FieldColumn<'_>>, EvalError> {
        let has = |name: &str| self.batch.column_by_name(name).is_some();
        match attr.scope {
            AttributeScope::Resource if attr.name == "service.name" && !has(columns::RESOURCE_ATTRIBUTES) => {
                if !has(columns::SERVICE_NAME) {
                    return Ok(None);
                }
                let services = cached(&self.services, || self.column(columns::SERVICE_NAME, &DataType::Utf8))?;
                Ok(Some(FieldColumn::Str(services)))
            }
            AttributeScope::Span if !has(columns::ATTRIBUTES) => {
                let Some(i) = columns::DEDICATED.iter().position(|d| d.attribute == attr.name) else {
                    return Ok(None);
                };
                let d = &columns::DEDICATED[i];
                if !has(d.column) {
                    return Ok(None);
                }
                Ok(Some(match d.kind {
                    columns::DedicatedType::String => FieldColumn::Str(cached(&self.dedicated_strings[i], || {
                        self.column(d.column, &DataType::Utf8)
                    })?),
                    columns::DedicatedType::Number => FieldColumn::Number(cached(&self.dedicated_numbers[i], || {
                        self.column(d.column, &DataType::Float64)
                    })?),
                }))
            }
            _ => Ok(None),
        }
    }

    fn span_ids(&self) -> Result<&FixedSizeBinaryArray, EvalError> {
        cached(&self.span_ids, || {
            self.column(columns::SPAN_ID, &DataType::FixedSizeBinary(8))
        })
    }

    fn event_names(&self) -> Result<&ListItems, EvalError> {
        cached(&self.event_names, || {
            ListItems::new(self.raw(columns::EVENTS)?, columns::EVENTS, columns::event::NAME)
        })
    }

    fn link_trace_ids(&self) -> Result<&ListItems, EvalError> {
        cached(&self.link_trace_ids, || {
            ListItems::new(self.raw(columns::LINKS)?, columns::LINKS, columns::link::TRACE_ID)
        })
    }

    pub(crate) fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    fn raw(&self, name: &str) -> Result<&ArrayRef, EvalError> {
        self.batch.column_by_name(name).ok_or_else(|| EvalError::MissingColumn {
            column: name.to_owned(),
        })
    }

    fn column<T: Array + Clone + 'static>(&self, name: &str, want: &DataType) -> Result<T, EvalError> {
        concrete(self.raw(name)?, name, want)
    }

    fn timestamps(&self, name: &str) -> Result<TimestampNanosecondArray, EvalError> {
        let want = DataType::Timestamp(TimeUnit::Nanosecond, None);
        let array = self.raw(name)?;
        match array.data_type() {
            DataType::Timestamp(TimeUnit::Nanosecond, _) => concrete(array, name, array.data_type()),
            _ => concrete(array, name, &want),
        }
    }

    pub(crate) fn trace_ids(&self) -> Result<&FixedSizeBinaryArray, EvalError> {
        cached(&self.trace_ids, || {
            self.column(columns::TRACE_ID, &DataType::FixedSizeBinary(16))
        })
    }

    fn parents(&self) -> Result<&FixedSizeBinaryArray, EvalError> {
        cached(&self.parents, || {
            self.column(columns::PARENT_SPAN_ID, &DataType::FixedSizeBinary(8))
        })
    }

    pub(crate) fn starts(&self) -> Result<&TimestampNanosecondArray, EvalError> {
        cached(&self.starts, || self.timestamps(columns::START_TIME_UNIX_NANO))
    }

    pub(crate) fn ends(&self) -> Result<&TimestampNanosecondArray, EvalError> {
        cached(&self.ends, || self.timestamps(columns::END_TIME_UNIX_NANO))
    }

    pub(crate) fn names(&self) -> Result<&StringArray, EvalError> {
        cached(&self.names, || self.column(columns::NAME, &DataType::Utf8))
    }

    pub(crate) fn status_messages(&self) -> Result<&StringArray, EvalError> {
        cached(&self.status_messages, || {
            self.column(columns::STATUS_MESSAGE, &DataType::Utf8)
        })
    }

    pub(crate) fn statuses(&self) -> Result<&Int32Array, EvalError> {
        cached(&self.statuses, || self.column(columns::STATUS_CODE, &DataType::Int32))
    }

    pub(crate) fn kinds(&self) -> Result<&Int32Array, EvalError> {
        cached(&self.kinds, || self.column(columns::KIND, &DataType::Int32))
    }

    /// Span durations: the `duration_nano` column, or end - start when the
    /// batch does not have it.
    pub(crate) fn durations(&self) -> Result<&Int64Array, EvalError> {
        cached(&self.durations, || {
            if self.batch.column_by_name(columns::DURATION_NANO).is_some() {
                return self.column(columns::DURATION_NANO, &DataType::Int64);
            }
            let (starts, ends) = (self.starts()?, self.ends()?);
            Ok((0..self.num_rows())
                .map(|i| {
                    (starts.is_valid(i) && ends.is_valid(i)).then(|| ends.value(i).saturating_sub(starts.value(i)))
                })
                .collect())
        })
    }

    pub(crate) fn span_attrs(&self) -> Result<&AttrList, EvalError> {
        cached(&self.span_attrs, || {
            AttrList::new(self.raw(columns::ATTRIBUTES)?, columns::ATTRIBUTES)
        })
    }

    pub(crate) fn resource_attrs(&self) -> Result<&AttrList, EvalError> {
        cached(&self.resource_attrs, || {
            AttrList::new(self.raw(columns::RESOURCE_ATTRIBUTES)?, columns::RESOURCE_ATTRIBUTES)
        })
    }

    /// The traces of the batch, in row order. Rows of a trace must be
    /// contiguous.
    pub(crate) fn traces(&self) -> Result<&Traces, EvalError> {
        cached(&self.traces, || {
            let ids = self.trace_ids()?;
            let parents = self.parents()?;
            let starts = self.starts()?;
            let n = self.num_rows();
            let mut list: Vec<TraceRows> = Vec::new();
            let mut of_row = Vec::with_capacity(n);
            let mut seen: HashSet<[u8; 16]> = HashSet::new();
            let id_at = |row: usize| {
                let mut id = [0u8; 16];
                if ids.is_valid(row) {
                    id.copy_from_slice(ids.value(row));
                }
                id
            };
            let mut row = 0;
            while row < n {
                let id = id_at(row);
                if !seen.insert(id) {
                    return Err(EvalError::TraceNotContiguous { trace_id: hex(&id) });
                }
                let start = row;
                while row < n && id_at(row) == id {
                    row += 1;
                }
                let mut root: Option<usize> = None;
                for r in start..row {
                    let is_root = parents.is_null(r) || parents.value(r).iter().all(|b| *b == 0);
                    if is_root && root.is_none_or(|best| starts.value(r) < starts.value(best)) {
                        root = Some(r);
                    }
                }
                let index = u32::try_from(list.len()).unwrap_or(u32::MAX);
                of_row.extend(std::iter::repeat_n(index, row - start));
                list.push(TraceRows {
                    trace_id: id,
                    rows: start..row,
                    root,
                });
            }
            Ok(Traces { list, of_row })
        })
    }

    fn trace_durations(&self) -> Result<&Vec<i64>, EvalError> {
        cached(&self.trace_durations, || {
            let (traces, starts, ends) = (self.traces()?, self.starts()?, self.ends()?);
            Ok(traces
                .list
                .iter()
                .map(|t| {
                    let min = t.rows.clone().map(|r| starts.value(r)).min().unwrap_or(0);
                    let max = t.rows.clone().map(|r| ends.value(r)).max().unwrap_or(0);
                    max.saturating_sub(min)
                })
                .collect())
        })
    }

    /// Per trace, the resource attribute item of the root span's string
    /// `service.name`.
    fn root_services(&self) -> Result<&Vec<Option<usize>>, EvalError> {
        cached(&self.root_services, || {
            let (traces, attrs) = (self.traces()?, self.resource_attrs()?);
            Ok(traces
                .list
                .iter()
                .map(|t| {
                    let root = t.root?;
                    let j = attrs.find(root, "service.name")?;
                    matches!(attrs.value(j), Value::Str(_)).then_some(j)
                })
                .collect())
        })
    }

    /// An accessor for `field`'s values.
    pub(crate) fn field(&self, field: &FieldRef) -> Result<FieldColumn<'_>, EvalError> {
        Ok(match field {
            FieldRef::Intrinsic(i) => match i {
                Intrinsic::Name => FieldColumn::Str(self.names()?),
                Intrinsic::StatusMessage => FieldColumn::Str(self.status_messages()?),
                Intrinsic::Status => FieldColumn::Status(self.statuses()?),
                Intrinsic::Kind => FieldColumn::Kind(self.kinds()?),
                Intrinsic::Duration => FieldColumn::Duration(self.durations()?),
                Intrinsic::RootName => {
                    let traces = self.traces()?;
                    FieldColumn::RootName {
                        names: self.names()?,
                        traces,
                    }
                }
                Intrinsic::RootServiceName => FieldColumn::RootService {
                    attrs: self.resource_attrs()?,
                    items: self.root_services()?,
                    traces: self.traces()?,
                },
                Intrinsic::TraceDuration => FieldColumn::TraceDuration {
                    durations: self.trace_durations()?,
                    traces: self.traces()?,
                },
                Intrinsic::TraceId => FieldColumn::Hex(self.trace_ids()?),
                Intrinsic::SpanId => FieldColumn::Hex(self.span_ids()?),
                Intrinsic::EventName => FieldColumn::Items(self.event_names()?),
                Intrinsic::LinkTraceId => FieldColumn::Items(self.link_trace_ids()?),
            },
            FieldRef::Attribute(a) => match self.dedicated(a)? {
                Some(column) => column,
                None => FieldColumn::Attribute {
                    attr: a.clone(),
                    span: match a.scope {
                        AttributeScope::Span | AttributeScope::Unscoped => Some(self.span_attrs()?),
                        AttributeScope::Resource => None,
                    },
                    resource: match a.scope {
                        AttributeScope::Resource | AttributeScope::Unscoped => Some(self.resource_attrs()?),
                        AttributeScope::Span => None,
                    },
                },
            },
        })
    }
}

/// A number of a dedicated column as a value: an integer when it has no
/// fraction and is exact as one (|x| < 2^53), a float otherwise.
fn number(x: f64) -> Value<'static> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if x.fract() == 0.0 && x.abs() < EXACT {
        // Exact: an integer below 2^53 in magnitude.
        #[allow(clippy::cast_possible_truncation)]
        Value::Int(x as i64)
    } else {
        Value::Float(x)
    }
}

/// Reads one field's value for any row.
#[derive(Debug)]
pub(crate) enum FieldColumn<'s> {
    Str(&'s StringArray),
    /// A dedicated number column: integers when they have no fraction.
    Number(&'s Float64Array),
    Status(&'s Int32Array),
    Kind(&'s Int32Array),
    Duration(&'s Int64Array),
    RootName {
        names: &'s StringArray,
        traces: &'s Traces,
    },
    RootService {
        attrs: &'s AttrList,
        items: &'s [Option<usize>],
        traces: &'s Traces,
    },
    TraceDuration {
        durations: &'s [i64],
        traces: &'s Traces,
    },
    Attribute {
        attr: AttributeRef,
        span: Option<&'s AttrList>,
        resource: Option<&'s AttrList>,
    },
    /// An id as hex.
    Hex(&'s FixedSizeBinaryArray),
    /// The items of a list (event names, link trace ids).
    Items(&'s ListItems),
}

impl<'s> FieldColumn<'s> {
    /// The value at `row` (which must be in the batch).
    pub(crate) fn value(&self, row: usize) -> Value<'s> {
        match self {
            FieldColumn::Str(a) => match a.is_valid(row) {
                true => Value::Str(Cow::Borrowed(a.value(row))),
                false => Value::Nil,
            },
            FieldColumn::Number(a) => match a.is_valid(row) {
                true => number(a.value(row)),
                false => Value::Nil,
            },
            FieldColumn::Status(a) => match a.is_valid(row) {
                true => Value::Status(a.value(row)),
                false => Value::Nil,
            },
            FieldColumn::Kind(a) => match a.is_valid(row) {
                true => Value::Kind(a.value(row)),
                false => Value::Nil,
            },
            FieldColumn::Duration(a) => match a.is_valid(row) {
                true => Value::Duration(a.value(row)),
                false => Value::Nil,
            },
            FieldColumn::RootName { names, traces } => {
                let root = trace_of(traces, row).and_then(|t| t.root);
                match root {
                    Some(r) if names.is_valid(r) => Value::Str(Cow::Borrowed(names.value(r))),
                    _ => Value::Nil,
                }
            }
            FieldColumn::RootService { attrs, items, traces } => {
                let item = traces
                    .of_row
                    .get(row)
                    .and_then(|t| items.get(*t as usize))
                    .copied()
                    .flatten();
                match item {
                    Some(j) => attrs.value(j),
                    None => Value::Nil,
                }
            }
            FieldColumn::TraceDuration { durations, traces } => {
                match traces.of_row.get(row).and_then(|t| durations.get(*t as usize)) {
                    Some(d) => Value::Duration(*d),
                    None => Value::Nil,
                }
            }
            FieldColumn::Hex(ids) => match ids.is_valid(row) {
                true => Value::Str(Cow::Owned(hex(ids.value(row)))),
                false => Value::Nil,
            },
            FieldColumn::Items(items) => items.value(row),
            FieldColumn::Attribute { attr, span, resource } => {
                if let Some(list) = span
                    && let Some(j) = list.find(row, &attr.name)
                {
                    return list.value(j);
                }
                if let Some(list) = resource
                    && let Some(j) = list.find(row, &attr.name)
                {
                    return list.value(j);
                }
                Value::Nil
            }
        }
    }
}

fn trace_of(traces: &Traces, row: usize) -> Option<&TraceRows> {
    traces.of_row.get(row).and_then(|t| traces.list.get(*t as usize))
}
