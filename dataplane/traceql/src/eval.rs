//! Evaluation of queries over span batches.
//!
//! Span filters are evaluated once over the whole batch into one
//! `BooleanArray` per `{ ... }` (Arrow comparison kernels for intrinsics
//! against literals, loops over the arrays otherwise; trace-level intrinsics
//! are spread over their trace's rows). Spanset operators and pipeline
//! stages then run per trace on row lists.

use std::ops::Range;

use arrow::array::{Array, BooleanArray, Datum, Int32Array, Int64Array, RecordBatch, Scalar, StringArray};
use arrow::buffer::BooleanBuffer;
use arrow::compute::kernels::cmp;
use arrow::compute::{and, not, or, prep_null_mask_filter};

use crate::ast::{
    AggregateFilter, AggregateFunc, CompareOp, Comparison, FieldExpr, FieldRef, Intrinsic, Literal, Operand,
    SpansetExpr, Stage,
};
use crate::error::EvalError;
use crate::spans::{FieldColumn, Spans};
use crate::value::{Value, compare, literal_value};

/// A trace that satisfies a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceMatch {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// Rows (of the evaluated batch) of the spans the query selected, in
    /// ascending order; never empty. For `{a} && {b}` and `{a} || {b}` the
    /// union of the spans each side selected.
    pub matched_rows: Vec<usize>,
    /// All rows of the trace in the batch.
    pub rows: Range<usize>,
    /// The row of the trace's root span (parent span id null or all zeros;
    /// the earliest if several), if the batch has one.
    pub root_row: Option<usize>,
}

/// See [`crate::evaluate`].
pub(crate) fn evaluate(expr: &SpansetExpr, batch: &RecordBatch) -> Result<Vec<TraceMatch>, EvalError> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let spans = Spans::new(batch);
    let plan = Plan::build(&spans, expr)?;
    let traces = spans.traces()?;
    let mut out = Vec::new();
    let mut domain = Vec::new();
    for trace in &traces.list {
        domain.clear();
        domain.extend(trace.rows.clone());
        if let Some(rows) = plan.eval(&domain) {
            out.push(TraceMatch {
                trace_id: trace.trace_id,
                matched_rows: rows,
                rows: trace.rows.clone(),
                root_row: trace.root,
            });
        }
    }
    Ok(out)
}

/// A spanset expression with its span filters evaluated over the batch.
enum Plan<'s> {
    /// `{ }`
    All,
    /// `{ expr }`: which rows satisfy `expr`.
    Mask(BooleanArray),
    And(Box<Plan<'s>>, Box<Plan<'s>>),
    Or(Box<Plan<'s>>, Box<Plan<'s>>),
    Pipeline(Box<Plan<'s>>, Vec<StagePlan<'s>>),
}

enum StagePlan<'s> {
    Filter(Plan<'s>),
    Aggregate(AggregatePlan<'s>),
}

struct AggregatePlan<'s> {
    func: AggregateFunc,
    column: Option<FieldColumn<'s>>,
    op: CompareOp,
    value: Literal,
}

impl<'s> Plan<'s> {
    fn build(spans: &'s Spans<'_>, expr: &SpansetExpr) -> Result<Self, EvalError> {
        Ok(match expr {
            SpansetExpr::Filter(None) => Plan::All,
            SpansetExpr::Filter(Some(e)) => Plan::Mask(mask(spans, e)?),
            SpansetExpr::And(a, b) => Plan::And(Box::new(Plan::build(spans, a)?), Box::new(Plan::build(spans, b)?)),
            SpansetExpr::Or(a, b) => Plan::Or(Box::new(Plan::build(spans, a)?), Box::new(Plan::build(spans, b)?)),
            SpansetExpr::Pipeline(input, stages) => {
                let mut plans = Vec::with_capacity(stages.len());
                for stage in stages {
                    match stage {
                        Stage::Filter(e) => plans.push(StagePlan::Filter(Plan::build(spans, e)?)),
                        Stage::Select(_) => {}
                        Stage::Aggregate(a) => plans.push(StagePlan::Aggregate(AggregatePlan::build(spans, a)?)),
                    }
                }
                Plan::Pipeline(Box::new(Plan::build(spans, input)?), plans)
            }
        })
    }

