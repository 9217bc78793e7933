//! TraceQL span conditions lowered to DataFusion expressions over the
//! columns of their own (`name`, `status_code`, `kind`, `duration_nano`,
//! `service_name` and the dedicated attribute columns), so the Parquet
//! reader filters with them while it decodes (late materialisation), with
//! statistics.
//!
//! [`lower`] is conservative: a span the condition selects always passes
//! the expression, and the exact condition is evaluated afterwards over the
//! rows that pass. Regular expressions on string columns are anchored as
//! TraceQL anchors them. Parts without a column of their own (attributes in
//! lists, negations) lower to nothing, which filters
//! nothing. [`lower_exact`] succeeds only when every part has a column of its
//! own and the expression selects exactly the spans the condition does; then
//! the attribute lists need not be read at all.

use datafusion::logical_expr::{Operator, binary_expr};
use datafusion::prelude::{Expr, col, lit};
use datafusion::scalar::ScalarValue;
use signaldb_schema::columns::{self, DEDICATED, DedicatedType};
use signaldb_traceql::{AttributeScope, CompareOp, Comparison, FieldExpr, FieldRef, Intrinsic, Literal, Operand};

/// An expression every span meeting `condition` satisfies, or `None` when
/// no part of it can be expressed over a column of its own.
pub(crate) fn lower(condition: &FieldExpr) -> Option<Expr> {
    match condition {
        FieldExpr::Compare(c) => compare(c).map(|(e, _)| e),
        // Both must hold: either one alone is a weaker, still sound filter.
        FieldExpr::And(a, b) => match (lower(a), lower(b)) {
            (Some(a), Some(b)) => Some(a.and(b)),
            (a, b) => a.or(b),
        },
        // Either may hold: only when both sides lower.
        FieldExpr::Or(a, b) => Some(lower(a)?.or(lower(b)?)),
        FieldExpr::Bool(_) | FieldExpr::Exists { .. } | FieldExpr::Not(_) => None,
    }
}

/// An expression selecting exactly the spans meeting `condition`, or
/// `None` when some part has no exact column form.
pub(crate) fn lower_exact(condition: &FieldExpr) -> Option<Expr> {
    match condition {
        FieldExpr::Compare(c) => match compare(c)? {
            (e, true) => Some(e),
            (_, false) => None,
        },
        FieldExpr::And(a, b) => Some(lower_exact(a)?.and(lower_exact(b)?)),
        FieldExpr::Or(a, b) => Some(lower_exact(a)?.or(lower_exact(b)?)),
        FieldExpr::Bool(_) | FieldExpr::Exists { .. } | FieldExpr::Not(_) => None,
    }
}

/// Largest integer a `Float64` column holds exactly.
const EXACT_IN_F64: i64 = 1 << 53;

