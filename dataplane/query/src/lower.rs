//! TraceQL span conditions lowered to DataFusion expressions over the
//! columns of their own (`name`, `status_code`, `kind`, `duration_nano`,
//! `service_name`), so the Parquet reader filters with them while it decodes
//! (late materialisation): the attribute lists are then decoded only for the
//! rows that pass.
//!
//! The lowering is conservative: a span the condition selects always passes
//! the expression; the exact condition is evaluated afterwards. Parts that
//! have no column of their own (attributes in lists, regular expressions,
//! negations) lower to nothing, which filters nothing.

use datafusion::prelude::{Expr, col, lit};
use signaldb_schema::columns;
use signaldb_traceql::{AttributeScope, CompareOp, Comparison, FieldExpr, FieldRef, Intrinsic, Literal, Operand};

/// An expression every span meeting `condition` satisfies, or `None` when
/// no part of it can be expressed over a column of its own.
pub(crate) fn lower(condition: &FieldExpr) -> Option<Expr> {
    match condition {
        FieldExpr::Compare(c) => compare(c),
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

fn compare(c: &Comparison) -> Option<Expr> {
    let (Operand::Field(field), Operand::Literal(value)) = (&c.lhs, &c.rhs) else {
        return None;
    };
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
        // The column holds `service.name` when it is a string; other types
        // are never equal or unequal to a string, so skipping them is exact.
        (FieldRef::Attribute(a), Literal::String(s))
            if a.scope == AttributeScope::Resource && a.name == "service.name" && is_equality(c.op) =>
        {
            (columns::SERVICE_NAME, lit(s.clone()))
        }
        _ => return None,
    };
    let column = col(column);
    Some(match c.op {
        CompareOp::Eq => column.eq(value),
        CompareOp::Ne => column.not_eq(value),
        CompareOp::Gt => column.gt(value),
        CompareOp::Ge => column.gt_eq(value),
        CompareOp::Lt => column.lt(value),
        CompareOp::Le => column.lt_eq(value),
        CompareOp::Re | CompareOp::NotRe => return None,
    })
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

    #[test]
    fn columns_of_their_own_are_lowered() {
        assert_eq!(
            lowered(r#"{ resource.service.name = "svc-03" && span.http.response.status_code = 500 }"#).as_deref(),
            Some(r#"service_name = Utf8("svc-03")"#)
        );
        assert_eq!(
            lowered(r#"{ name = "GET /" && status = error && duration > 1s }"#).as_deref(),
            Some(r#"name = Utf8("GET /") AND status_code = Int32(2) AND duration_nano > Int64(1000000000)"#)
        );
        assert_eq!(
            lowered(r#"{ kind = server || resource.service.name != "a" }"#).as_deref(),
            Some(r#"kind = Int32(2) OR service_name != Utf8("a")"#)
        );
    }

    #[test]
    fn the_rest_filters_nothing() {
        assert_eq!(lowered(r#"{ span.attr.str5 = "value-42" }"#), None);
        assert_eq!(lowered(r#"{ kind = server || span.a = 1 }"#), None);
        assert_eq!(lowered(r#"{ !(name = "x") }"#), None);
        assert_eq!(lowered(r#"{ name =~ "GET.*" }"#), None);
        assert_eq!(lowered(r#"{ resource.service.name = 3 }"#), None);
        assert_eq!(lowered(r#"{ name > "a" }"#), None);
    }
}
