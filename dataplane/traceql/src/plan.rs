//! A parsed query as a typed, versioned protobuf message, so the router
//! parses TraceQL once and a querier receives the tree, not text to parse
//! again.
//!
//! Trees travel in postfix order (operands before their operator) as flat
//! lists, never as nested messages: a query may chain 512 operators, more
//! than protobuf decoders nest, and a flat list is decoded with a loop and
//! an explicit stack, however deep the tree. Decoding checks everything the
//! parser checks (types, regular expressions, operator counts), so a
//! malformed or hostile plan is refused with [`PlanError`], never evaluated.

use crate::ast::{
    AggregateFilter, AggregateFunc, AttributeRef, AttributeScope, CompareOp, Comparison, FieldExpr, FieldRef,
    Intrinsic, Literal, Operand, Pattern, SpanKind, SpansetExpr, Stage, StatusCode, Type,
};
use crate::parser::{MAX_OPERATORS, op_valid, types_match};
use crate::{Hints, Query};

/// The plan format this build writes and reads. A querier refuses other
/// versions with a message naming both, so a rolling upgrade fails clearly.
pub const PLAN_VERSION: u32 = 1;

/// A plan that cannot be a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid query plan: {0}")]
pub struct PlanError(String);

fn bad(msg: impl Into<String>) -> PlanError {
    PlanError(msg.into())
}

/// A whole query: its spanset expression and hints.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryPlan {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The spanset expression, postfix.
    #[prost(message, repeated, tag = "2")]
    pub nodes: Vec<SpansetNode>,
    /// `with(most_recent=true)`.
    #[prost(bool, tag = "3")]
    pub most_recent: bool,
}

/// A span condition alone (the inside of `{ ... }`), as tag lookups
/// filtered by a query carry it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConditionPlan {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// Postfix; empty for `{ }`.
    #[prost(message, repeated, tag = "2")]
    pub nodes: Vec<FieldNode>,
}

/// One node of a spanset expression.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpansetNode {
    #[prost(oneof = "spanset_node::Node", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub node: Option<spanset_node::Node>,
}

pub mod spanset_node {
    /// What a [`super::SpansetNode`] is.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Node {
        /// Pushes a spanset filter `{ condition }`.
        #[prost(message, tag = "1")]
        Filter(super::ConditionPlan),
        /// Pops two spanset expressions, pushes `a && b`.
        #[prost(bool, tag = "2")]
        And(bool),
        /// Pops two spanset expressions, pushes `a || b`.
        #[prost(bool, tag = "3")]
        Or(bool),
        /// Pops a spanset expression, pushes it as a pipeline stage.
        #[prost(bool, tag = "4")]
        FilterStage(bool),
        /// Pushes a `select(...)` stage.
        #[prost(message, tag = "5")]
        Select(super::FieldList),
        /// Pushes an aggregate stage (`count() > 3`).
        #[prost(message, tag = "6")]
        Aggregate(super::AggregatePlan),
        /// Pops this many stages and the spanset expression beneath them,
        /// pushes the pipeline `input | stage | ...`.
        #[prost(uint32, tag = "7")]
        Pipeline(u32),
    }
}

/// Fields of a `select(...)`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FieldList {
    #[prost(message, repeated, tag = "1")]
    pub fields: Vec<FieldPlan>,
}

/// `func(field) op value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AggregatePlan {
    /// 1 count, 2 avg, 3 min, 4 max, 5 sum.
    #[prost(uint32, tag = "1")]
    pub func: u32,
    #[prost(message, optional, tag = "2")]
    pub field: Option<FieldPlan>,
    /// See [`op_code`].
    #[prost(uint32, tag = "3")]
    pub op: u32,
    #[prost(message, optional, tag = "4")]
    pub value: Option<LiteralPlan>,
}