/// The expression of one comparison, and whether it is exact.
fn compare(c: &Comparison) -> Option<(Expr, bool)> {
    let (Operand::Field(field), Operand::Literal(value)) = (&c.lhs, &c.rhs) else {
        return None;
    };
    if let (CompareOp::Re | CompareOp::NotRe, Some(pattern)) = (c.op, &c.pattern) {
        // Anchored as TraceQL anchors it; a null (the attribute missing or
        // not a string) matches neither `=~` nor `!~`, as in TraceQL.
        let op = if c.op == CompareOp::Re {
            Operator::RegexMatch
        } else {
            Operator::RegexNotMatch
        };
        let anchored = lit(format!("^(?s:{})$", pattern.source()));
        return Some((binary_expr(col(string_column(field)?), op, anchored), true));
    }
    let (column, value) = match (field, value) {
        (FieldRef::Intrinsic(Intrinsic::Name), Literal::String(s)) if is_equality(c.op) => {
            (columns::NAME, lit(s.clone()))
        }
        (FieldRef::Intrinsic(Intrinsic::Status), Literal::Status(s)) if is_equality(c.op) => {
            (columns::STATUS_CODE, lit(s.code()))
        }
        (FieldRef::Intrinsic(Intrinsic::Kind), Literal::Kind(k)) if is_equality(c.op) => (columns::KIND, lit(k.code())),
        (FieldRef::Intrinsic(Intrinsic::Duration), Literal::Duration(n) | Literal::Int(n)) => {
            (columns::DURATION_NANO, lit(*n))
        }
        // Ids compare as lowercase hex: a literal that is not one never
        // equals any span's.
        (FieldRef::Intrinsic(i @ (Intrinsic::TraceId | Intrinsic::SpanId)), Literal::String(s))
            if is_equality(c.op) =>
        {
            let (column, len) = match i {
                Intrinsic::TraceId => (columns::TRACE_ID, 16),
                _ => (columns::SPAN_ID, 8),
            };
            let value = match lowercase_hex(s, len) {
                Some(bytes) => lit(ScalarValue::FixedSizeBinary(len as i32, Some(bytes))),
                None => return Some((lit(c.op == CompareOp::Ne), true)),
            };
            (column, value)
        }
        // The column holds `service.name` when it is a string; other types
        // are never equal or unequal to a string, so skipping them is exact.
        (FieldRef::Attribute(a), Literal::String(s))
            if a.scope == AttributeScope::Resource && a.name == "service.name" && is_equality(c.op) =>
        {
            (columns::SERVICE_NAME, lit(s.clone()))
        }
        // Span attributes with a column of their own (not unscoped ones:
        // `.x` also matches a resource attribute `x`).
        (FieldRef::Attribute(a), literal) if a.scope == AttributeScope::Span => {
            let dedicated = DEDICATED.iter().find(|d| d.attribute == a.name)?;
            match (dedicated.kind, literal) {
                (DedicatedType::String, Literal::String(s)) if is_equality(c.op) => (dedicated.column, lit(s.clone())),
                // Numbers compare as TraceQL compares an integer or double
                // attribute with a number; `!=` is left out (TraceQL holds
                // it for NaN, which the column stores as null).
                (DedicatedType::Number, Literal::Int(n))
                    if n.unsigned_abs() <= EXACT_IN_F64.unsigned_abs() && c.op != CompareOp::Ne =>
                {
                    (dedicated.column, lit(*n as f64))
                }
                (DedicatedType::Number, Literal::Float(x)) if x.is_finite() && c.op != CompareOp::Ne => {
                    (dedicated.column, lit(*x))
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    let column = col(column);
    let expr = match c.op {
        CompareOp::Eq => column.eq(value),
        CompareOp::Ne => column.not_eq(value),
        CompareOp::Gt => column.gt(value),
        CompareOp::Ge => column.gt_eq(value),
        CompareOp::Lt => column.lt(value),
        CompareOp::Le => column.lt_eq(value),
        CompareOp::Re | CompareOp::NotRe => return None,
    };
    Some((expr, true))
}

/// The column holding `field` when it is a string: the span name,
/// `resource.service.name`, or a span attribute's dedicated string column.
fn string_column(field: &FieldRef) -> Option<&'static str> {
    match field {
        FieldRef::Intrinsic(Intrinsic::Name) => Some(columns::NAME),
        FieldRef::Attribute(a) if a.scope == AttributeScope::Resource && a.name == "service.name" => {
            Some(columns::SERVICE_NAME)
        }
        FieldRef::Attribute(a) if a.scope == AttributeScope::Span => DEDICATED
            .iter()
            .find(|d| d.attribute == a.name && d.kind == DedicatedType::String)
            .map(|d| d.column),
        _ => None,
    }
}

/// The `len` bytes `s` spells as lowercase hex, or `None`.
fn lowercase_hex(s: &str, len: usize) -> Option<Vec<u8>> {
    if s.len() != len * 2 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    (0..len)
        .map(|i| u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect()
}

fn is_equality(op: CompareOp) -> bool {
    matches!(op, CompareOp::Eq | CompareOp::Ne)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lowered(q: &str) -> Option<String> {
        let query = signaldb_traceql::parse(q).unwrap();
        let condition = signaldb_traceql::span_prefilter(&query)?;
        lower(&condition).map(|e| e.to_string())
    }

    fn exact(q: &str) -> Option<String> {
        let query = signaldb_traceql::parse(q).unwrap();
        lower_exact(&signaldb_traceql::span_prefilter(&query)?).map(|e| e.to_string())
    }

    #[test]
    fn columns_of_their_own_are_lowered() {
        assert_eq!(
            lowered(r#"{ resource.service.name = "svc-03" && span.http.response.status_code = 500 }"#).as_deref(),
            Some(r#"service_name = Utf8("svc-03") AND http_response_status_code = Float64(500)"#)
        );
        assert_eq!(
            exact(r#"{ resource.service.name = "svc-03" && span.http.response.status_code = 500 }"#).as_deref(),
            Some(r#"service_name = Utf8("svc-03") AND http_response_status_code = Float64(500)"#)
        );
        assert_eq!(
            exact(r#"{ span.http.request.method = "GET" || span.db.system != "redis" }"#).as_deref(),
            Some(r#"http_request_method = Utf8("GET") OR db_system != Utf8("redis")"#)
        );
        assert_eq!(
            lowered(r#"{ name = "GET /" && status = error && duration > 1s }"#).as_deref(),
            Some(r#"name = Utf8("GET /") AND status_code = Int32(2) AND duration_nano > Int64(1000000000)"#)
        );
        assert_eq!(
            exact(r#"{ name =~ "GET.*" || span.http.route !~ "/a" }"#).as_deref(),
            Some(r#"name ~ Utf8("^(?s:GET.*)$") OR http_route !~ Utf8("^(?s:/a)$")"#)
        );
        assert_eq!(
            lowered(r#"{ kind = server || resource.service.name != "a" }"#).as_deref(),
            Some(r#"kind = Int32(2) OR service_name != Utf8("a")"#)
        );
    }

    #[test]
    fn only_whole_column_conditions_are_exact() {
        assert_eq!(exact(r#"{ span.attr.str5 = "value-42" }"#), None);
        assert_eq!(exact(r#"{ name = "x" && span.attr.str5 = "value-42" }"#), None);
        assert!(lowered(r#"{ name = "x" && span.attr.str5 = "value-42" }"#).is_some());
        // Unscoped: may be a resource attribute.
        assert_eq!(exact(r#"{ .http.request.method = "GET" }"#), None);
        assert_eq!(exact(r#"{ span.http.response.status_code != 500 }"#), None);
        assert_eq!(exact(r#"{ span.http.response.status_code = "500" }"#), None);
        assert_eq!(exact(r#"{ span.http.response.status_code =~ "5.*" }"#), None);
        assert_eq!(exact(r#"{ .http.route =~ "/a.*" }"#), None);
    }

    #[test]
    fn the_rest_filters_nothing() {
        assert_eq!(lowered(r#"{ span.attr.str5 = "value-42" }"#), None);
        assert_eq!(lowered(r#"{ kind = server || span.a = 1 }"#), None);
        assert_eq!(lowered(r#"{ !(name = "x") }"#), None);
        assert_eq!(lowered(r#"{ span.attr.str5 =~ "value-4.*" }"#), None);
        assert_eq!(lowered(r#"{ resource.service.name = 3 }"#), None);
        assert_eq!(lowered(r#"{ name > "a" }"#), None);
    }

    /// Spans of every shape the exact conditions look at: the attribute
    /// missing, of another type, a double, NaN, repeated; resource service
    /// names present, missing and not strings.
    fn varied_spans() -> arrow_array::RecordBatch {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
        let kv = |k: &str, v: Value| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let code = |v: Value| kv("http.response.status_code", v);
        let s = |v: &str| Value::StringValue(v.into());
        let attribute_sets: Vec<Vec<KeyValue>> = vec![
            vec![],
            vec![code(Value::IntValue(500)), kv("http.request.method", s("GET"))],
            vec![code(Value::IntValue(200)), kv("http.request.method", s("POST"))],
            vec![code(Value::DoubleValue(500.0))],
            vec![code(Value::DoubleValue(499.5))],
            vec![code(Value::DoubleValue(f64::NAN))],
            vec![code(s("500")), kv("http.request.method", Value::IntValue(3))],
            vec![code(Value::IntValue(404)), code(Value::IntValue(500))],
            vec![
                kv("http.route", s("/a")),
                kv("db.system", s("redis")),
                kv("rpc.service", s("Foo")),
            ],
            vec![kv("http.route", s("/b")), kv("db.system", Value::BoolValue(true))],
            vec![kv("db.system", s("mysql"))],
        ];
        let services = [Some(s("svc-03")), Some(s("svc-04")), Some(Value::IntValue(3)), None];
        let mut resource_spans = Vec::new();
        let mut n = 0u8;
        for service in &services {
            let mut spans = Vec::new();
            for attributes in &attribute_sets {
                n += 1;
                spans.push(Span {
                    trace_id: vec![n; 16],
                    span_id: vec![n; 8],
                    name: if n.is_multiple_of(3) {
                        "GET /".into()
                    } else {
                        "other".into()
                    },
                    kind: i32::from(n % 4),
                    start_time_unix_nano: 1_000,
                    end_time_unix_nano: 1_000 + u64::from(n) * 100_000_000,
                    status: Some(Status {
                        code: i32::from(n % 3),
                        ..Default::default()
                    }),
                    attributes: attributes.clone(),
                    ..Default::default()
                });
            }
            resource_spans.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: service.iter().map(|v| kv("service.name", v.clone())).collect(),
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        signaldb_schema::traces::otlp_to_arrow(&resource_spans).unwrap()
    }

    /// Where an exact expression exists, DataFusion selects the very spans
    /// the TraceQL evaluator does.
    #[tokio::test]
    async fn exact_expressions_select_what_traceql_selects() {
        use std::sync::Arc;

        use arrow_array::Array;
        let batch = varied_spans();
        let ctx = datafusion::prelude::SessionContext::new();
        let table = datafusion::datasource::MemTable::try_new(batch.schema(), vec![vec![batch.clone()]]).unwrap();
        let span_ids = |b: &arrow_array::RecordBatch| -> Vec<Vec<u8>> {
            let ids = b
                .column_by_name(columns::SPAN_ID)
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::FixedSizeBinaryArray>()
                .unwrap();
            let mut v: Vec<Vec<u8>> = ids.iter().map(|i| i.unwrap().to_vec()).collect();
            v.sort();
            v
        };
        let df = ctx.read_table(Arc::new(table)).unwrap();
        for q in [
            r#"{ resource.service.name = "svc-03" && span.http.response.status_code = 500 }"#,
            r#"{ resource.service.name != "svc-03" }"#,
            r#"{ span.http.response.status_code >= 499.5 }"#,
            r#"{ span.http.response.status_code < 500 || span.http.request.method = "POST" }"#,
            r#"{ span.http.request.method != "GET" }"#,
            r#"{ span.http.route = "/a" && span.db.system = "redis" && span.rpc.service = "Foo" }"#,
            r#"{ span.db.system != "redis" }"#,
            r#"{ name = "GET /" && status = error || kind = server && duration > 500ms }"#,
            r#"{ status != ok && duration <= 1s }"#,
            r#"{ name =~ "GET.*" }"#,
            r#"{ name !~ "GET.*" && resource.service.name =~ "svc-0[34]" }"#,
            r#"{ span.http.route =~ "/a|/b" || span.db.system !~ "red.s" }"#,
            r#"{ span.http.request.method =~ "G.T" }"#,
            r#"{ trace:id = "05050505050505050505050505050505" || span:id = "0707070707070707" }"#,
            r#"{ trace:id != "05050505050505050505050505050505" && span:id != "07" }"#,
        ] {
            let query = signaldb_traceql::parse(q).unwrap();
            let condition = signaldb_traceql::span_prefilter(&query).unwrap();
            let expr = lower_exact(&condition).unwrap_or_else(|| panic!("{q} has an exact form"));
            let mask = signaldb_traceql::span_mask(&condition, &batch).unwrap();
            let keep: arrow_array::BooleanArray = (0..mask.len())
                .map(|i| Some(mask.is_valid(i) && mask.value(i)))
                .collect();
            let expected = span_ids(&arrow::compute::filter_record_batch(&batch, &keep).unwrap());
            let got = df.clone().filter(expr).unwrap().collect().await.unwrap();
            let got = span_ids(&arrow::compute::concat_batches(&batch.schema(), &got).unwrap());
            assert_eq!(got, expected, "{q}");
            assert!(!expected.is_empty(), "{q} selects something");
        }
    }
}
