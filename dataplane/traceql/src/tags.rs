//! Tempo's legacy tag search (`/api/search?tags=k=v ...&minDuration=&maxDuration=`)
//! expressed as a query.

use crate::Query;
use crate::ast::{
    AttributeRef, AttributeScope, CompareOp, Comparison, FieldExpr, FieldRef, Intrinsic, Literal, Operand, Pattern,
    SpansetExpr, StatusCode,
};

/// Resource attributes Tempo keeps in dedicated columns and matches by
/// substring.
const RESOURCE_SUBSTRING_KEYS: &[&str] = &[
    "service.name",
    "cluster",
    "namespace",
    "pod",
    "container",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
];

/// Span attributes Tempo keeps in dedicated columns and matches by
/// substring.
const SPAN_SUBSTRING_KEYS: &[&str] = &["http.method", "http.url"];

fn field_compare(field: FieldRef, op: CompareOp, value: Literal) -> FieldExpr {
    FieldExpr::Compare(Comparison {
        lhs: Operand::Field(field),
        op,
        rhs: Operand::Literal(value),
        pattern: None,
    })
}

/// `field` is a string containing `needle` (case-sensitive).
fn contains(field: FieldRef, needle: &str) -> FieldExpr {
    let source = format!(".*{}.*", regex::escape(needle));
    match Pattern::new(&source) {
        Ok(pattern) => FieldExpr::Compare(Comparison {
            lhs: Operand::Field(field),
            op: CompareOp::Re,
            rhs: Operand::Literal(Literal::String(source)),
            pattern: Some(pattern),
        }),
        // Only a value too large for the regex engine gets here: fall back
        // to equality, which is as strict as the substring test allows.
        Err(_) => field_compare(field, CompareOp::Eq, Literal::String(needle.to_owned())),
    }
}

fn attribute(scope: AttributeScope, key: &str) -> FieldRef {
    FieldRef::Attribute(AttributeRef::new(scope, key))
}

/// The condition one `key=value` tag puts on a span.
fn tag_condition(key: &str, value: &str) -> FieldExpr {
    match key {
        "root.name" => contains(FieldRef::Intrinsic(Intrinsic::RootName), value),
        "root.service.name" => contains(FieldRef::Intrinsic(Intrinsic::RootServiceName), value),
        "name" => contains(FieldRef::Intrinsic(Intrinsic::Name), value),
        "status.code" => {
            let status = match value {
                "ok" => StatusCode::Ok,
                "error" => StatusCode::Error,
                // Tempo looks the value up in {unset, ok, error} and uses
                // the zero value (unset) for anything else.
                _ => StatusCode::Unset,
            };
            field_compare(
                FieldRef::Intrinsic(Intrinsic::Status),
                CompareOp::Eq,
                Literal::Status(status),
            )
        }
        "http.status_code" if value.parse::<i64>().is_ok() => {
            let code = value.parse::<i64>().unwrap_or_default();
            field_compare(attribute(AttributeScope::Span, key), CompareOp::Eq, Literal::Int(code))
        }
        k if RESOURCE_SUBSTRING_KEYS.contains(&k) => contains(attribute(AttributeScope::Resource, key), value),
        k if SPAN_SUBSTRING_KEYS.contains(&k) => contains(attribute(AttributeScope::Span, key), value),
        _ => FieldExpr::Or(
            Box::new(field_compare(
                attribute(AttributeScope::Span, key),
                CompareOp::Eq,
                Literal::String(value.to_owned()),
            )),
            Box::new(field_compare(
                attribute(AttributeScope::Resource, key),
                CompareOp::Eq,
                Literal::String(value.to_owned()),
            )),
        ),
    }
}