/// One node of a span condition.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FieldNode {
    #[prost(oneof = "field_node::Node", tags = "1, 2, 3, 4, 5, 6")]
    pub node: Option<field_node::Node>,
}

pub mod field_node {
    /// What a [`super::FieldNode`] is.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Node {
        /// Pushes a constant.
        #[prost(bool, tag = "1")]
        Constant(bool),
        /// Pushes a comparison.
        #[prost(message, tag = "2")]
        Compare(super::ComparisonPlan),
        /// Pushes `field != nil` (present) or `field = nil`.
        #[prost(message, tag = "3")]
        Exists(super::ExistsPlan),
        /// Pops one, pushes its negation.
        #[prost(bool, tag = "4")]
        Not(bool),
        /// Pops two, pushes `a && b`.
        #[prost(bool, tag = "5")]
        And(bool),
        /// Pops two, pushes `a || b`.
        #[prost(bool, tag = "6")]
        Or(bool),
    }
}

/// `field op literal` or `field op field`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ComparisonPlan {
    #[prost(message, optional, tag = "1")]
    pub lhs: Option<FieldPlan>,
    /// See [`op_code`].
    #[prost(uint32, tag = "2")]
    pub op: u32,
    #[prost(message, optional, tag = "3")]
    pub literal: Option<LiteralPlan>,
    #[prost(message, optional, tag = "4")]
    pub field: Option<FieldPlan>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExistsPlan {
    #[prost(message, optional, tag = "1")]
    pub field: Option<FieldPlan>,
    #[prost(bool, tag = "2")]
    pub present: bool,
}

/// An intrinsic or an attribute.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FieldPlan {
    /// 1 name, 2 status, 3 statusMessage, 4 duration, 5 kind, 6 rootName,
    /// 7 rootServiceName, 8 traceDuration, 9 trace:id, 10 span:id,
    /// 11 event:name, 12 link:traceID; 0 for an attribute.
    #[prost(uint32, tag = "1")]
    pub intrinsic: u32,
    /// 1 span, 2 resource, 3 unscoped (attributes only).
    #[prost(uint32, tag = "2")]
    pub scope: u32,
    #[prost(string, tag = "3")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LiteralPlan {
    #[prost(oneof = "literal_plan::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<literal_plan::Value>,
}

pub mod literal_plan {
    /// A literal's value; status and kind by their OTLP codes.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        String(String),
        #[prost(int64, tag = "2")]
        Int(i64),
        #[prost(double, tag = "3")]
        Float(f64),
        /// Nanoseconds.
        #[prost(int64, tag = "4")]
        Duration(i64),
        #[prost(bool, tag = "5")]
        Bool(bool),
        #[prost(int32, tag = "6")]
        Status(i32),
        #[prost(int32, tag = "7")]
        Kind(i32),
    }
}

// ------------------------------------------------------------- encoding

impl Query {
    /// The query as a plan.
    pub fn to_plan(&self) -> QueryPlan {
        let mut nodes = Vec::new();
        spanset_nodes(self.expr(), &mut nodes);
        QueryPlan {
            version: PLAN_VERSION,
            nodes,
            most_recent: self.hints().most_recent,
        }
    }

