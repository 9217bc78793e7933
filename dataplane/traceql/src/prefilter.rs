//! A span-level condition that narrows a search before the whole query is
//! evaluated: every trace the query matches has at least one span that
//! satisfies it. A search first finds the traces with such a span, reading
//! only the columns the condition needs, then evaluates the query over
//! those traces alone.

use arrow::array::{BooleanArray, RecordBatch};

use crate::Query;
use crate::ast::{FieldExpr, FieldRef, SpansetExpr};
use crate::error::EvalError;
use crate::spans::Spans;

/// The condition, or `None` when any span may belong to a matching trace
/// (`{ }`, or filters on trace-level intrinsics such as `rootName`).
pub fn span_prefilter(query: &Query) -> Option<FieldExpr> {
    spanset(query.expr())
}

/// Whether the condition is the whole query: a trace matches exactly when one
/// of its spans satisfies [`span_prefilter`] (a single spanset filter on
/// span-level fields, or `{ }` with every span, possibly followed by
/// `select(...)`).
pub fn prefilter_is_exact(query: &Query) -> bool {
    use crate::ast::Stage;
    let filter_only = |e: &SpansetExpr| match e {
        SpansetExpr::Filter(Some(f)) => span_level(f),
        SpansetExpr::Filter(None) => true,
        _ => false,
    };
    match query.expr() {
        SpansetExpr::Pipeline(input, stages) => {
            filter_only(input) && stages.iter().all(|s| matches!(s, Stage::Select(_)))
        }
        other => filter_only(other),
    }
}

fn spanset(expr: &SpansetExpr) -> Option<FieldExpr> {
    match expr {
        SpansetExpr::Filter(Some(e)) if span_level(e) => Some(e.clone()),
        SpansetExpr::Filter(_) => None,
        // A trace matching `a && b` has a span matching `a` and one matching
        // `b`; one matching either is the condition one span can meet.
        SpansetExpr::And(a, b) | SpansetExpr::Or(a, b) => {
            let (a, b) = (spanset(a)?, spanset(b)?);
            Some(FieldExpr::Or(Box::new(a), Box::new(b)))
        }
        // Later stages only drop spans and spansets the input selected.
        SpansetExpr::Pipeline(input, _) => spanset(input),
    }
}

/// Whether `e` reads only the span's own fields (no trace-level intrinsic).
fn span_level(e: &FieldExpr) -> bool {
    let mut ok = true;
    e.visit_fields(&mut |f| {
        if let FieldRef::Intrinsic(i) = f
            && i.is_trace_level()
        {
            ok = false;
        }
    });
    ok
}

/// Which rows of `spans` satisfy `condition` (a span-level condition such as
/// [`span_prefilter`] returns). Only the columns the condition reads are
/// needed; rows may come in any order.
pub fn span_mask(condition: &FieldExpr, spans: &RecordBatch) -> Result<BooleanArray, EvalError> {
    crate::eval::mask(&Spans::new(spans), condition)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pre(q: &str) -> Option<String> {
        let query = Query::parse(q).unwrap();
        span_prefilter(&query).map(|e| Query::from_expr(SpansetExpr::Filter(Some(e))).to_string())
    }

    /// A condition printed and parsed again is the same condition: how it
    /// reaches the writers.
    #[test]
    fn conditions_survive_printing() {
        for q in [
            r#"{ span.a = "x" && resource.service.name != "y" }"#,
            r#"{ .a =~ "ab.*" || (status = error && duration > 1.5s) }"#,
            r#"{ !(kind = server) && span.n >= -3 && span.f < 2.5 && span.b = true }"#,
            r#"{ name !~ "GET /[a-z]+" && span.x != nil && statusMessage = "a \"q\"" }"#,
            r#"{ span.http.response.status_code = 500 }"#,
        ] {
            let condition = span_prefilter(&Query::parse(q).unwrap()).unwrap();
            let text = Query::from_condition(condition.clone()).to_string();
            let again = Query::parse(&text).unwrap();
            assert_eq!(again.as_condition(), Some(&condition), "{q} printed as {text}");
        }
    }

    #[test]
    fn conditions_one_span_must_meet() {
        assert_eq!(pre("{ }"), None);
        assert_eq!(pre(r#"{ span.a = "x" }"#).as_deref(), Some(r#"{ span.a = "x" }"#));
        assert_eq!(
            pre(r#"{ span.a = "x" } && { status = error }"#).as_deref(),
            Some(r#"{ span.a = "x" || status = error }"#)
        );
        assert_eq!(pre(r#"{ span.a = "x" } && { }"#), None);
        assert_eq!(pre(r#"{ rootName = "x" }"#), None);
        assert_eq!(
            pre(r#"{ span.a = "x" } | count() > 2"#).as_deref(),
            Some(r#"{ span.a = "x" }"#)
        );
    }

    #[test]
    fn exact_only_for_single_span_level_filters() {
        let exact = |q: &str| prefilter_is_exact(&Query::parse(q).unwrap());
        assert!(exact(r#"{ span.a = "x" && duration > 1s }"#));
        assert!(exact(r#"{ span.a = "x" } | select(span.b)"#));
        assert!(exact("{ }"));
        assert!(exact("{ } | select(span.a)"));
        assert!(!exact("{ } | count() > 1"));
        assert!(!exact(r#"{ span.a = "x" } | count() > 1"#));
        assert!(!exact(r#"{ span.a = "x" } && { span.b = 1 }"#));
        assert!(!exact(r#"{ traceDuration > 1s }"#));
    }
}
