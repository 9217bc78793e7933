//! The ATTRIBUTES column type (`List<Struct{key, type, str, int, double,
//! bool, bytes}>`), its builder and its reader. Shared by every signal.

use std::ops::Range;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray, StructArray,
    UInt8Array,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, FieldRef, Fields};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use prost::Message;

use crate::Error;
use crate::columns::{LIST_ITEM, attribute, value_type};
use crate::read::{child, downcast};

/// Fields of one attribute (the struct items of the list).
pub(crate) static FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    Fields::from(vec![
        Field::new(attribute::KEY, DataType::Utf8, false),
        Field::new(attribute::TYPE, DataType::UInt8, false),
        Field::new(attribute::STR, DataType::Utf8, true),
        Field::new(attribute::INT, DataType::Int64, true),
        Field::new(attribute::DOUBLE, DataType::Float64, true),
        Field::new(attribute::BOOL, DataType::Boolean, true),
        Field::new(attribute::BYTES, DataType::Binary, true),
    ])
});

/// The list's item field.
pub(crate) static ITEM: LazyLock<FieldRef> =
    LazyLock::new(|| Arc::new(Field::new(LIST_ITEM, DataType::Struct(FIELDS.clone()), false)));

/// The ATTRIBUTES type.
pub(crate) fn data_type() -> DataType {
    DataType::List(Arc::clone(&ITEM))
}

/// One attribute value, borrowed, in the shape it is stored in.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    /// The `KeyValue` has no `AnyValue`.
    Absent,
    /// The `AnyValue` has no value.
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    /// An array or kvlist: the type code and the protobuf-encoded `AnyValue`.
    Encoded(u8, &'a [u8]),
    Strindex(i32),
}

/// A value of a [`Prepared`] attribute list: arrays and kvlists are encoded
/// once, however many rows repeat them.
#[derive(Debug)]
enum PreparedVal<'a> {
    Plain(Val<'a>),
    Encoded(u8, Vec<u8>),
}

/// An attribute list converted once to append to many rows (resource and
/// scope attributes repeat on every span; see also [`Builder::repeat_last`]).
#[derive(Debug, Default)]
pub(crate) struct Prepared<'a> {
    items: Vec<(&'a str, PreparedVal<'a>)>,
}

impl<'a> Prepared<'a> {
    pub(crate) fn new(kvs: &'a [KeyValue]) -> Self {
        let items = kvs
            .iter()
            .map(|kv| {
                let v = match kv.value.as_ref() {
                    None => PreparedVal::Plain(Val::Absent),
                    Some(any) => match plain(any) {
                        Some(v) => PreparedVal::Plain(v),
                        None => PreparedVal::Encoded(nested_type(any), any.encode_to_vec()),
                    },
                };
                (kv.key.as_str(), v)
            })
            .collect();
        Self { items }
    }
}

/// The stored form of a value that needs no encoding; `None` for arrays and
/// kvlists.
fn plain(any: &AnyValue) -> Option<Val<'_>> {
    Some(match &any.value {
        None => Val::Empty,
        Some(Value::StringValue(s)) => Val::Str(s),
        Some(Value::BoolValue(b)) => Val::Bool(*b),
        Some(Value::IntValue(i)) => Val::Int(*i),
        Some(Value::DoubleValue(d)) => Val::Double(*d),
        Some(Value::BytesValue(b)) => Val::Bytes(b),
        Some(Value::StringValueStrindex(i)) => Val::Strindex(*i),
        Some(Value::ArrayValue(_) | Value::KvlistValue(_)) => return None,
    })
}

fn nested_type(any: &AnyValue) -> u8 {
    match any.value {
        Some(Value::KvlistValue(_)) => value_type::KVLIST,
        _ => value_type::ARRAY,
    }
}

/// How much attribute data some rows hold, to size builders up front.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Size {
    pub(crate) lists: usize,
    entries: usize,
    key: usize,
    str: usize,
    bytes: usize,
}

/// A guess at the encoded size of an array or kvlist, which is not worth
/// computing just to size a buffer.
const NESTED_SIZE_GUESS: usize = 64;

