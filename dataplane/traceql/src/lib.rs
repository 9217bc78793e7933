//! TraceQL: parser, typed AST and evaluation over SignalDB's Arrow span
//! batches (one row per span; see `signaldb_schema::traces`).
//!
//! ```text
//! let query = Query::parse(r#"{ resource.service.name = "api" && status = error } | count() > 1"#)?;
//! let matches = evaluate(&query, &spans)?;   // spans: all rows of whole traces, grouped by trace id
//! ```
//!
//! # Supported TraceQL
//!
//! - Spanset filters `{ ... }` (`{ }` selects every span) with `&&`, `||`,
//!   `!`, parentheses and `=`, `!=`, `>`, `>=`, `<`, `<=`, `=~`, `!~`.
//! - Intrinsics `name`, `status`, `statusMessage`, `duration`, `kind`,
//!   `rootName`, `rootServiceName`, `traceDuration` and their scoped forms
//!   `span:name`, `span:status`, `span:statusMessage`, `span:duration`,
//!   `span:kind`, `trace:rootName`, `trace:rootService`, `trace:duration`.
//! - Attributes `span.x`, `resource.x` and unscoped `.x` (the span attribute
//!   if the span has one named `x`, else the resource attribute), with dots
//!   and quoted parts in names (`span."http.url"`, `span.a."b c"`); `= nil`
//!   / `!= nil` test absence / presence; a bare attribute operand of `&&`,
//!   `||`, `!` or a whole filter means `= true` (as in Tempo).
//! - Literals: strings (`"..."` with Go escapes, `` `raw` ``), integers,
//!   floats, durations (`ns us µs ms s m h`, fractions and compounds:
//!   `1.5s`, `1h30m`), `true`, `false`, `nil`, `minInt`, `maxInt`, status
//!   keywords `ok error unset`, kind keywords `unspecified internal server
//!   client producer consumer`; `-` before a number.
//! - Spanset operators `{...} && {...}` (both select spans; result: the
//!   union) and `{...} || {...}`, with parentheses.
//! - Pipelines: `| select(field, ...)`, `| count() OP N`,
//!   `| avg|min|max|sum(field) OP N`, and `| { ... }` (filter the spans of
//!   each spanset); parenthesized pipelines combine with `&&` / `||`.
//!
//! Valid TraceQL beyond that is refused with [`QueryError::Unsupported`]
//! naming the construct: structural operators (`>>`, `>`, `<<`, `<`, `~`,
//! their `!` and `&` forms), `by()`, `coalesce()`, metrics functions,
//! arithmetic, `event.` / `link.` / `instrumentation.` / `parent.` scopes,
//! other intrinsics (`span:id`, `trace:id`, `event:name`, `childCount`...),
//! `with(...)` hints.
//!
//! # Semantics
//!
//! - Regular expressions are Go-style and fully anchored, as in Tempo since
//!   the fast-regexp change: `=~ "post"` is `^(?s:post)$`.
//! - Comparisons are two-valued; a missing field compares false with
//!   everything (so `span.x != "a"` skips spans without `x`, as in Tempo).
//!   Numbers (int, float, duration) compare numerically across types (a
//!   plain number against a duration is nanoseconds: `duration > 1000` is
//!   `duration > 1us`); strings order lexicographically by bytes with `<`,
//!   `>`, ... (like Tempo, `span.code >= "400"`); values of different types
//!   never compare equal or unequal (`span.code != 404` skips a string
//!   `code`). Arrays: `=`, `=~`, ordering match any
//!   element; `!=`, `!~` match when no element does. See [`Value`].
//! - Type errors found when parsing are [`QueryError::Invalid`]:
//!   `duration > "abc"`, `status = 3`, `name =~ 1`, `kind > server`,
//!   `avg(name) > 1`, invalid regular expressions.
//! - Root span: parent span id null or all zeros (the earliest if several);
//!   `traceDuration` = max(end) - min(start) of the trace's spans in the
//!   batch; `rootServiceName` = the root span's string `service.name`
//!   resource attribute.
//! - A trace matches when the query selects at least one of its spans;
//!   `count()` and other aggregates apply to the spans selected so far
//!   (`avg`/`min`/`max`/`sum` over the numeric values among them; none:
//!   the spanset is dropped).
//! - [`from_tags`] turns Tempo's legacy tag search into a query (see there).
//! - [`Query::referenced_fields`] / [`Query::select_columns`] name the fields
//!   to return with matched spans; [`FieldReader`] reads their values.

mod ast;
mod error;
mod eval;
mod lexer;
mod parser;
pub mod plan;
mod prefilter;
mod spans;
mod tags;
mod value;

use std::fmt::{self, Display, Formatter};
use std::str::FromStr;

use arrow::array::RecordBatch;