    /// The query a plan describes, checked as the parser checks text.
    pub fn from_plan(plan: &QueryPlan) -> Result<Self, PlanError> {
        check_version(plan.version)?;
        let mut budget = MAX_OPERATORS;
        let mut stack: Vec<Item> = Vec::new();
        for node in &plan.nodes {
            use spanset_node::Node;
            let item = match node.node.as_ref().ok_or_else(|| bad("empty spanset node"))? {
                Node::Filter(c) => Item::Spanset(SpansetExpr::Filter(condition_from_nodes(&c.nodes, &mut budget)?)),
                Node::And(_) | Node::Or(_) => {
                    spend(&mut budget)?;
                    let b = pop_spanset(&mut stack)?;
                    let a = pop_spanset(&mut stack)?;
                    Item::Spanset(if matches!(node.node, Some(Node::And(_))) {
                        SpansetExpr::And(Box::new(a), Box::new(b))
                    } else {
                        SpansetExpr::Or(Box::new(a), Box::new(b))
                    })
                }
                Node::FilterStage(_) => Item::Stage(Stage::Filter(pop_spanset(&mut stack)?)),
                Node::Select(list) => Item::Stage(Stage::Select(
                    list.fields.iter().map(field_from).collect::<Result<_, _>>()?,
                )),
                Node::Aggregate(a) => Item::Stage(Stage::Aggregate(aggregate_from(a)?)),
                Node::Pipeline(n) => {
                    let n = usize::try_from(*n).map_err(|_| bad("too many stages"))?;
                    if n == 0 || n > stack.len() {
                        return Err(bad(format!("a pipeline of {n} stages over {} items", stack.len())));
                    }
                    let mut stages = Vec::with_capacity(n);
                    for item in stack.split_off(stack.len() - n) {
                        match item {
                            Item::Stage(s) => stages.push(s),
                            Item::Spanset(_) => return Err(bad("a pipeline stage that is not a stage")),
                        }
                    }
                    for _ in 0..n {
                        spend(&mut budget)?;
                    }
                    Item::Spanset(SpansetExpr::Pipeline(Box::new(pop_spanset(&mut stack)?), stages))
                }
            };
            stack.push(item);
        }
        let expr = pop_spanset(&mut stack)?;
        if !stack.is_empty() {
            return Err(bad(format!("{} items left over", stack.len())));
        }
        Ok(Query::with_hints(
            expr,
            Hints {
                most_recent: plan.most_recent,
            },
        ))
    }
}

impl ConditionPlan {
    /// `condition` as a plan (`None`: `{ }`).
    pub fn new(condition: Option<&FieldExpr>) -> Self {
        let mut nodes = Vec::new();
        if let Some(c) = condition {
            field_nodes(c, &mut nodes);
        }
        Self {
            version: PLAN_VERSION,
            nodes,
        }
    }

    /// The condition, checked (`None`: `{ }`, every span).
    pub fn condition(&self) -> Result<Option<FieldExpr>, PlanError> {
        check_version(self.version)?;
        condition_from_nodes(&self.nodes, &mut { MAX_OPERATORS })
    }
}

fn check_version(version: u32) -> Result<(), PlanError> {
    if version == PLAN_VERSION {
        Ok(())
    } else {
        Err(bad(format!(
            "plan version {version}, this build reads version {PLAN_VERSION}; run the same version on routers and queriers"
        )))
    }
}

fn spend(budget: &mut usize) -> Result<(), PlanError> {
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| bad(format!("more than {MAX_OPERATORS} operators")))?;
    Ok(())
}

enum Item {
    Spanset(SpansetExpr),
    Stage(Stage),
}

fn pop_spanset(stack: &mut Vec<Item>) -> Result<SpansetExpr, PlanError> {
    match stack.pop() {
        Some(Item::Spanset(e)) => Ok(e),
        Some(Item::Stage(_)) => Err(bad("a stage where a spanset expression belongs")),
        None => Err(bad("an operator without its operands")),
    }
}