impl Size {
    /// The size of the list `kvs`.
    pub(crate) fn of(kvs: &[KeyValue]) -> Self {
        let mut size = Self {
            lists: 1,
            entries: kvs.len(),
            ..Self::default()
        };
        for kv in kvs {
            size.key += kv.key.len();
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => size.str += s.len(),
                Some(Value::BytesValue(b)) => size.bytes += b.len(),
                Some(Value::ArrayValue(_) | Value::KvlistValue(_)) => size.bytes += NESTED_SIZE_GUESS,
                _ => {}
            }
        }
        size
    }

    /// Adds the size of the list `kvs`.
    pub(crate) fn add_list(&mut self, kvs: &[KeyValue]) {
        self.add(&Self::of(kvs));
    }

    /// Adds `other`.
    pub(crate) fn add(&mut self, other: &Self) {
        self.lists += other.lists;
        self.entries += other.entries;
        self.key += other.key;
        self.str += other.str;
        self.bytes += other.bytes;
    }
}

/// Most bytes (and entries) an Arrow array with 32-bit offsets holds.
const MAX_OFFSET: usize = i32::MAX as usize;

/// Internal type code of an `AnyValue` without a value (stored as
/// [`value_type::EMPTY`] with an empty, non-null `bytes`), told apart from an
/// absent `AnyValue` until the arrays are built.
const EMPTY_PRESENT: u8 = u8::MAX;

/// Offsets and data of a variable-size binary or string column.
#[derive(Debug)]
struct Bytes {
    offsets: Vec<i32>,
    data: Vec<u8>,
}

impl Bytes {
    fn with_capacity(items: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(items + 1);
        offsets.push(0);
        Self {
            offsets,
            data: Vec::with_capacity(bytes),
        }
    }

    /// Appends `v`; false if the column would outgrow 32-bit offsets.
    #[inline]
    fn push(&mut self, v: &[u8]) -> bool {
        let end = self.data.len() + v.len();
        if end > MAX_OFFSET {
            return false;
        }
        self.data.extend_from_slice(v);
        self.offsets.push(end as i32);
        true
    }

    /// Appends an empty (or null) value.
    #[inline]
    fn push_empty(&mut self) {
        let end = self.data.len() as i32;
        self.offsets.push(end);
    }

    /// Appends a copy of items `items` (already in the column); false if the
    /// column would outgrow 32-bit offsets.
    fn repeat(&mut self, items: Range<usize>) -> bool {
        let (Some(&from), Some(&to)) = (self.offsets.get(items.start), self.offsets.get(items.end)) else {
            return false;
        };
        let (from, to) = (from as usize, to as usize);
        let base = self.data.len();
        if base + (to - from) > MAX_OFFSET {
            return false;
        }
        self.data.extend_from_within(from..to);
        // `base >= to >= from`, and every new offset is at most the new length.
        let delta = (base - from) as i32;
        let old = self.offsets.len();
        self.offsets.extend_from_within(items.start + 1..items.end + 1);
        for o in &mut self.offsets[old..] {
            *o += delta;
        }
        true
    }

    fn offsets(self) -> (OffsetBuffer<i32>, Buffer) {
        (
            OffsetBuffer::new(ScalarBuffer::from(self.offsets)),
            Buffer::from_vec(self.data),
        )
    }
}

/// Validity of the value fields, which follows from the type codes.
#[derive(Debug)]
struct Validity {
    str: Option<NullBuffer>,
    int: Option<NullBuffer>,
    double: Option<NullBuffer>,
    bool: Option<NullBuffer>,
    bytes: Option<NullBuffer>,
}

impl Validity {
    /// Computes every field's validity in one pass over the type codes.
    fn of(ty: &[u8]) -> Self {
        use value_type::*;
        let words = ty.len().div_ceil(64);
        let mut bits: [Vec<u64>; 5] = std::array::from_fn(|_| Vec::with_capacity(words));
        for chunk in ty.chunks(64) {
            let mut w = [0u64; 5];
            for (i, &t) in chunk.iter().enumerate() {
                w[0] |= u64::from(t == STRING) << i;
                w[1] |= u64::from(t == INT || t == STRING_STRINDEX) << i;
                w[2] |= u64::from(t == DOUBLE) << i;
                w[3] |= u64::from(t == BOOL) << i;
                w[4] |= u64::from(matches!(t, BYTES | ARRAY | KVLIST | EMPTY_PRESENT)) << i;
            }
            for (b, w) in bits.iter_mut().zip(w) {
                b.push(w);
            }
        }
        let [str, int, double, bool, bytes] = bits.map(|words| {
            let nulls = NullBuffer::new(BooleanBuffer::new(Buffer::from_vec(words), 0, ty.len()));
            Some(nulls).filter(|n| n.null_count() > 0)
        });
        Self {
            str,
            int,
            double,
            bool,
            bytes,
        }
    }
}