pub use ast::{
    AggregateFilter, AggregateFunc, AttributeRef, AttributeScope, CompareOp, Comparison, FieldExpr, FieldRef,
    Intrinsic, Literal, Operand, Pattern, SpanKind, SpansetExpr, Stage, StatusCode,
};
pub use error::{EvalError, InvalidQuery, ParseError, Pos, QueryError, UnsupportedError};
pub use eval::{FieldReader, TraceMatch};
pub use parser::{MAX_NESTING, MAX_OPERATORS, MAX_QUERY_BYTES};
pub use plan::{ConditionPlan, PLAN_VERSION, PlanError, QueryPlan};
pub use prefilter::{prefilter_is_exact, span_mask, span_prefilter};
pub use tags::from_tags;
pub use value::Value;

/// A parsed, type-checked TraceQL query.
///
/// [`Display`] prints equivalent TraceQL (normalized: unscoped intrinsic
/// names, literals on the right of comparisons).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    expr: SpansetExpr,
    hints: Hints,
}

/// Query hints: `with(most_recent=true)` after the query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    /// Return the `limit` most recent matching traces, reading everything
    /// in the time range; without it a search returns the first `limit`
    /// matches it finds, reading the newest data first (as Tempo does).
    pub most_recent: bool,
}

impl Query {
    /// Parses and type-checks `text`.
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        parser::parse(text).map(|(expr, hints)| Self { expr, hints })
    }

    pub(crate) fn from_expr(expr: SpansetExpr) -> Self {
        Self {
            expr,
            hints: Hints::default(),
        }
    }

    pub(crate) fn with_hints(expr: SpansetExpr, hints: Hints) -> Self {
        Self { expr, hints }
    }

    /// The query `{ condition }`.
    pub fn from_condition(condition: FieldExpr) -> Self {
        Self::from_expr(SpansetExpr::Filter(Some(condition)))
    }

    /// The condition of a query that is one spanset filter `{ condition }`.
    pub fn as_condition(&self) -> Option<&FieldExpr> {
        match &self.expr {
            SpansetExpr::Filter(Some(condition)) => Some(condition),
            _ => None,
        }
    }

    /// The query's hints.
    pub fn hints(&self) -> Hints {
        self.hints
    }

    /// The query's syntax tree.
    pub fn expr(&self) -> &SpansetExpr {
        &self.expr
    }

    /// The fields of every `select(...)` stage, in query order, without
    /// repetitions.
    pub fn select_columns(&self) -> Vec<FieldRef> {
        let mut out = Vec::new();
        self.expr.visit_selected(&mut |f| push_unique(&mut out, f));
        out
    }

    /// The fields the query's span filters read, in query order, without
    /// repetitions. Tempo returns these (with the selected ones) in each
    /// matched span's `attributes` (intrinsics under their name, e.g.
    /// `status` with value `error`; `duration` is not returned as an
    /// attribute, `name` is the span's `name`).
    pub fn referenced_fields(&self) -> Vec<FieldRef> {
        let mut out = Vec::new();
        self.expr.visit_filter_fields(&mut |f| push_unique(&mut out, f));
        out
    }

    /// Every field the query reads (filters, aggregates, selects).
    pub fn all_fields(&self) -> Vec<FieldRef> {
        let mut out = Vec::new();
        self.expr.visit_all_fields(&mut |f| push_unique(&mut out, f));
        out
    }
}

fn push_unique(out: &mut Vec<FieldRef>, f: &FieldRef) {
    if !out.contains(f) {
        out.push(f.clone());
    }
}

impl FromStr for Query {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Query::parse(s)
    }
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)?;
        if self.hints.most_recent {
            f.write_str(" with (most_recent=true)")?;
        }
        Ok(())
    }
}

/// Parses and type-checks `text` (same as [`Query::parse`]).
pub fn parse(text: &str) -> Result<Query, QueryError> {
    Query::parse(text)
}

/// Evaluates `query` over `spans`, a batch of the span schema holding all
/// spans of one or more whole traces, the rows of each trace contiguous
/// (e.g. sorted by trace id). Returns the matching traces in batch order,
/// each with the rows of the spans the query selected.
///
/// Columns are found by name and may come in other representations of the
/// schema's types (dictionary / large / view strings and binaries, large
/// lists, other timestamp time zones); only the columns the query needs are
/// read, plus `trace_id`, `parent_span_id` and `start_time_unix_nano`.
pub fn evaluate(query: &Query, spans: &RecordBatch) -> Result<Vec<TraceMatch>, EvalError> {
    eval::evaluate(&query.expr, spans)
}

/// The fields of the query's `select(...)` stages (see
/// [`Query::select_columns`]).
pub fn select_columns(query: &Query) -> Vec<FieldRef> {
    query.select_columns()
}

/// The fields the query's filters read (see [`Query::referenced_fields`]).
pub fn referenced_fields(query: &Query) -> Vec<FieldRef> {
    query.referenced_fields()
}