fn spanset_nodes(expr: &SpansetExpr, out: &mut Vec<SpansetNode>) {
    use spanset_node::Node;
    let push = |out: &mut Vec<SpansetNode>, node| out.push(SpansetNode { node: Some(node) });
    match expr {
        SpansetExpr::Filter(c) => push(out, Node::Filter(ConditionPlan::new(c.as_ref()))),
        SpansetExpr::And(a, b) | SpansetExpr::Or(a, b) => {
            spanset_nodes(a, out);
            spanset_nodes(b, out);
            let and = matches!(expr, SpansetExpr::And(..));
            push(out, if and { Node::And(true) } else { Node::Or(true) });
        }
        SpansetExpr::Pipeline(input, stages) => {
            spanset_nodes(input, out);
            for stage in stages {
                match stage {
                    Stage::Filter(e) => {
                        spanset_nodes(e, out);
                        push(out, Node::FilterStage(true));
                    }
                    Stage::Select(fields) => push(
                        out,
                        Node::Select(FieldList {
                            fields: fields.iter().map(field_plan).collect(),
                        }),
                    ),
                    Stage::Aggregate(a) => push(
                        out,
                        Node::Aggregate(AggregatePlan {
                            func: func_code(a.func),
                            field: a.field.as_ref().map(field_plan),
                            op: op_code(a.op),
                            value: Some(literal_plan(&a.value)),
                        }),
                    ),
                }
            }
            push(out, Node::Pipeline(u32::try_from(stages.len()).unwrap_or(u32::MAX)));
        }
    }
}

fn field_nodes(expr: &FieldExpr, out: &mut Vec<FieldNode>) {
    use field_node::Node;
    let push = |out: &mut Vec<FieldNode>, node| out.push(FieldNode { node: Some(node) });
    match expr {
        FieldExpr::Bool(b) => push(out, Node::Constant(*b)),
        FieldExpr::Compare(c) => {
            let side = |o: &Operand| match o {
                Operand::Field(f) => (Some(field_plan(f)), None),
                Operand::Literal(l) => (None, Some(literal_plan(l))),
            };
            let (lhs, _) = side(&c.lhs);
            let (field, literal) = side(&c.rhs);
            push(
                out,
                Node::Compare(ComparisonPlan {
                    lhs,
                    op: op_code(c.op),
                    literal,
                    field,
                }),
            );
        }
        FieldExpr::Exists { field, present } => push(
            out,
            Node::Exists(ExistsPlan {
                field: Some(field_plan(field)),
                present: *present,
            }),
        ),
        FieldExpr::Not(e) => {
            field_nodes(e, out);
            push(out, Node::Not(true));
        }
        FieldExpr::And(a, b) | FieldExpr::Or(a, b) => {
            field_nodes(a, out);
            field_nodes(b, out);
            let and = matches!(expr, FieldExpr::And(..));
            push(out, if and { Node::And(true) } else { Node::Or(true) });
        }
    }
}

fn condition_from_nodes(nodes: &[FieldNode], budget: &mut usize) -> Result<Option<FieldExpr>, PlanError> {
    use field_node::Node;
    if nodes.is_empty() {
        return Ok(None);
    }
    let mut stack: Vec<FieldExpr> = Vec::new();
    let pop = |stack: &mut Vec<FieldExpr>| stack.pop().ok_or_else(|| bad("an operator without its operands"));
    for node in nodes {
        let expr = match node.node.as_ref().ok_or_else(|| bad("empty condition node"))? {
            Node::Constant(b) => FieldExpr::Bool(*b),
            Node::Compare(c) => FieldExpr::Compare(comparison_from(c)?),
            Node::Exists(e) => FieldExpr::Exists {
                field: field_from(e.field.as_ref().ok_or_else(|| bad("nil check without a field"))?)?,
                present: e.present,
            },
            Node::Not(_) => FieldExpr::Not(Box::new(pop(&mut stack)?)),
            Node::And(_) | Node::Or(_) => {
                spend(budget)?;
                let b = Box::new(pop(&mut stack)?);
                let a = Box::new(pop(&mut stack)?);
                if matches!(node.node, Some(Node::And(_))) {
                    FieldExpr::And(a, b)
                } else {
                    FieldExpr::Or(a, b)
                }
            }
        };
        stack.push(expr);
    }
    let expr = pop(&mut stack)?;
    if !stack.is_empty() {
        return Err(bad(format!("{} conditions left over", stack.len())));
    }
    Ok(Some(expr))
}