    /// The spans selected among `domain` (ascending rows of one trace), or
    /// `None` if none.
    fn eval(&self, domain: &[usize]) -> Option<Vec<usize>> {
        match self {
            Plan::All => (!domain.is_empty()).then(|| domain.to_vec()),
            Plan::Mask(mask) => {
                let rows: Vec<usize> = domain.iter().copied().filter(|&r| mask.value(r)).collect();
                (!rows.is_empty()).then_some(rows)
            }
            Plan::And(a, b) => {
                let x = a.eval(domain)?;
                let y = b.eval(domain)?;
                Some(union(&x, &y))
            }
            Plan::Or(a, b) => match (a.eval(domain), b.eval(domain)) {
                (Some(x), Some(y)) => Some(union(&x, &y)),
                (x, None) => x,
                (None, y) => y,
            },
            Plan::Pipeline(input, stages) => {
                let mut set = input.eval(domain)?;
                for stage in stages {
                    match stage {
                        StagePlan::Filter(p) => set = p.eval(&set)?,
                        StagePlan::Aggregate(a) => {
                            if !a.holds(&set) {
                                return None;
                            }
                        }
                    }
                }
                Some(set)
            }
        }
    }
}

impl<'s> AggregatePlan<'s> {
    fn build(spans: &'s Spans<'_>, filter: &AggregateFilter) -> Result<Self, EvalError> {
        Ok(Self {
            func: filter.func,
            column: match &filter.field {
                Some(field) => Some(spans.field(field)?),
                None => None,
            },
            op: filter.op,
            value: filter.value.clone(),
        })
    }

    /// Whether the spanset `rows` passes. Aggregates other than `count()`
    /// use the numeric values among the spans' (others are skipped) and do
    /// not pass when there are none.
    fn holds(&self, rows: &[usize]) -> bool {
        let result = match (self.func, &self.column) {
            (AggregateFunc::Count, _) => Value::Int(i64::try_from(rows.len()).unwrap_or(i64::MAX)),
            (_, None) => return false,
            (func, Some(column)) => {
                let (mut count, mut sum, mut min, mut max) = (0usize, 0.0f64, f64::INFINITY, f64::NEG_INFINITY);
                for x in rows.iter().filter_map(|&r| column.value(r).as_f64()) {
                    count += 1;
                    sum += x;
                    min = min.min(x);
                    max = max.max(x);
                }
                if count == 0 {
                    return false;
                }
                Value::Float(match func {
                    AggregateFunc::Avg => sum / count as f64,
                    AggregateFunc::Min => min,
                    AggregateFunc::Max => max,
                    AggregateFunc::Sum | AggregateFunc::Count => sum,
                })
            }
        };
        compare(&result, self.op, &literal_value(&self.value), None)
    }
}