/// Appends attribute lists, one per row. Value columns are plain vectors
/// (nulls follow from the type codes when the arrays are built), so that a
/// row can repeat the previous row's list with a few copies.
#[derive(Debug)]
pub(crate) struct Builder {
    /// The column's name, for errors.
    column: &'static str,
    offsets: Vec<i32>,
    key: Bytes,
    ty: Vec<u8>,
    str: Bytes,
    int: Vec<i64>,
    double: Vec<f64>,
    bool: Vec<bool>,
    bytes: Bytes,
    scratch: Vec<u8>,
}

impl Builder {
    /// A builder sized for `size`.
    pub(crate) fn with_size(column: &'static str, size: &Size) -> Self {
        let mut offsets = Vec::with_capacity(size.lists + 1);
        offsets.push(0);
        let entries = size.entries;
        Self {
            column,
            offsets,
            key: Bytes::with_capacity(entries, size.key),
            ty: Vec::with_capacity(entries),
            str: Bytes::with_capacity(entries, size.str),
            int: Vec::with_capacity(entries),
            double: Vec::with_capacity(entries),
            bool: Vec::with_capacity(entries),
            bytes: Bytes::with_capacity(entries, size.bytes),
            scratch: Vec::new(),
        }
    }

    /// Appends one row: the list `kvs`, in order.
    pub(crate) fn append(&mut self, kvs: &[KeyValue]) -> Result<(), Error> {
        for kv in kvs {
            match kv.value.as_ref() {
                None => self.push(&kv.key, Val::Absent)?,
                Some(any) => match plain(any) {
                    Some(v) => self.push(&kv.key, v)?,
                    None => {
                        let mut scratch = std::mem::take(&mut self.scratch);
                        scratch.clear();
                        let pushed = match any.encode(&mut scratch) {
                            Ok(()) => self.push(&kv.key, Val::Encoded(nested_type(any), &scratch)),
                            Err(_) => Err(self.too_large(attribute::BYTES)),
                        };
                        self.scratch = scratch;
                        pushed?;
                    }
                },
            }
        }
        self.close()
    }

    /// Appends one row: a prepared list.
    pub(crate) fn append_prepared(&mut self, prepared: &Prepared<'_>) -> Result<(), Error> {
        for (key, v) in &prepared.items {
            let v = match v {
                PreparedVal::Plain(v) => *v,
                PreparedVal::Encoded(ty, bytes) => Val::Encoded(*ty, bytes),
            };
            self.push(key, v)?;
        }
        self.close()
    }

    /// Appends one row: a copy of the previous row's list (an empty list if
    /// there is none).
    pub(crate) fn repeat_last(&mut self) -> Result<(), Error> {
        let n = self.offsets.len();
        let (from, to) = match (n.checked_sub(2).and_then(|i| self.offsets.get(i)), self.offsets.last()) {
            (Some(&from), Some(&to)) => (from as usize, to as usize),
            _ => return self.close(),
        };
        if !self.key.repeat(from..to) {
            return Err(self.too_large(attribute::KEY));
        }
        if !self.str.repeat(from..to) {
            return Err(self.too_large(attribute::STR));
        }
        if !self.bytes.repeat(from..to) {
            return Err(self.too_large(attribute::BYTES));
        }
        self.ty.extend_from_within(from..to);
        self.int.extend_from_within(from..to);
        self.double.extend_from_within(from..to);
        self.bool.extend_from_within(from..to);
        self.close()
    }

    fn close(&mut self) -> Result<(), Error> {
        let end = i32::try_from(self.ty.len()).map_err(|_| self.too_large(""))?;
        self.offsets.push(end);
        Ok(())
    }

    fn too_large(&self, field: &str) -> Error {
        let column = if field.is_empty() {
            self.column.to_owned()
        } else {
            format!("{}.{LIST_ITEM}.{field}", self.column)
        };
        Error::TooLarge { column }
    }

    #[inline]
    fn push(&mut self, key: &str, v: Val<'_>) -> Result<(), Error> {
        if !self.key.push(key.as_bytes()) {
            return Err(self.too_large(attribute::KEY));
        }
        let (ty, s, i, d, b, bytes): (u8, &str, i64, f64, bool, &[u8]) = match v {
            Val::Absent => (value_type::EMPTY, "", 0, 0.0, false, &[]),
            Val::Empty => (EMPTY_PRESENT, "", 0, 0.0, false, &[]),
            Val::Str(s) => (value_type::STRING, s, 0, 0.0, false, &[]),
            Val::Bool(b) => (value_type::BOOL, "", 0, 0.0, b, &[]),
            Val::Int(i) => (value_type::INT, "", i, 0.0, false, &[]),
            Val::Double(d) => (value_type::DOUBLE, "", 0, d, false, &[]),
            Val::Bytes(bytes) => (value_type::BYTES, "", 0, 0.0, false, bytes),
            Val::Encoded(ty, bytes) => (ty, "", 0, 0.0, false, bytes),
            Val::Strindex(i) => (value_type::STRING_STRINDEX, "", i64::from(i), 0.0, false, &[]),
        };
        if s.is_empty() {
            self.str.push_empty();
        } else if !self.str.push(s.as_bytes()) {
            return Err(self.too_large(attribute::STR));
        }
        if bytes.is_empty() {
            self.bytes.push_empty();
        } else if !self.bytes.push(bytes) {
            return Err(self.too_large(attribute::BYTES));
        }
        self.ty.push(ty);
        self.int.push(i);
        self.double.push(d);
        self.bool.push(b);
        Ok(())
    }