/// A comparison, type-checked as the parser checks it; a regular
/// expression is compiled.
fn comparison_from(c: &ComparisonPlan) -> Result<Comparison, PlanError> {
    let lhs = field_from(c.lhs.as_ref().ok_or_else(|| bad("comparison without a field"))?)?;
    let op = op_from(c.op)?;
    let rhs = match (&c.literal, &c.field) {
        (Some(l), None) => Operand::Literal(literal_from(l)?),
        (None, Some(f)) => Operand::Field(field_from(f)?),
        _ => return Err(bad("a comparison needs exactly one right operand")),
    };
    let ty = |o: &Operand| match o {
        Operand::Field(FieldRef::Intrinsic(i)) => i.ty(),
        Operand::Field(FieldRef::Attribute(_)) => Type::Attribute,
        Operand::Literal(l) => l.ty(),
    };
    let (lt, rt) = (ty(&Operand::Field(lhs.clone())), ty(&rhs));
    if !types_match(lt, rt) || !op_valid(op, lt, rt) {
        return Err(bad(format!("{lhs} {op} cannot compare these types")));
    }
    let pattern = match (op, &rhs) {
        (CompareOp::Re | CompareOp::NotRe, Operand::Literal(Literal::String(source))) => {
            Some(Pattern::new(source).map_err(|e| bad(format!("invalid regular expression {source:?}: {e}")))?)
        }
        (CompareOp::Re | CompareOp::NotRe, _) => return Err(bad("a regular expression must be a string literal")),
        _ => None,
    };
    Ok(Comparison {
        lhs: Operand::Field(lhs),
        op,
        rhs,
        pattern,
    })
}

fn aggregate_from(a: &AggregatePlan) -> Result<AggregateFilter, PlanError> {
    let func = match a.func {
        1 => AggregateFunc::Count,
        2 => AggregateFunc::Avg,
        3 => AggregateFunc::Min,
        4 => AggregateFunc::Max,
        5 => AggregateFunc::Sum,
        other => return Err(bad(format!("unknown aggregate {other}"))),
    };
    let field = a.field.as_ref().map(field_from).transpose()?;
    if (func == AggregateFunc::Count) != field.is_none() {
        return Err(bad("count() takes no field; the other aggregates take one"));
    }
    if let Some(FieldRef::Intrinsic(i)) = &field
        && !i.ty().is_numeric()
    {
        return Err(bad(format!(
            "{}({i}) aggregates a field that is not a number",
            func.name()
        )));
    }
    let op = op_from(a.op)?;
    let value = literal_from(a.value.as_ref().ok_or_else(|| bad("aggregate without a value"))?)?;
    if !value.ty().is_numeric() || matches!(op, CompareOp::Re | CompareOp::NotRe) {
        return Err(bad(format!(
            "{}(...) {op} {value} compares with a number only",
            func.name()
        )));
    }
    Ok(AggregateFilter { func, field, op, value })
}

const INTRINSICS: [Intrinsic; 12] = [
    Intrinsic::Name,
    Intrinsic::Status,
    Intrinsic::StatusMessage,
    Intrinsic::Duration,
    Intrinsic::Kind,
    Intrinsic::RootName,
    Intrinsic::RootServiceName,
    Intrinsic::TraceDuration,
    Intrinsic::TraceId,
    Intrinsic::SpanId,
    Intrinsic::EventName,
    Intrinsic::LinkTraceId,
];

fn field_plan(f: &FieldRef) -> FieldPlan {
    match f {
        FieldRef::Intrinsic(i) => FieldPlan {
            intrinsic: INTRINSICS.iter().position(|x| x == i).map_or(0, |p| p as u32 + 1),
            ..FieldPlan::default()
        },
        FieldRef::Attribute(a) => FieldPlan {
            intrinsic: 0,
            scope: match a.scope {
                AttributeScope::Span => 1,
                AttributeScope::Resource => 2,
                AttributeScope::Unscoped => 3,
            },
            name: a.name.clone(),
        },
    }
}