/// Merges two ascending row lists.
fn union(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn from_fn(n: usize, f: impl FnMut(usize) -> bool) -> BooleanArray {
    BooleanArray::new(BooleanBuffer::collect_bool(n, f), None)
}

/// Which rows satisfy `expr`.
pub(crate) fn mask(spans: &Spans<'_>, expr: &FieldExpr) -> Result<BooleanArray, EvalError> {
    let n = spans.num_rows();
    Ok(match expr {
        FieldExpr::Bool(b) => from_fn(n, |_| *b),
        FieldExpr::Compare(c) => compare_mask(spans, c)?,
        FieldExpr::Exists { field, present } => {
            let column = spans.field(field)?;
            from_fn(n, |r| column.value(r).is_nil() != *present)
        }
        FieldExpr::Not(e) => not(&mask(spans, e)?)?,
        FieldExpr::And(a, b) => and(&mask(spans, a)?, &mask(spans, b)?)?,
        FieldExpr::Or(a, b) => or(&mask(spans, a)?, &mask(spans, b)?)?,
    })
}

/// One side of a comparison.
enum Side<'s, 'q> {
    Literal(&'q Literal),
    Column(FieldColumn<'s>),
}

impl<'s, 'q> Side<'s, 'q> {
    fn new(spans: &'s Spans<'_>, operand: &'q Operand) -> Result<Self, EvalError> {
        Ok(match operand {
            Operand::Literal(l) => Side::Literal(l),
            Operand::Field(f) => Side::Column(spans.field(f)?),
        })
    }

    fn value(&self, row: usize) -> Value<'_> {
        match self {
            Side::Literal(l) => literal_value(l),
            Side::Column(c) => c.value(row),
        }
    }
}

fn compare_mask(spans: &Spans<'_>, c: &Comparison) -> Result<BooleanArray, EvalError> {
    if let Some(mask) = kernel_compare(spans, c)? {
        return Ok(mask);
    }
    let lhs = Side::new(spans, &c.lhs)?;
    let rhs = Side::new(spans, &c.rhs)?;
    let pattern = c.pattern.as_ref();
    Ok(from_fn(spans.num_rows(), |r| {
        compare(&lhs.value(r), c.op, &rhs.value(r), pattern)
    }))
}

/// Span intrinsics against literals, with Arrow's comparison kernels.
fn kernel_compare(spans: &Spans<'_>, c: &Comparison) -> Result<Option<BooleanArray>, EvalError> {
    let Operand::Field(FieldRef::Intrinsic(intrinsic)) = &c.lhs else {
        return Ok(None);
    };
    let Operand::Literal(literal) = &c.rhs else {
        return Ok(None);
    };
    if matches!(c.op, CompareOp::Re | CompareOp::NotRe) {
        return Ok(None);
    }
    let result = match (intrinsic, literal) {
        (Intrinsic::Name | Intrinsic::StatusMessage, Literal::String(s)) => {
            let array = if *intrinsic == Intrinsic::Name {
                spans.names()?
            } else {
                spans.status_messages()?
            };
            kernel(array, &Scalar::new(StringArray::from(vec![s.as_str()])), c.op)?
        }
        (Intrinsic::Status, Literal::Status(s)) if matches!(c.op, CompareOp::Eq | CompareOp::Ne) => {
            kernel(spans.statuses()?, &Scalar::new(Int32Array::from(vec![s.code()])), c.op)?
        }
        (Intrinsic::Kind, Literal::Kind(k)) if matches!(c.op, CompareOp::Eq | CompareOp::Ne) => {
            kernel(spans.kinds()?, &Scalar::new(Int32Array::from(vec![k.code()])), c.op)?
        }
        (Intrinsic::Duration, Literal::Int(d) | Literal::Duration(d)) => {
            kernel(spans.durations()?, &Scalar::new(Int64Array::from(vec![*d])), c.op)?
        }
        _ => return Ok(None),
    };
    Ok(Some(result))
}

fn kernel(array: &dyn Datum, scalar: &dyn Datum, op: CompareOp) -> Result<BooleanArray, EvalError> {
    let result = match op {
        CompareOp::Eq => cmp::eq(array, scalar)?,
        CompareOp::Ne => cmp::neq(array, scalar)?,
        CompareOp::Gt => cmp::gt(array, scalar)?,
        CompareOp::Ge => cmp::gt_eq(array, scalar)?,
        CompareOp::Lt => cmp::lt(array, scalar)?,
        CompareOp::Le => cmp::lt_eq(array, scalar)?,
        CompareOp::Re | CompareOp::NotRe => {
            return Err(EvalError::Arrow(arrow_schema::ArrowError::InvalidArgumentError(
                "regular expressions have no comparison kernel".to_owned(),
            )));
        }
    };
    // Nulls (missing values) never match.
    Ok(if result.null_count() > 0 {
        prep_null_mask_filter(&result)
    } else {
        result
    })
}

/// Reads fields of single spans of a batch, e.g. to return the attributes a
/// query used with each matched span (see [`crate::referenced_fields`] and
/// [`crate::select_columns`]).
#[derive(Debug)]
pub struct FieldReader<'a> {
    spans: Spans<'a>,
}

impl<'a> FieldReader<'a> {
    /// A reader of `spans` (a batch of the span schema). Columns are read
    /// (and cast, if needed) when first used.
    pub fn new(spans: &'a RecordBatch) -> Self {
        Self {
            spans: Spans::new(spans),
        }
    }

    /// The value of `field` for the span in row `row`, with the same
    /// resolution as queries (unscoped attributes: span first, then
    /// resource). Trace-level intrinsics need the trace's rows to be
    /// contiguous, as [`crate::evaluate`] does.
    pub fn value(&self, row: usize, field: &FieldRef) -> Result<Value<'_>, EvalError> {
        let rows = self.spans.num_rows();
        if row >= rows {
            return Err(EvalError::RowOutOfRange { row, rows });
        }
        Ok(self.spans.field(field)?.value(row))
    }
}
