//! Recursive-descent parser and type checker.
//!
//! Grammar (lowest binding first):
//!
//! ```text
//! query     := pipeline [ "with" "(" hint ( "," hint )* ")" ] EOF
//! hint      := "most_recent" "=" ( "true" | "false" )
//! pipeline  := spansets ( "|" stage )*
//! spansets  := spanand ( "||" spanand )*
//! spanand   := spanprim ( "&&" spanprim )*        structural operators: unsupported
//! spanprim  := "{" [ expr ] "}" | "(" pipeline ")"
//! stage     := "select" "(" field ( "," field )* ")"
//!            | ( "count" "(" ")" | AGG "(" field ")" ) CMP value
//!            | spansets
//!            | "by" / "coalesce" / metrics functions (unsupported)
//! expr      := and ( "||" and )*
//! and       := unary ( "&&" unary )*
//! unary     := "!" unary | cmp
//! cmp       := operand [ CMP operand ]            arithmetic: unsupported
//! operand   := "(" expr ")" | literal | "-" number | field
//! ```

use crate::Hints;
use crate::ast::{
    AggregateFilter, AggregateFunc, AttributeRef, AttributeScope, CompareOp, Comparison, FieldExpr, FieldRef,
    Intrinsic, Literal, Operand, Pattern, SpanKind, SpansetExpr, Stage, StatusCode, Type,
};
use crate::error::{InvalidQuery, ParseError, Pos, QueryError, UnsupportedError};
use crate::lexer::{AttrScope, Tok, tokenize};
use crate::value::{compare, literal_value};

/// The longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// The deepest nesting of parentheses and `!` accepted.
pub const MAX_NESTING: usize = 64;
/// The most binary operators (`&&`, `||`, `|`) one query may hold.
///
/// With [`MAX_NESTING`] this bounds the depth of the syntax tree, so no
/// query can overflow a stack while it is parsed, evaluated or dropped.
pub const MAX_OPERATORS: usize = 512;

/// Parses and type-checks `text`.
pub(crate) fn parse(text: &str) -> Result<(SpansetExpr, Hints), QueryError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(syntax(
            Pos::START,
            format!(
                "query is {} bytes long; at most {MAX_QUERY_BYTES} are accepted",
                text.len()
            ),
        ));
    }
    let mut p = Parser {
        toks: tokenize(text),
        i: 0,
        depth: 0,
        operators: 0,
    };
    p.query()
}

/// An operand before type checking (`nil` is not a [`Literal`]: comparisons
/// with it become [`FieldExpr::Exists`] or constants).
#[derive(Debug, Clone)]
enum Opnd {
    Lit(Literal),
    Nil,
    Field(FieldRef),
}

impl Opnd {
    fn ty(&self) -> Type {
        match self {
            Opnd::Lit(l) => l.ty(),
            Opnd::Nil => Type::Nil,
            Opnd::Field(FieldRef::Intrinsic(i)) => i.ty(),
            Opnd::Field(FieldRef::Attribute(_)) => Type::Attribute,
        }
    }

    fn text(&self) -> String {
        match self {
            Opnd::Lit(l) => l.to_string(),
            Opnd::Nil => "nil".to_owned(),
            Opnd::Field(f) => f.to_string(),
        }
    }
}

/// A parsed piece of a field expression: a boolean expression or a value.
#[derive(Debug, Clone)]
enum Node {
    Pred(FieldExpr),
    Value(Opnd),
}

fn unsupported(pos: Pos, construct: impl Into<String>) -> QueryError {
    QueryError::Unsupported(UnsupportedError::new(pos, construct))
}

fn invalid(pos: Pos, message: impl Into<String>) -> QueryError {
    QueryError::Invalid(InvalidQuery::new(pos, message))
}

fn syntax(pos: Pos, message: impl Into<String>) -> QueryError {
    QueryError::Parse(ParseError::new(pos, message))
}

fn compare_op(tok: &Tok) -> Option<CompareOp> {
    Some(match tok {
        Tok::Eq => CompareOp::Eq,
        Tok::Ne => CompareOp::Ne,
        Tok::Gt => CompareOp::Gt,
        Tok::Ge => CompareOp::Ge,
        Tok::Lt => CompareOp::Lt,
        Tok::Le => CompareOp::Le,
        Tok::Re => CompareOp::Re,
        Tok::NotRe => CompareOp::NotRe,
        _ => return None,
    })
}