fn field_from(f: &FieldPlan) -> Result<FieldRef, PlanError> {
    if f.intrinsic != 0 {
        let i = usize::try_from(f.intrinsic - 1)
            .ok()
            .and_then(|i| INTRINSICS.get(i))
            .ok_or_else(|| bad(format!("unknown intrinsic {}", f.intrinsic)))?;
        return Ok(FieldRef::Intrinsic(*i));
    }
    let scope = match f.scope {
        1 => AttributeScope::Span,
        2 => AttributeScope::Resource,
        3 => AttributeScope::Unscoped,
        other => return Err(bad(format!("unknown attribute scope {other}"))),
    };
    if f.name.is_empty() {
        return Err(bad("an attribute without a name"));
    }
    Ok(FieldRef::Attribute(AttributeRef::new(scope, f.name.clone())))
}

fn literal_plan(l: &Literal) -> LiteralPlan {
    use literal_plan::Value;
    LiteralPlan {
        value: Some(match l {
            Literal::String(s) => Value::String(s.clone()),
            Literal::Int(n) => Value::Int(*n),
            Literal::Float(x) => Value::Float(*x),
            Literal::Duration(n) => Value::Duration(*n),
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Status(s) => Value::Status(s.code()),
            Literal::Kind(k) => Value::Kind(k.code()),
        }),
    }
}

fn literal_from(l: &LiteralPlan) -> Result<Literal, PlanError> {
    use literal_plan::Value;
    Ok(match l.value.as_ref().ok_or_else(|| bad("empty literal"))? {
        Value::String(s) => Literal::String(s.clone()),
        Value::Int(n) => Literal::Int(*n),
        Value::Float(x) => Literal::Float(*x),
        Value::Duration(n) => Literal::Duration(*n),
        Value::Bool(b) => Literal::Bool(*b),
        Value::Status(c) => Literal::Status(StatusCode::from_code(*c).ok_or_else(|| bad(format!("status {c}")))?),
        Value::Kind(c) => Literal::Kind(SpanKind::from_code(*c).ok_or_else(|| bad(format!("kind {c}")))?),
    })
}

const OPS: [CompareOp; 8] = [
    CompareOp::Eq,
    CompareOp::Ne,
    CompareOp::Gt,
    CompareOp::Ge,
    CompareOp::Lt,
    CompareOp::Le,
    CompareOp::Re,
    CompareOp::NotRe,
];

/// 1 `=`, 2 `!=`, 3 `>`, 4 `>=`, 5 `<`, 6 `<=`, 7 `=~`, 8 `!~`.
fn op_code(op: CompareOp) -> u32 {
    OPS.iter().position(|o| *o == op).map_or(0, |p| p as u32 + 1)
}

fn op_from(code: u32) -> Result<CompareOp, PlanError> {
    code.checked_sub(1)
        .and_then(|i| OPS.get(usize::try_from(i).ok()?))
        .copied()
        .ok_or_else(|| bad(format!("unknown operator {code}")))
}