/// A query implementing Tempo's tag search: `tags` are the `key=value`
/// pairs of the `tags` parameter (logfmt already parsed), `min_duration` /
/// `max_duration` the `minDuration` / `maxDuration` parameters in
/// nanoseconds.
///
/// A trace matches when every tag is satisfied by some span of the trace
/// (different tags may be satisfied by different spans, as in Tempo, which
/// joins the conditions at trace level), and its duration is within the
/// bounds:
///
/// - `name`: the span name contains the value (Tempo matches its dedicated
///   columns by substring, case-sensitively).
/// - `service.name`, `cluster`, `namespace`, `pod`, `container`,
///   `k8s.cluster.name`, `k8s.namespace.name`, `k8s.pod.name`,
///   `k8s.container.name`: the string resource attribute contains the value.
/// - `http.method`, `http.url`: the string span attribute contains the value.
/// - `http.status_code`: if the value is an integer, the integer span
///   attribute equals it; otherwise as any other key.
/// - `root.name`, `root.service.name`: the trace's root span name / root
///   service name contains the value.
/// - `status.code`: `ok`, `error` or `unset` compared with the span status
///   (any other value means `unset`, as in Tempo).
/// - Any other key: a span attribute or a resource attribute of that key
///   has exactly the value as a string (other types never match).
/// - `min_duration` / `max_duration`: bounds (inclusive) on the trace
///   duration, max(end) - min(start) of its spans. `None` or `Some(0)`: no
///   bound (Tempo ignores zero).
///
/// Deviation: Tempo requires all the "any other key" conditions to hold
/// within one resource (batch) of the trace; here they may hold in
/// different resources of the same trace.
///
/// The query's [`Display`](std::fmt::Display) is equivalent TraceQL.
pub fn from_tags(tags: &[(String, String)], min_duration: Option<u64>, max_duration: Option<u64>) -> Query {
    let mut filters: Vec<SpansetExpr> = tags
        .iter()
        .map(|(k, v)| SpansetExpr::Filter(Some(tag_condition(k, v))))
        .collect();
    let bound = |d: Option<u64>| d.filter(|d| *d > 0).map(|d| i64::try_from(d).unwrap_or(i64::MAX));
    let trace_duration = || FieldRef::Intrinsic(Intrinsic::TraceDuration);
    let mut duration: Option<FieldExpr> = None;
    for (op, d) in [
        (CompareOp::Ge, bound(min_duration)),
        (CompareOp::Le, bound(max_duration)),
    ] {
        if let Some(d) = d {
            let cond = field_compare(trace_duration(), op, Literal::Duration(d));
            duration = Some(match duration {
                Some(prev) => FieldExpr::And(Box::new(prev), Box::new(cond)),
                None => cond,
            });
        }
    }
    if let Some(d) = duration {
        filters.push(SpansetExpr::Filter(Some(d)));
    }
    let mut filters = filters.into_iter();
    let root = match filters.next() {
        None => SpansetExpr::Filter(None),
        Some(first) => filters.fold(first, |acc, f| SpansetExpr::And(Box::new(acc), Box::new(f))),
    };
    Query::from_expr(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn translations() {
        assert_eq!(from_tags(&[], None, None).to_string(), "{ }");
        assert_eq!(
            from_tags(&tags(&[("service.name", "golden-grpc-svc")]), Some(500_000_000), None).to_string(),
            r#"{ resource.service.name =~ ".*golden\\-grpc\\-svc.*" } && { traceDuration >= 500ms }"#
        );
        assert_eq!(
            from_tags(
                &tags(&[("http.status_code", "200"), ("db.system", "postgresql")]),
                None,
                None
            )
            .to_string(),
            r#"{ span.http.status_code = 200 } && { span.db.system = "postgresql" || resource.db.system = "postgresql" }"#
        );
        assert_eq!(
            from_tags(
                &tags(&[("status.code", "error"), ("root.name", "GET")]),
                Some(0),
                Some(200_000_000)
            )
            .to_string(),
            r#"{ status = error } && { rootName =~ ".*GET.*" } && { traceDuration <= 200ms }"#
        );
        assert_eq!(
            from_tags(&tags(&[("http.status_code", "abc")]), None, None).to_string(),
            r#"{ span.http.status_code = "abc" || resource.http.status_code = "abc" }"#
        );
    }

    #[test]
    fn translations_reparse_to_the_same_query() {
        let q = from_tags(
            &tags(&[("name", "a.b (c)"), ("status.code", "nope"), ("x y", "\"q\"")]),
            Some(1),
            Some(2),
        );
        let text = q.to_string();
        assert_eq!(Query::parse(&text).unwrap(), q, "{text}");
    }
}