fn is_structural(tok: &Tok) -> bool {
    matches!(
        tok,
        Tok::Gt
            | Tok::Lt
            | Tok::Desc
            | Tok::Anc
            | Tok::Tilde
            | Tok::NotDesc
            | Tok::NotAnc
            | Tok::NotChild
            | Tok::NotParent
            | Tok::NotRe
            | Tok::UnionDesc
            | Tok::UnionAnc
            | Tok::UnionChild
            | Tok::UnionParent
            | Tok::UnionSibling
    )
}

fn is_arithmetic(tok: &Tok) -> bool {
    matches!(
        tok,
        Tok::Plus | Tok::Minus | Tok::Star | Tok::Slash | Tok::Percent | Tok::Caret
    )
}

const METRICS_FUNCTIONS: &[&str] = &[
    "rate",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "sum_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
    "topk",
    "bottomk",
];

fn aggregate_func(word: &str) -> Option<AggregateFunc> {
    Some(match word {
        "count" => AggregateFunc::Count,
        "avg" => AggregateFunc::Avg,
        "min" => AggregateFunc::Min,
        "max" => AggregateFunc::Max,
        "sum" => AggregateFunc::Sum,
        _ => return None,
    })
}

fn unscoped_intrinsic(word: &str) -> Option<Intrinsic> {
    Some(match word {
        "name" => Intrinsic::Name,
        "status" => Intrinsic::Status,
        "statusMessage" => Intrinsic::StatusMessage,
        "duration" => Intrinsic::Duration,
        "kind" => Intrinsic::Kind,
        "rootName" => Intrinsic::RootName,
        "rootServiceName" => Intrinsic::RootServiceName,
        "traceDuration" => Intrinsic::TraceDuration,
        _ => return None,
    })
}

fn scoped_intrinsic(scope: &str, name: &str) -> Result<Intrinsic, bool> {
    Ok(match (scope, name) {
        ("span", "name") => Intrinsic::Name,
        ("span", "status") => Intrinsic::Status,
        ("span", "statusMessage") => Intrinsic::StatusMessage,
        ("span", "duration") => Intrinsic::Duration,
        ("span", "kind") => Intrinsic::Kind,
        ("trace", "rootName") => Intrinsic::RootName,
        ("trace", "rootService") => Intrinsic::RootServiceName,
        ("trace", "duration") => Intrinsic::TraceDuration,
        ("trace", "id") => Intrinsic::TraceId,
        ("span", "id") => Intrinsic::SpanId,
        ("event", "name") => Intrinsic::EventName,
        ("link", "traceID") => Intrinsic::LinkTraceId,
        // Known to Tempo, not implemented here: Err(true).
        ("span", "parentID" | "childCount" | "nestedSetLeft" | "nestedSetRight" | "nestedSetParent")
        | ("event", "timeSinceStart")
        | ("link", "spanID")
        | ("instrumentation", "name" | "version") => return Err(true),
        _ => return Err(false),
    })
}

/// Whether values of types `a` and `b` can be compared at all.
pub(crate) fn types_match(a: Type, b: Type) -> bool {
    a == b || a == Type::Attribute || b == Type::Attribute || (a.is_numeric() && b.is_numeric())
}

/// Whether `op` is defined for operands of types `a` and `b`.
pub(crate) fn op_valid(op: CompareOp, a: Type, b: Type) -> bool {
    match op {
        CompareOp::Eq | CompareOp::Ne => true,
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => [a, b]
            .iter()
            .all(|t| matches!(t, Type::String | Type::Attribute) || t.is_numeric()),
        CompareOp::Re | CompareOp::NotRe => [a, b].iter().all(|t| matches!(t, Type::String | Type::Attribute)),
    }
}

struct Parser {
    toks: Vec<(Tok, Pos)>,
    i: usize,
    /// Current nesting of parentheses and `!`.
    depth: usize,
    /// Binary operators seen so far.
    operators: usize,
}