fn func_code(f: AggregateFunc) -> u32 {
    match f {
        AggregateFunc::Count => 1,
        AggregateFunc::Avg => 2,
        AggregateFunc::Min => 3,
        AggregateFunc::Max => 4,
        AggregateFunc::Sum => 5,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use prost::Message;

    use super::*;

    fn round_trip(q: &str) -> Query {
        let query = crate::parse(q).unwrap();
        let bytes = query.to_plan().encode_to_vec();
        let back = Query::from_plan(&QueryPlan::decode(bytes.as_slice()).unwrap()).unwrap();
        assert_eq!(back, query, "{q}");
        back
    }

    #[test]
    fn every_construct_survives_the_trip() {
        for q in [
            "{ }",
            r#"{ resource.service.name = "svc-03" && span.http.response.status_code = 500 }"#,
            r#"{ name =~ "GET .*" || .a !~ "x" } && { status = error }"#,
            r#"{ !(kind = server) && duration > 1.5s && span.f >= 2.5 && span.b = true }"#,
            r#"{ span.x != nil && resource.y = nil && statusMessage = "boom" && kind != client }"#,
            r#"{ traceDuration > 1s && rootName = "a" && rootServiceName = "b" && .a = .b }"#,
            r#"{ trace:id = "0123" && span:id != "ab" && event:name =~ "exc.*" && link:traceID = "00" }"#,
            r#"({ name = "a" } || { name = "b" }) | select(span.x, resource.y, duration) | count() > 2"#,
            r#"{ } | avg(duration) >= 10ms | { status = ok } | max(span.n) < 3"#,
            r#"{ status = unset } | sum(span.n) != 1 | min(span.m) <= -1 with (most_recent=true)"#,
        ] {
            round_trip(q);
        }
        assert!(round_trip("{ } with (most_recent=true)").hints().most_recent);
    }

    #[test]
    fn the_longest_chain_the_parser_takes_decodes() {
        let q = format!("{{ {} }}", vec!["span.a = 1"; MAX_OPERATORS + 1].join(" && "));
        round_trip(&q);
    }

    #[test]
    fn conditions_travel_alone() {
        let query = crate::parse(r#"{ name = "a" || span.x =~ "y.*" }"#).unwrap();
        let condition = crate::span_prefilter(&query);
        let plan = ConditionPlan::new(condition.as_ref());
        let back = ConditionPlan::decode(plan.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back.condition().unwrap(), condition);
        assert_eq!(ConditionPlan::new(None).condition().unwrap(), None);
    }

    fn err(plan: &QueryPlan) -> String {
        Query::from_plan(plan).unwrap_err().to_string()
    }

    fn filter(nodes: Vec<field_node::Node>) -> QueryPlan {
        QueryPlan {
            version: PLAN_VERSION,
            nodes: vec![SpansetNode {
                node: Some(spanset_node::Node::Filter(ConditionPlan {
                    version: PLAN_VERSION,
                    nodes: nodes.into_iter().map(|n| FieldNode { node: Some(n) }).collect(),
                })),
            }],
            most_recent: false,
        }
    }

    #[test]
    fn malformed_plans_are_refused() {
        let mut plan = crate::parse("{ }").unwrap().to_plan();
        plan.version = 99;
        assert!(err(&plan).contains("plan version 99"), "{}", err(&plan));
        assert!(err(&QueryPlan::default()).contains("plan version 0"));
        let empty = QueryPlan {
            version: PLAN_VERSION,
            ..QueryPlan::default()
        };
        assert!(err(&empty).contains("without its operands"));
        use field_node::Node;
        assert!(err(&filter(vec![Node::And(true)])).contains("without its operands"));
        assert!(err(&filter(vec![Node::Constant(true), Node::Constant(false)])).contains("left over"));
        let name = FieldPlan {
            intrinsic: 1,
            ..FieldPlan::default()
        };
        let compare = |op, value| {
            Node::Compare(ComparisonPlan {
                lhs: Some(name.clone()),
                op,
                literal: Some(LiteralPlan { value: Some(value) }),
                field: None,
            })
        };
        // name > 3: a string and a number.
        assert!(err(&filter(vec![compare(3, literal_plan::Value::Int(3))])).contains("cannot compare"));
        assert!(err(&filter(vec![compare(7, literal_plan::Value::String("(".into()))])).contains("regular expression"));
        assert!(err(&filter(vec![compare(42, literal_plan::Value::String("a".into()))])).contains("operator 42"));
        let chain: Vec<Node> = std::iter::once(Node::Constant(true))
            .chain((0..=MAX_OPERATORS).flat_map(|_| [Node::Constant(true), Node::And(true)]))
            .collect();
        assert!(err(&filter(chain)).contains("operators"));
    }
}
