//! Finding and type-checking columns of batches to read back.
//!
//! Batches read back from Parquet (or through a query engine) may carry the
//! schema's logical types in other physical representations: `LargeUtf8` or
//! `Utf8View` for `Utf8`, `LargeBinary` or `BinaryView` for `Binary`,
//! `LargeList` for `List`, dictionaries, other list item names, other
//! time zones, nullable fields. Such columns are accepted and, where needed,
//! cast to the schema's types; anything else is a [`Error::ColumnType`].

use arrow::array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow::compute::cast;
use arrow_schema::{DataType, Field, TimeUnit};

use crate::Error;

/// How a column's type relates to the schema's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Compat {
    /// Readable as is (at most nullability or list item names differ).
    Same,
    /// Readable after a cast.
    Cast,
    /// Not readable.
    No,
}

fn compat(actual: &DataType, expected: &DataType) -> Compat {
    use DataType::*;
    if actual == expected {
        return Compat::Same;
    }
    let at_least_cast = |c: Compat| c.max(Compat::Cast);
    match (actual, expected) {
        (Dictionary(_, values), _) => at_least_cast(compat(values, expected)),
        (LargeUtf8 | Utf8View, Utf8) => Compat::Cast,
        (LargeBinary | BinaryView, Binary) => Compat::Cast,
        (Binary | LargeBinary | BinaryView, FixedSizeBinary(_)) => Compat::Cast,
        (Timestamp(TimeUnit::Nanosecond, _), Timestamp(TimeUnit::Nanosecond, _)) => Compat::Cast,
        (List(a), List(e)) => compat(a.data_type(), e.data_type()),
        (LargeList(a), List(e)) => at_least_cast(compat(a.data_type(), e.data_type())),
        (Struct(a), Struct(e)) => {
            if a.len() != e.len() {
                return Compat::No;
            }
            let mut result = Compat::Same;
            for (i, want) in e.iter().enumerate() {
                let Some((pos, have)) = a.find(want.name()) else {
                    return Compat::No;
                };
                let c = compat(have.data_type(), want.data_type());
                result = result.max(if pos == i { c } else { at_least_cast(c) });
            }
            result
        }
        _ => Compat::No,
    }
}

/// The batch's column `expected.name()`, readable as `expected`'s type.
pub(crate) fn column(batch: &RecordBatch, expected: &Field) -> Result<ArrayRef, Error> {
    let name = expected.name();
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| Error::MissingColumn { column: name.clone() })?;
    match compat(array.data_type(), expected.data_type()) {
        Compat::Same => Ok(std::sync::Arc::clone(array)),
        Compat::Cast => Ok(cast(array, expected.data_type())?),
        Compat::No => Err(Error::ColumnType {
            column: name.clone(),
            actual: array.data_type().clone(),
            expected: expected.data_type().clone(),
        }),
    }
}

/// `array` as its concrete type `T`.
pub(crate) fn downcast<'a, T: Array + 'static>(
    array: &'a ArrayRef,
    column: &str,
    expected: &DataType,
) -> Result<&'a T, Error> {
    array.as_any().downcast_ref::<T>().ok_or_else(|| Error::ColumnType {
        column: column.to_owned(),
        actual: array.data_type().clone(),
        expected: expected.clone(),
    })
}

/// Field `name` of the struct items of list column `column`, as `T`.
pub(crate) fn child<'a, T: Array + 'static>(
    items: &'a StructArray,
    column: &str,
    name: &str,
    expected: &DataType,
) -> Result<&'a T, Error> {
    let path = format!("{column}.{}.{name}", crate::columns::LIST_ITEM);
    let array = items
        .column_by_name(name)
        .ok_or_else(|| Error::MissingColumn { column: path.clone() })?;
    downcast(array, &path, expected)
}