impl Parser {
    /// Runs `f` one nesting level deeper, refusing past [`MAX_NESTING`].
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, QueryError>) -> Result<T, QueryError> {
        if self.depth >= MAX_NESTING {
            return Err(syntax(
                self.pos(),
                format!("query nests parentheses or `!` more than {MAX_NESTING} levels deep"),
            ));
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// Counts one binary operator, refusing past [`MAX_OPERATORS`].
    fn count_operator(&mut self) -> Result<(), QueryError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(syntax(
                self.pos(),
                format!("query has more than {MAX_OPERATORS} operators"),
            ));
        }
        Ok(())
    }

    fn peek(&self) -> &Tok {
        self.toks.get(self.i).map_or(&Tok::Eof, |(t, _)| t)
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        self.toks.get(self.i + ahead).map_or(&Tok::Eof, |(t, _)| t)
    }

    fn pos(&self) -> Pos {
        self.toks
            .get(self.i)
            .or_else(|| self.toks.last())
            .map_or(Pos::START, |(_, p)| *p)
    }

    fn bump(&mut self) -> (Tok, Pos) {
        let pos = self.pos();
        let tok = self.peek().clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        (tok, pos)
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == tok {
            self.bump();
            true
        } else {
            false
        }
    }

    /// The error for the current token when `expecting` was expected.
    fn unexpected(&self, expecting: &str) -> QueryError {
        match self.peek() {
            Tok::Error(e) => QueryError::Parse(e.clone()),
            tok => syntax(
                self.pos(),
                format!("syntax error: unexpected {tok}, expecting {expecting}"),
            ),
        }
    }

    fn expect(&mut self, tok: &Tok, expecting: &str) -> Result<Pos, QueryError> {
        if self.peek() == tok {
            Ok(self.bump().1)
        } else {
            Err(self.unexpected(expecting))
        }
    }

    // ------------------------------------------------------------ spansets

    fn query(&mut self) -> Result<(SpansetExpr, Hints), QueryError> {
        let expr = self.pipeline()?;
        match self.peek() {
            Tok::Eof => Ok((expr, Hints::default())),
            Tok::Word("with") => {
                self.bump();
                let hints = self.hints()?;
                self.expect(&Tok::Eof, "end of query")?;
                Ok((expr, hints))
            }
            Tok::AndAnd | Tok::OrOr if matches!(expr, SpansetExpr::Pipeline(..)) => Err(syntax(
                self.pos(),
                format!(
                    "syntax error: unexpected {} after a pipeline stage (wrap the pipeline in parentheses)",
                    self.peek()
                ),
            )),
            _ => Err(self.unexpected("end of query")),
        }
    }

    /// `(name = value, ...)` after `with`.
    fn hints(&mut self) -> Result<Hints, QueryError> {
        let mut hints = Hints::default();
        self.expect(&Tok::LParen, "`(` after `with`")?;
        loop {
            let pos = self.pos();
            match self.peek() {
                Tok::Word("most_recent") => {
                    self.bump();
                    self.expect(&Tok::Eq, "`=` after a query hint's name")?;
                    hints.most_recent = match self.peek() {
                        Tok::Word("true") => true,
                        Tok::Word("false") => false,
                        _ => return Err(self.unexpected("`true` or `false` for `most_recent`")),
                    };
                    self.bump();
                }
                Tok::Word(name @ ("sample" | "exemplars")) => {
                    return Err(unsupported(pos, format!("query hint `{name}`")));
                }
                _ => return Err(self.unexpected("a query hint (`most_recent`)")),
            }
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {
                    self.bump();
                    return Ok(hints);
                }
                _ => return Err(self.unexpected("`,` or `)` in query hints")),
            }
        }
    }

    fn pipeline(&mut self) -> Result<SpansetExpr, QueryError> {
        let input = self.spanset_or()?;
        let mut stages = Vec::new();
        while self.eat(&Tok::Pipe) {
            self.count_operator()?;
            stages.push(self.stage()?);
        }
        if stages.is_empty() {
            Ok(input)
        } else {
            Ok(SpansetExpr::Pipeline(Box::new(input), stages))
        }
    }

    fn spanset_or(&mut self) -> Result<SpansetExpr, QueryError> {
        let mut lhs = self.spanset_and()?;
        while self.eat(&Tok::OrOr) {
            self.count_operator()?;
            let rhs = self.spanset_and()?;
            lhs = SpansetExpr::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn spanset_and(&mut self) -> Result<SpansetExpr, QueryError> {
        let mut lhs = self.spanset_primary()?;
        loop {
            let tok = self.peek();
            if *tok == Tok::AndAnd {
                self.bump();
                self.count_operator()?;
                let rhs = self.spanset_primary()?;
                lhs = SpansetExpr::And(Box::new(lhs), Box::new(rhs));
            } else if is_structural(tok) {
                return Err(unsupported(self.pos(), format!("structural operator {tok}")));
            } else {
                return Ok(lhs);
            }
        }
    }

    fn spanset_primary(&mut self) -> Result<SpansetExpr, QueryError> {
        match self.peek() {
            Tok::LBrace => self.spanset_filter(),
            Tok::LParen => {
                self.bump();
                self.nested(|p| {
                    let inner = p.pipeline()?;
                    p.expect(&Tok::RParen, "`)`")?;
                    Ok(inner)
                })
            }
            Tok::Word(w) if aggregate_func(w).is_some() => Err(unsupported(
                self.pos(),
                format!("a scalar filter without a spanset before it (write `{{ }} | {w}(...) ...`)"),
            )),
            Tok::Word(w) if METRICS_FUNCTIONS.contains(w) => {
                Err(unsupported(self.pos(), format!("metrics function `{w}()`")))
            }
            _ => Err(self.unexpected("`{`")),
        }
    }

    fn spanset_filter(&mut self) -> Result<SpansetExpr, QueryError> {
        self.expect(&Tok::LBrace, "`{`")?;
        if self.eat(&Tok::RBrace) {
            return Ok(SpansetExpr::Filter(None));
        }
        let pos = self.pos();
        let node = self.expr()?;
        let pred = match node {
            Node::Pred(e) => e,
            Node::Value(v) => self.as_predicate(v, pos, None)?,
        };
        self.expect(&Tok::RBrace, "`}`")?;
        Ok(SpansetExpr::Filter(Some(pred)))
    }

    // --------------------------------------------------------------- stages

    fn stage(&mut self) -> Result<Stage, QueryError> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Word("select") => {
                self.bump();
                self.expect(&Tok::LParen, "`(`")?;
                let mut fields = vec![self.field()?];
                while self.eat(&Tok::Comma) {
                    fields.push(self.field()?);
                }
                self.expect(&Tok::RParen, "`)` or `,`")?;
                Ok(Stage::Select(fields))
            }
            Tok::Word(w) if aggregate_func(w).is_some() => self.aggregate(),
            Tok::Word(w @ ("by" | "coalesce")) => Err(unsupported(pos, format!("`{w}()`"))),
            Tok::Word(w) if METRICS_FUNCTIONS.contains(&w) => {
                Err(unsupported(pos, format!("metrics function `{w}()`")))
            }
            Tok::LBrace | Tok::LParen => Ok(Stage::Filter(self.spanset_or()?)),
            Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) | Tok::Minus => Err(unsupported(
                pos,
                "a scalar filter with the value first (write `count() > 2`)",
            )),
            _ => Err(self.unexpected("a pipeline stage")),
        }
    }

    /// A field (intrinsic or attribute), e.g. an argument of `select`.
    fn field(&mut self) -> Result<FieldRef, QueryError> {
        let pos = self.pos();
        match self.operand()? {
            Node::Value(Opnd::Field(f)) => Ok(f),
            _ => Err(syntax(pos, "syntax error: expecting an intrinsic or an attribute")),
        }
    }

    fn aggregate(&mut self) -> Result<Stage, QueryError> {
        let (tok, pos) = self.bump();
        let func = match tok {
            Tok::Word(w) => aggregate_func(w),
            _ => None,
        }
        .ok_or_else(|| syntax(pos, "syntax error: expecting an aggregate"))?;
        self.expect(&Tok::LParen, "`(`")?;
        let field = if func == AggregateFunc::Count {
            None
        } else {
            Some(self.field()?)
        };
        self.expect(&Tok::RParen, "`)`")?;
        let call = format!(
            "{}({})",
            func.name(),
            field.as_ref().map(ToString::to_string).unwrap_or_default()
        );
        if let Some(FieldRef::Intrinsic(i)) = &field
            && !i.ty().is_numeric()
        {
            return Err(invalid(
                pos,
                format!("aggregate field expressions must resolve to a number type: {call}"),
            ));
        }
        let Some(op) = compare_op(self.peek()) else {
            return Err(unsupported(pos, format!("`{call}` without a comparison")));
        };
        self.bump();
        let value_pos = self.pos();
        let value = match self.operand()? {
            Node::Value(Opnd::Lit(l)) => l,
            Node::Value(Opnd::Nil) => {
                return Err(invalid(
                    value_pos,
                    format!("illegal operation for the given types: {call} {op} nil"),
                ));
            }
            Node::Value(Opnd::Field(f)) => {
                return Err(unsupported(
                    value_pos,
                    format!("comparing `{call}` with the field `{f}`"),
                ));
            }
            Node::Pred(_) => {
                return Err(syntax(value_pos, "syntax error: expecting a number"));
            }
        };
        if !value.ty().is_numeric() {
            return Err(invalid(
                value_pos,
                format!("binary operations must operate on the same type: {call} {op} {value}"),
            ));
        }
        if matches!(op, CompareOp::Re | CompareOp::NotRe) {
            return Err(invalid(
                pos,
                format!("illegal operation for the given types: {call} {op} {value}"),
            ));
        }
        Ok(Stage::Aggregate(AggregateFilter { func, field, op, value }))
    }

    // ---------------------------------------------------- field expressions

    fn expr(&mut self) -> Result<Node, QueryError> {
        let start = self.pos();
        let mut lhs = self.and()?;
        while *self.peek() == Tok::OrOr {
            let (_, op_pos) = self.bump();
            self.count_operator()?;
            let rhs_pos = self.pos();
            let rhs = self.and()?;
            let a = self.predicate(lhs, start, Some(op_pos))?;
            let b = self.predicate(rhs, rhs_pos, Some(op_pos))?;
            lhs = Node::Pred(FieldExpr::Or(Box::new(a), Box::new(b)));
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Node, QueryError> {
        let start = self.pos();
        let mut lhs = self.unary()?;
        while *self.peek() == Tok::AndAnd {
            let (_, op_pos) = self.bump();
            self.count_operator()?;
            let rhs_pos = self.pos();
            let rhs = self.unary()?;
            let a = self.predicate(lhs, start, Some(op_pos))?;
            let b = self.predicate(rhs, rhs_pos, Some(op_pos))?;
            lhs = Node::Pred(FieldExpr::And(Box::new(a), Box::new(b)));
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Node, QueryError> {
        if *self.peek() == Tok::Bang {
            let (_, pos) = self.bump();
            let inner_pos = self.pos();
            let inner = self.nested(Self::unary)?;
            let e = self.predicate(inner, inner_pos, Some(pos))?;
            return Ok(Node::Pred(FieldExpr::Not(Box::new(e))));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Node, QueryError> {
        let lhs_pos = self.pos();
        let lhs = self.operand()?;
        let Some(op) = compare_op(self.peek()) else {
            return Ok(lhs);
        };
        self.bump();
        let rhs_pos = self.pos();
        let rhs = self.operand()?;
        let lhs = self.comparison_operand(lhs, lhs_pos)?;
        let rhs = self.comparison_operand(rhs, rhs_pos)?;
        let expr = self.typed_comparison(lhs, op, rhs, lhs_pos)?;
        if compare_op(self.peek()).is_some() {
            return Err(self.unexpected("`&&`, `||` or `}`"));
        }
        Ok(Node::Pred(expr))
    }

    fn comparison_operand(&self, node: Node, pos: Pos) -> Result<Opnd, QueryError> {
        match node {
            Node::Value(v) => Ok(v),
            Node::Pred(_) => Err(unsupported(pos, "comparing the result of a boolean expression")),
        }
    }

    /// Type-checks `lhs op rhs` and builds the expression for it.
    fn typed_comparison(&self, lhs: Opnd, op: CompareOp, rhs: Opnd, pos: Pos) -> Result<FieldExpr, QueryError> {
        let text = format!("{} {op} {}", lhs.text(), rhs.text());
        // `nil`: existence checks.
        match (&lhs, &rhs) {
            (Opnd::Nil, _) | (_, Opnd::Nil) => {
                let present = match op {
                    CompareOp::Eq => false,
                    CompareOp::Ne => true,
                    _ => return Err(invalid(pos, format!("illegal operation for the given types: {}", text))),
                };
                return Ok(match (lhs, rhs) {
                    (Opnd::Field(field), _) | (_, Opnd::Field(field)) => FieldExpr::Exists { field, present },
                    // nil = nil, literal = nil.
                    (Opnd::Nil, Opnd::Nil) => FieldExpr::Bool(!present),
                    _ => FieldExpr::Bool(present),
                });
            }
            _ => {}
        }
        let (lt, rt) = (lhs.ty(), rhs.ty());
        if !types_match(lt, rt) {
            return Err(invalid(
                pos,
                format!("binary operations must operate on the same type: {}", text),
            ));
        }
        if !op_valid(op, lt, rt) {
            return Err(invalid(pos, format!("illegal operation for the given types: {}", text)));
        }
        if matches!(op, CompareOp::Re | CompareOp::NotRe) {
            let source = match &rhs {
                Opnd::Lit(Literal::String(s)) => s.clone(),
                _ => return Err(unsupported(pos, "a regular expression taken from a field")),
            };
            let pattern = Pattern::new(&source)
                .map_err(|e| invalid(pos, format!("invalid regular expression {source:?}: {e}")))?;
            return Ok(match lhs {
                Opnd::Lit(Literal::String(s)) => FieldExpr::Bool(pattern.is_match(&s) == (op == CompareOp::Re)),
                Opnd::Field(field) => FieldExpr::Compare(Comparison {
                    lhs: Operand::Field(field),
                    op,
                    rhs: Operand::Literal(Literal::String(source)),
                    pattern: Some(pattern),
                }),
                _ => return Err(invalid(pos, format!("illegal operation for the given types: {}", text))),
            });
        }
        Ok(match (lhs, rhs) {
            (Opnd::Lit(a), Opnd::Lit(b)) => FieldExpr::Bool(compare(&literal_value(&a), op, &literal_value(&b), None)),
            (Opnd::Lit(a), Opnd::Field(b)) => match op.mirrored() {
                Some(mirrored) => FieldExpr::Compare(Comparison {
                    lhs: Operand::Field(b),
                    op: mirrored,
                    rhs: Operand::Literal(a),
                    pattern: None,
                }),
                None => {
                    return Err(invalid(
                        pos,
                        "regular expression operators take the pattern on the right",
                    ));
                }
            },
            (Opnd::Field(a), Opnd::Lit(b)) => FieldExpr::Compare(Comparison {
                lhs: Operand::Field(a),
                op,
                rhs: Operand::Literal(b),
                pattern: None,
            }),
            (Opnd::Field(a), Opnd::Field(b)) => FieldExpr::Compare(Comparison {
                lhs: Operand::Field(a),
                op,
                rhs: Operand::Field(b),
                pattern: None,
            }),
            _ => return Err(invalid(pos, format!("illegal operation for the given types: {}", text))),
        })
    }

    /// `node` as a boolean expression, where one is required (operand of
    /// `&&`, `||`, `!`, or a whole filter). A bare attribute means
    /// `attribute = true` (as in Tempo); a bare boolean literal is a
    /// constant; anything else is a type error.
    fn predicate(&self, node: Node, pos: Pos, op_pos: Option<Pos>) -> Result<FieldExpr, QueryError> {
        match node {
            Node::Pred(e) => Ok(e),
            Node::Value(v) => self.as_predicate(v, pos, op_pos),
        }
    }

    fn as_predicate(&self, v: Opnd, pos: Pos, op_pos: Option<Pos>) -> Result<FieldExpr, QueryError> {
        match v {
            Opnd::Lit(Literal::Bool(b)) => Ok(FieldExpr::Bool(b)),
            Opnd::Field(FieldRef::Attribute(a)) => Ok(FieldExpr::Compare(Comparison {
                lhs: Operand::Field(FieldRef::Attribute(a)),
                op: CompareOp::Eq,
                rhs: Operand::Literal(Literal::Bool(true)),
                pattern: None,
            })),
            other => match op_pos {
                Some(_) => Err(invalid(
                    pos,
                    format!(
                        "illegal operation for the given types: {} is not a boolean operand",
                        other.text()
                    ),
                )),
                None => Err(invalid(
                    pos,
                    format!(
                        "span filter field expressions must resolve to a boolean: {}",
                        other.text()
                    ),
                )),
            },
        }
    }

    /// A primary: parenthesized expression, literal, negative number or
    /// field. Refuses arithmetic after it.
    fn operand(&mut self) -> Result<Node, QueryError> {
        let node = self.primary()?;
        if is_arithmetic(self.peek()) {
            return Err(unsupported(self.pos(), format!("arithmetic operator {}", self.peek())));
        }
        Ok(node)
    }

    fn primary(&mut self) -> Result<Node, QueryError> {
        let pos = self.pos();
        let tok = self.peek().clone();
        let value = match tok {
            Tok::LParen => {
                self.bump();
                return self.nested(|p| {
                    let inner = p.expr()?;
                    p.expect(&Tok::RParen, "`)`")?;
                    Ok(inner)
                });
            }
            Tok::Minus => {
                let negated = match self.peek_at(1) {
                    Tok::Int(i) => i.checked_neg().map(Literal::Int),
                    Tok::Float(x) => Some(Literal::Float(-x)),
                    Tok::Duration(d) => d.checked_neg().map(Literal::Duration),
                    _ => return Err(unsupported(pos, "arithmetic negation `-`")),
                };
                self.bump();
                let lit = negated.ok_or_else(|| syntax(pos, "number out of range"))?;
                Opnd::Lit(lit)
            }
            Tok::Str(s) => Opnd::Lit(Literal::String(s)),
            Tok::Int(i) => Opnd::Lit(Literal::Int(i)),
            Tok::Float(x) => Opnd::Lit(Literal::Float(x)),
            Tok::Duration(d) => Opnd::Lit(Literal::Duration(d)),
            Tok::Word(w) => self.word(w, pos)?,
            Tok::ScopedIntrinsic(scope, name) => match scoped_intrinsic(scope, &name) {
                Ok(i) => Opnd::Field(FieldRef::Intrinsic(i)),
                Err(true) => return Err(unsupported(pos, format!("intrinsic `{scope}:{name}`"))),
                Err(false) => return Err(syntax(pos, format!("unknown intrinsic: {scope}:{name}"))),
            },
            Tok::Attr(scope, name) => {
                let scope = match scope {
                    AttrScope::None => AttributeScope::Unscoped,
                    AttrScope::Span => AttributeScope::Span,
                    AttrScope::Resource => AttributeScope::Resource,
                    AttrScope::Event => return Err(unsupported(pos, "the `event.` attribute scope")),
                    AttrScope::Link => return Err(unsupported(pos, "the `link.` attribute scope")),
                    AttrScope::Instrumentation => {
                        return Err(unsupported(pos, "the `instrumentation.` attribute scope"));
                    }
                    AttrScope::Parent => return Err(unsupported(pos, "the `parent.` attribute scope")),
                };
                Opnd::Field(FieldRef::Attribute(AttributeRef { scope, name }))
            }
            _ => return Err(self.unexpected("a field or a value")),
        };
        self.bump();
        Ok(Node::Value(value))
    }

    /// A keyword in operand position.
    fn word(&self, w: &'static str, pos: Pos) -> Result<Opnd, QueryError> {
        if let Some(i) = unscoped_intrinsic(w) {
            return Ok(Opnd::Field(FieldRef::Intrinsic(i)));
        }
        Ok(match w {
            "true" => Opnd::Lit(Literal::Bool(true)),
            "false" => Opnd::Lit(Literal::Bool(false)),
            "nil" => Opnd::Nil,
            "ok" => Opnd::Lit(Literal::Status(StatusCode::Ok)),
            "error" => Opnd::Lit(Literal::Status(StatusCode::Error)),
            "unset" => Opnd::Lit(Literal::Status(StatusCode::Unset)),
            "unspecified" => Opnd::Lit(Literal::Kind(SpanKind::Unspecified)),
            "internal" => Opnd::Lit(Literal::Kind(SpanKind::Internal)),
            "server" => Opnd::Lit(Literal::Kind(SpanKind::Server)),
            "client" => Opnd::Lit(Literal::Kind(SpanKind::Client)),
            "producer" => Opnd::Lit(Literal::Kind(SpanKind::Producer)),
            "consumer" => Opnd::Lit(Literal::Kind(SpanKind::Consumer)),
            "minInt" => Opnd::Lit(Literal::Int(i64::MIN)),
            "maxInt" => Opnd::Lit(Literal::Int(i64::MAX)),
            "childCount" | "nestedSetLeft" | "nestedSetRight" | "nestedSetParent" => {
                return Err(unsupported(pos, format!("intrinsic `{w}`")));
            }
            "parent" => return Err(unsupported(pos, "the `parent` intrinsic")),
            _ => return Err(self.unexpected("a field or a value")),
        })
    }
}

#[cfg(test)]
mod tests;