    /// The finished ATTRIBUTES array.
    pub(crate) fn finish(mut self) -> Result<ArrayRef, Error> {
        let valid = Validity::of(&self.ty);
        for t in &mut self.ty {
            if *t == EMPTY_PRESENT {
                *t = value_type::EMPTY;
            }
        }
        let bools = BooleanBuffer::from(self.bool);
        let (key_offsets, key_data) = self.key.offsets();
        let (str_offsets, str_data) = self.str.offsets();
        let (bytes_offsets, bytes_data) = self.bytes.offsets();
        let children: Vec<ArrayRef> = vec![
            Arc::new(StringArray::try_new(key_offsets, key_data, None)?),
            Arc::new(UInt8Array::new(ScalarBuffer::from(self.ty), None)),
            Arc::new(StringArray::try_new(str_offsets, str_data, valid.str)?),
            Arc::new(Int64Array::new(ScalarBuffer::from(self.int), valid.int)),
            Arc::new(Float64Array::new(ScalarBuffer::from(self.double), valid.double)),
            Arc::new(BooleanArray::new(bools, valid.bool)),
            Arc::new(BinaryArray::try_new(bytes_offsets, bytes_data, valid.bytes)?),
        ];
        let items = StructArray::try_new(FIELDS.clone(), children, None)?;
        let list = ListArray::try_new(
            Arc::clone(&ITEM),
            OffsetBuffer::new(ScalarBuffer::from(self.offsets)),
            Arc::new(items),
            None,
        )?;
        Ok(Arc::new(list))
    }
}

/// Where an attribute is, for errors: the batch row and the position in its list.
#[derive(Debug, Clone, Copy)]
struct Pos {
    row: usize,
    pos: usize,
}

