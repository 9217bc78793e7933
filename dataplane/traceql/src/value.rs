//! Values of fields and how they compare.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::ast::{CompareOp, Literal, Pattern, SpanKind, StatusCode};

/// The value of a field for one span.
///
/// Comparison rules (two-valued: a comparison is true or false, never
/// unknown):
///
/// - A missing field (nil) compares false with everything, for every
///   operator, `!=` included; only `= nil` / `!= nil` test presence.
/// - Strings compare with strings: `=`, `!=`, and `<`, `<=`, `>`, `>=`
///   lexicographically by bytes (as Tempo does); `=~` / `!~` fully anchored.
/// - Integers, floats and durations (nanoseconds) compare numerically with
///   each other (integers exactly, otherwise as `f64`).
/// - Booleans, statuses and kinds support `=` and `!=` only.
/// - Any other pairing (a string attribute against a number, ...) is false,
///   for `!=` too: `span.x != 1` does not match a span whose `x` is `"a"`.
/// - Arrays: `=`, `=~`, `<`, ... match if any element does; `!=` and `!~`
///   match if at least one element is comparable and none is equal
///   (matches).
/// - Values of other types (bytes, key-value lists, empty values) are
///   present (`!= nil`) but compare false.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// Missing: no such attribute (or no root span for `rootName`).
    Nil,
    /// A string.
    Str(Cow<'a, str>),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A duration in nanoseconds (`duration`, `traceDuration`).
    Duration(i64),
    /// A span status: the OTLP code as stored (see [`StatusCode`]).
    Status(i32),
    /// A span kind: the OTLP code as stored (see [`SpanKind`]).
    Kind(i32),
    /// An array attribute's elements (strings, integers, floats, booleans;
    /// other elements as [`Value::Unsupported`]).
    Array(Vec<Value<'a>>),
    /// Present, but of a type TraceQL cannot compare (bytes, key-value
    /// list, empty value).
    Unsupported,
}

impl Value<'_> {
    /// Whether the field is missing.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// A copy that borrows nothing.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Nil => Value::Nil,
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Int(i) => Value::Int(i),
            Value::Float(x) => Value::Float(x),
            Value::Bool(b) => Value::Bool(b),
            Value::Duration(d) => Value::Duration(d),
            Value::Status(s) => Value::Status(s),
            Value::Kind(k) => Value::Kind(k),
            Value::Array(items) => Value::Array(items.into_iter().map(Value::into_owned).collect()),
            Value::Unsupported => Value::Unsupported,
        }
    }

    /// For [`Value::Status`] and [`Value::Kind`], the TraceQL keyword of the
    /// code (`error`, `server`, ...), if the code is a known one.
    pub fn keyword(&self) -> Option<&'static str> {
        match self {
            Value::Status(code) => StatusCode::from_code(*code).map(StatusCode::keyword),
            Value::Kind(code) => SpanKind::from_code(*code).map(SpanKind::keyword),
            _ => None,
        }
    }

    /// The value as a number, if it is one (durations in nanoseconds).
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) | Value::Duration(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            _ => None,
        }
    }
}

/// The value of a literal.
pub(crate) fn literal_value(l: &Literal) -> Value<'_> {
    match l {
        Literal::String(s) => Value::Str(Cow::Borrowed(s)),
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(x) => Value::Float(*x),
        Literal::Duration(d) => Value::Duration(*d),
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Status(s) => Value::Status(s.code()),
        Literal::Kind(k) => Value::Kind(k.code()),
    }
}

/// `lhs op rhs`. `pattern` is the compiled right operand of `=~` / `!~`.
pub(crate) fn compare(lhs: &Value<'_>, op: CompareOp, rhs: &Value<'_>, pattern: Option<&Pattern>) -> bool {
    if let Value::Array(items) = lhs {
        return compare_array(items, op, rhs, pattern);
    }
    if let Value::Array(items) = rhs {
        return match op.mirrored() {
            Some(mirrored) => compare_array(items, mirrored, lhs, pattern),
            None => false,
        };
    }
    scalar(lhs, op, rhs, pattern).unwrap_or(false)
}

fn compare_array(items: &[Value<'_>], op: CompareOp, rhs: &Value<'_>, pattern: Option<&Pattern>) -> bool {
    let positive = match op {
        CompareOp::Ne => CompareOp::Eq,
        CompareOp::NotRe => CompareOp::Re,
        _ => {
            return items.iter().any(|item| scalar(item, op, rhs, pattern).unwrap_or(false));
        }
    };
    let mut comparable = false;
    for item in items {
        match scalar(item, positive, rhs, pattern) {
            Some(true) => return false,
            Some(false) => comparable = true,
            None => {}
        }
    }
    comparable
}

fn holds(op: CompareOp, ordering: Ordering) -> bool {
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Re | CompareOp::NotRe => false,
    }
}

/// Exact integer view of integers and durations.
fn as_exact_int(v: &Value<'_>) -> Option<i64> {
    match v {
        Value::Int(i) | Value::Duration(i) => Some(*i),
        _ => None,
    }
}

/// `lhs op rhs` for non-array values; `None` when the two cannot be compared
/// with `op` (missing, or types that do not go together).
fn scalar(lhs: &Value<'_>, op: CompareOp, rhs: &Value<'_>, pattern: Option<&Pattern>) -> Option<bool> {
    match (lhs, rhs) {
        (Value::Str(a), Value::Str(b)) => match op {
            CompareOp::Re => pattern.map(|p| p.is_match(a)),
            CompareOp::NotRe => pattern.map(|p| !p.is_match(a)),
            _ => Some(holds(op, a.as_bytes().cmp(b.as_bytes()))),
        },
        (Value::Bool(a), Value::Bool(b)) => equality(op, a == b),
        (Value::Status(a), Value::Status(b)) | (Value::Kind(a), Value::Kind(b)) => equality(op, a == b),
        _ => {
            if matches!(op, CompareOp::Re | CompareOp::NotRe) {
                return None;
            }
            if let (Some(a), Some(b)) = (as_exact_int(lhs), as_exact_int(rhs)) {
                return Some(holds(op, a.cmp(&b)));
            }
            let (a, b) = (lhs.as_f64()?, rhs.as_f64()?);
            Some(match a.partial_cmp(&b) {
                Some(ordering) => holds(op, ordering),
                // NaN: only `!=` holds.
                None => op == CompareOp::Ne,
            })
        }
    }
}

fn equality(op: CompareOp, equal: bool) -> Option<bool> {
    match op {
        CompareOp::Eq => Some(equal),
        CompareOp::Ne => Some(!equal),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value<'_> {
        Value::Str(v.into())
    }

    #[test]
    fn missing_never_matches() {
        for op in [CompareOp::Eq, CompareOp::Ne, CompareOp::Gt, CompareOp::Lt] {
            assert!(!compare(&Value::Nil, op, &Value::Int(1), None));
            assert!(!compare(&Value::Nil, op, &s("a"), None));
        }
    }

    #[test]
    fn numbers_mix() {
        assert!(compare(&Value::Int(2), CompareOp::Gt, &Value::Float(1.5), None));
        assert!(compare(&Value::Float(2.0), CompareOp::Eq, &Value::Int(2), None));
        assert!(compare(
            &Value::Duration(1_000_000),
            CompareOp::Eq,
            &Value::Int(1_000_000),
            None
        ));
        assert!(compare(
            &Value::Int(i64::MAX),
            CompareOp::Gt,
            &Value::Int(i64::MAX - 1),
            None
        ));
        assert!(compare(&Value::Float(f64::NAN), CompareOp::Ne, &Value::Int(1), None));
        assert!(!compare(&Value::Float(f64::NAN), CompareOp::Eq, &Value::Int(1), None));
    }

    #[test]
    fn type_mismatch_is_false_even_for_ne() {
        assert!(!compare(&s("200"), CompareOp::Eq, &Value::Int(200), None));
        assert!(!compare(&s("200"), CompareOp::Ne, &Value::Int(200), None));
        assert!(!compare(&Value::Bool(true), CompareOp::Ne, &Value::Int(1), None));
        assert!(!compare(&Value::Unsupported, CompareOp::Ne, &s("x"), None));
    }

    #[test]
    fn strings_order_lexicographically() {
        assert!(compare(&s("500"), CompareOp::Ge, &s("400"), None));
        assert!(compare(&s("5"), CompareOp::Gt, &s("400"), None));
        assert!(!compare(&s("b"), CompareOp::Lt, &s("a"), None));
    }

    #[test]
    fn bools_statuses_kinds_only_equality() {
        assert!(compare(&Value::Bool(false), CompareOp::Eq, &Value::Bool(false), None));
        assert!(!compare(&Value::Bool(true), CompareOp::Gt, &Value::Bool(false), None));
        assert!(compare(&Value::Status(2), CompareOp::Ne, &Value::Status(1), None));
        assert!(!compare(&Value::Status(2), CompareOp::Eq, &Value::Kind(2), None));
    }

    #[test]
    fn arrays_any_and_none() {
        let arr = Value::Array(vec![s("a"), s("b")]);
        assert!(compare(&arr, CompareOp::Eq, &s("b"), None));
        assert!(!compare(&arr, CompareOp::Eq, &s("c"), None));
        assert!(compare(&arr, CompareOp::Ne, &s("c"), None));
        assert!(!compare(&arr, CompareOp::Ne, &s("a"), None));
        // Nothing comparable: `!=` does not hold either.
        assert!(!compare(&arr, CompareOp::Ne, &Value::Int(1), None));
        let p = Pattern::new("b.*").unwrap();
        assert!(compare(&arr, CompareOp::Re, &s("b.*"), Some(&p)));
        assert!(!compare(&arr, CompareOp::NotRe, &s("b.*"), Some(&p)));
        let ints = Value::Array(vec![Value::Int(1), Value::Int(5)]);
        assert!(compare(&ints, CompareOp::Gt, &Value::Int(4), None));
        assert!(!compare(&ints, CompareOp::Gt, &Value::Int(5), None));
        // Literal on the left.
        assert!(compare(&Value::Int(4), CompareOp::Lt, &ints, None));
    }

    #[test]
    fn regexes_are_anchored() {
        let p = Pattern::new("post").unwrap();
        assert!(compare(&s("post"), CompareOp::Re, &s("post"), Some(&p)));
        assert!(!compare(&s("postgresql"), CompareOp::Re, &s("post"), Some(&p)));
        assert!(compare(&s("postgresql"), CompareOp::NotRe, &s("post"), Some(&p)));
        let p = Pattern::new("a|b").unwrap();
        assert!(!compare(&s("ab"), CompareOp::Re, &s("a|b"), Some(&p)));
        let p = Pattern::new("a.c").unwrap();
        assert!(
            compare(&s("a\nc"), CompareOp::Re, &s("a.c"), Some(&p)),
            "dot matches newline"
        );
        assert!(!compare(&Value::Int(1), CompareOp::NotRe, &s("a.c"), Some(&p)));
    }
}