/// Reads attribute lists back from an ATTRIBUTES array (already normalized
/// to the schema's types).
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    /// The column's name, for errors.
    column: String,
    offsets: &'a [i32],
    key: &'a StringArray,
    ty: &'a UInt8Array,
    str: &'a StringArray,
    int: &'a Int64Array,
    double: &'a Float64Array,
    bool: &'a BooleanArray,
    bytes: &'a BinaryArray,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(column: String, array: &'a ArrayRef) -> Result<Self, Error> {
        let list: &ListArray = downcast(array, &column, &data_type())?;
        let items: &StructArray = downcast(list.values(), &column, &data_type())?;
        Ok(Self {
            offsets: list.value_offsets(),
            key: child(items, &column, attribute::KEY, &DataType::Utf8)?,
            ty: child(items, &column, attribute::TYPE, &DataType::UInt8)?,
            str: child(items, &column, attribute::STR, &DataType::Utf8)?,
            int: child(items, &column, attribute::INT, &DataType::Int64)?,
            double: child(items, &column, attribute::DOUBLE, &DataType::Float64)?,
            bool: child(items, &column, attribute::BOOL, &DataType::Boolean)?,
            bytes: child(items, &column, attribute::BYTES, &DataType::Binary)?,
            column,
        })
    }

    /// The entries of list `index`.
    fn range(&self, index: usize) -> Range<usize> {
        let start = self.offsets.get(index).copied().unwrap_or(0);
        let end = self.offsets.get(index + 1).copied().unwrap_or(start);
        usize::try_from(start).unwrap_or(0)..usize::try_from(end).unwrap_or(0)
    }

    /// Rebuilds list `index`; `row` is the batch row, for errors.
    pub(crate) fn read(&self, index: usize, row: usize) -> Result<Vec<KeyValue>, Error> {
        let range = self.range(index);
        let mut out = Vec::with_capacity(range.len());
        for (pos, j) in range.enumerate() {
            out.push(KeyValue {
                key: self.key.value(j).to_owned(),
                value: self.value(j, Pos { row, pos })?,
                key_strindex: 0,
            });
        }
        Ok(out)
    }

    fn invalid(&self, at: Pos, field: &str, reason: &str) -> Error {
        Error::InvalidValue {
            row: at.row,
            column: format!("{}.{LIST_ITEM}.{field}", self.column),
            reason: format!("attribute {}: {reason}", at.pos),
        }
    }

    fn require(&self, valid: bool, ty: u8, field: &str, at: Pos) -> Result<(), Error> {
        if valid {
            Ok(())
        } else {
            Err(self.invalid(at, field, &format!("has type {ty} but `{field}` is null")))
        }
    }

    fn value(&self, j: usize, at: Pos) -> Result<Option<AnyValue>, Error> {
        let ty = self.ty.value(j);
        let value = match ty {
            value_type::EMPTY => {
                return Ok(self.bytes.is_valid(j).then_some(AnyValue { value: None }));
            }
            value_type::STRING => {
                self.require(self.str.is_valid(j), ty, attribute::STR, at)?;
                Value::StringValue(self.str.value(j).to_owned())
            }
            value_type::BOOL => {
                self.require(self.bool.is_valid(j), ty, attribute::BOOL, at)?;
                Value::BoolValue(self.bool.value(j))
            }
            value_type::INT => {
                self.require(self.int.is_valid(j), ty, attribute::INT, at)?;
                Value::IntValue(self.int.value(j))
            }
            value_type::DOUBLE => {
                self.require(self.double.is_valid(j), ty, attribute::DOUBLE, at)?;
                Value::DoubleValue(self.double.value(j))
            }
            value_type::BYTES => {
                self.require(self.bytes.is_valid(j), ty, attribute::BYTES, at)?;
                Value::BytesValue(self.bytes.value(j).to_vec())
            }
            value_type::ARRAY | value_type::KVLIST => {
                self.require(self.bytes.is_valid(j), ty, attribute::BYTES, at)?;
                let any = AnyValue::decode(self.bytes.value(j)).map_err(|e| {
                    self.invalid(
                        at,
                        attribute::BYTES,
                        &format!("cannot decode the AnyValue of type {ty}: {e}"),
                    )
                })?;
                return Ok(Some(any));
            }
            value_type::STRING_STRINDEX => {
                self.require(self.int.is_valid(j), ty, attribute::INT, at)?;
                let i = i32::try_from(self.int.value(j)).map_err(|_| {
                    self.invalid(
                        at,
                        attribute::INT,
                        &format!("string index {} is out of range", self.int.value(j)),
                    )
                })?;
                Value::StringValueStrindex(i)
            }
            other => {
                return Err(self.invalid(at, attribute::TYPE, &format!("unknown type {other}")));
            }
        };
        Ok(Some(AnyValue { value: Some(value) }))
    }

    /// Whether lists `a` and `b` hold the same attributes in the same order.
    pub(crate) fn equal(&self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.range(a), self.range(b));
        if ra.len() != rb.len() {
            return false;
        }
        if ra == rb {
            return true;
        }
        ra.zip(rb).all(|(x, y)| self.entry_equal(x, y))
    }

    fn entry_equal(&self, x: usize, y: usize) -> bool {
        let ty = self.ty.value(x);
        if ty != self.ty.value(y) || self.key.value(x) != self.key.value(y) {
            return false;
        }
        fn opt<T: PartialEq>(a: bool, b: bool, va: impl FnOnce() -> T, vb: impl FnOnce() -> T) -> bool {
            a == b && (!a || va() == vb())
        }
        match ty {
            value_type::EMPTY => self.bytes.is_valid(x) == self.bytes.is_valid(y),
            value_type::STRING => opt(
                self.str.is_valid(x),
                self.str.is_valid(y),
                || self.str.value(x),
                || self.str.value(y),
            ),
            value_type::BOOL => opt(
                self.bool.is_valid(x),
                self.bool.is_valid(y),
                || self.bool.value(x),
                || self.bool.value(y),
            ),
            value_type::INT | value_type::STRING_STRINDEX => opt(
                self.int.is_valid(x),
                self.int.is_valid(y),
                || self.int.value(x),
                || self.int.value(y),
            ),
            value_type::DOUBLE => opt(
                self.double.is_valid(x),
                self.double.is_valid(y),
                || self.double.value(x).to_bits(),
                || self.double.value(y).to_bits(),
            ),
            _ => opt(
                self.bytes.is_valid(x),
                self.bytes.is_valid(y),
                || self.bytes.value(x),
                || self.bytes.value(y),
            ),
        }
    }
}
