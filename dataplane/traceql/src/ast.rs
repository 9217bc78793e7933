//! The typed syntax tree of a (supported) TraceQL query.
//!
//! Trees are built by the parser (and by [`from_tags`](crate::from_tags)),
//! which type-checks them and compiles regular expressions; they can be
//! inspected but not built from outside the crate. [`Display`] prints a tree
//! back as TraceQL that parses to the same tree.

use std::fmt::{self, Display, Formatter};

use regex::Regex;

/// An intrinsic field: a property every span (or trace) has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Intrinsic {
    /// `name`, `span:name`: the span name (string).
    Name,
    /// `status`, `span:status`: the span status (`ok`, `error`, `unset`).
    Status,
    /// `statusMessage`, `span:statusMessage`: the status message (string).
    StatusMessage,
    /// `duration`, `span:duration`: end - start of the span (duration).
    Duration,
    /// `kind`, `span:kind`: the span kind (`server`, `client`, ...).
    Kind,
    /// `rootName`, `trace:rootName`: the name of the trace's root span
    /// (string; nil when the trace has no root span).
    RootName,
    /// `rootServiceName`, `trace:rootService`: the `service.name` resource
    /// attribute of the trace's root span (string; nil when there is no root
    /// span or it has no string `service.name`).
    RootServiceName,
    /// `traceDuration`, `trace:duration`: max(end) - min(start) over the
    /// trace's spans (duration).
    TraceDuration,
    /// `trace:id`: the trace id as 32 lowercase hex digits (string).
    TraceId,
    /// `span:id`: the span id as 16 lowercase hex digits (string).
    SpanId,
    /// `event:name`: the names of the span's events; a comparison holds
    /// when one of them satisfies it (`!=`, `!~`: when none is equal or
    /// matches).
    EventName,
    /// `link:traceID`: the trace ids (hex) of the span's links, compared
    /// as `event:name` is.
    LinkTraceId,
}

impl Intrinsic {
    /// The unscoped TraceQL name (`name`, `status`, ..., `traceDuration`).
    pub fn name(self) -> &'static str {
        match self {
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Duration => "duration",
            Intrinsic::Kind => "kind",
            Intrinsic::RootName => "rootName",
            Intrinsic::RootServiceName => "rootServiceName",
            Intrinsic::TraceDuration => "traceDuration",
            Intrinsic::TraceId => "trace:id",
            Intrinsic::SpanId => "span:id",
            Intrinsic::EventName => "event:name",
            Intrinsic::LinkTraceId => "link:traceID",
        }
    }

    /// Whether the value is the same for every span of a trace.
    pub fn is_trace_level(self) -> bool {
        matches!(
            self,
            Intrinsic::RootName | Intrinsic::RootServiceName | Intrinsic::TraceDuration
        )
    }

    pub(crate) fn ty(self) -> Type {
        match self {
            Intrinsic::Name
            | Intrinsic::StatusMessage
            | Intrinsic::RootName
            | Intrinsic::RootServiceName
            | Intrinsic::TraceId
            | Intrinsic::SpanId
            | Intrinsic::EventName
            | Intrinsic::LinkTraceId => Type::String,
            Intrinsic::Status => Type::Status,
            Intrinsic::Kind => Type::Kind,
            Intrinsic::Duration | Intrinsic::TraceDuration => Type::Duration,
        }
    }
}

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttributeScope {
    /// `span.x`: span attributes.
    Span,
    /// `resource.x`: resource attributes.
    Resource,
    /// `.x`: the span attribute if the span has one named `x` (of any type),
    /// else the resource attribute.
    Unscoped,
}

/// An attribute reference such as `span.http.method`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttributeRef {
    /// Where it is looked up.
    pub scope: AttributeScope,
    /// The attribute key, e.g. `http.method` (unquoted).
    pub name: String,
}

impl AttributeRef {
    /// A reference to `name` in `scope`.
    pub fn new(scope: AttributeScope, name: impl Into<String>) -> Self {
        Self {
            scope,
            name: name.into(),
        }
    }
}

/// A field a query reads: an intrinsic or an attribute.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldRef {
    /// An intrinsic.
    Intrinsic(Intrinsic),
    /// An attribute.
    Attribute(AttributeRef),
}

impl FieldRef {
    /// The key Tempo uses for this field in a matched span's `attributes`:
    /// the attribute key, or the intrinsic's unscoped name.
    pub fn key(&self) -> &str {
        match self {
            FieldRef::Intrinsic(i) => i.name(),
            FieldRef::Attribute(a) => &a.name,
        }
    }
}

/// Span status codes (OTLP `Status.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusCode {
    /// `unset` (0).
    Unset,
    /// `ok` (1).
    Ok,
    /// `error` (2).
    Error,
}

impl StatusCode {
    /// The OTLP code.
    pub fn code(self) -> i32 {
        match self {
            StatusCode::Unset => 0,
            StatusCode::Ok => 1,
            StatusCode::Error => 2,
        }
    }

    /// The status with OTLP code `code`, if there is one.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(StatusCode::Unset),
            1 => Some(StatusCode::Ok),
            2 => Some(StatusCode::Error),
            _ => None,
        }
    }

    /// The TraceQL keyword (`unset`, `ok`, `error`).
    pub fn keyword(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

/// Span kinds (OTLP `SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpanKind {
    /// `unspecified` (0).
    Unspecified,
    /// `internal` (1).
    Internal,
    /// `server` (2).
    Server,
    /// `client` (3).
    Client,
    /// `producer` (4).
    Producer,
    /// `consumer` (5).
    Consumer,
}

impl SpanKind {
    /// The OTLP code.
    pub fn code(self) -> i32 {
        match self {
            SpanKind::Unspecified => 0,
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }

    /// The kind with OTLP code `code`, if there is one.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(SpanKind::Unspecified),
            1 => Some(SpanKind::Internal),
            2 => Some(SpanKind::Server),
            3 => Some(SpanKind::Client),
            4 => Some(SpanKind::Producer),
            5 => Some(SpanKind::Consumer),
            _ => None,
        }
    }

    /// The TraceQL keyword (`unspecified`, `internal`, ...).
    pub fn keyword(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `"text"` or `` `text` ``.
    String(String),
    /// `42`, `-1`, `minInt`, `maxInt`.
    Int(i64),
    /// `1.5`.
    Float(f64),
    /// `100ms`, `1.5s`, `1h30m`: nanoseconds.
    Duration(i64),
    /// `true`, `false`.
    Bool(bool),
    /// `ok`, `error`, `unset`.
    Status(StatusCode),
    /// `server`, `client`, ...
    Kind(SpanKind),
}

impl Literal {
    pub(crate) fn ty(&self) -> Type {
        match self {
            Literal::String(_) => Type::String,
            Literal::Int(_) => Type::Int,
            Literal::Float(_) => Type::Float,
            Literal::Duration(_) => Type::Duration,
            Literal::Bool(_) => Type::Bool,
            Literal::Status(_) => Type::Status,
            Literal::Kind(_) => Type::Kind,
        }
    }
}

/// Static types, for checking queries before evaluating them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    String,
    Int,
    Float,
    Duration,
    Bool,
    Status,
    Kind,
    Nil,
    /// An attribute: its type is only known per span.
    Attribute,
}

impl Type {
    pub(crate) fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Duration)
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `=~` (fully anchored regular expression match)
    Re,
    /// `!~`
    NotRe,
}

impl CompareOp {
    /// The TraceQL spelling.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Re => "=~",
            CompareOp::NotRe => "!~",
        }
    }

    /// The operator with its operands swapped (`a < b` is `b > a`).
    /// Regular expression operators have no mirror.
    pub(crate) fn mirrored(self) -> Option<CompareOp> {
        match self {
            CompareOp::Eq => Some(CompareOp::Eq),
            CompareOp::Ne => Some(CompareOp::Ne),
            CompareOp::Gt => Some(CompareOp::Lt),
            CompareOp::Ge => Some(CompareOp::Le),
            CompareOp::Lt => Some(CompareOp::Gt),
            CompareOp::Le => Some(CompareOp::Ge),
            CompareOp::Re | CompareOp::NotRe => None,
        }
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A literal.
    Literal(Literal),
    /// A field of the span (or its trace).
    Field(FieldRef),
}

/// A compiled, fully anchored regular expression (`^(?s:PATTERN)$`, like
/// Tempo's), compared by its pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

impl Pattern {
    /// Compiles `source` fully anchored.
    pub(crate) fn new(source: &str) -> Result<Self, regex::Error> {
        let regex = Regex::new(&format!("^(?s:{source})$"))?;
        Ok(Self {
            source: source.to_owned(),
            regex,
        })
    }

    /// The pattern as written in the query.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A comparison `lhs op rhs` between two operands, at least one of them a
/// field (comparisons of two literals are folded to constants).
///
/// A literal is always on the right unless both sides are fields; regular
/// expression comparisons always have a string literal on the right, whose
/// compiled form is in `pattern`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Left operand (a field).
    pub lhs: Operand,
    /// Operator.
    pub op: CompareOp,
    /// Right operand.
    pub rhs: Operand,
    /// The compiled right operand of `=~` / `!~`.
    pub pattern: Option<Pattern>,
}

/// A boolean expression over one span: the inside of `{ ... }`.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldExpr {
    /// A constant (`{ true }`, or a folded comparison of literals).
    Bool(bool),
    /// A comparison.
    Compare(Comparison),
    /// `field != nil` (`present == true`) or `field = nil` (`false`).
    Exists {
        /// The field.
        field: FieldRef,
        /// Whether the field must be present (`!= nil`) or absent (`= nil`).
        present: bool,
    },
    /// `!expr`
    Not(Box<FieldExpr>),
    /// `lhs && rhs`
    And(Box<FieldExpr>, Box<FieldExpr>),
    /// `lhs || rhs`
    Or(Box<FieldExpr>, Box<FieldExpr>),
}

/// Aggregate functions of pipeline scalar filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateFunc {
    /// `count()`: the number of spans in the spanset.
    Count,
    /// `avg(field)`
    Avg,
    /// `min(field)`
    Min,
    /// `max(field)`
    Max,
    /// `sum(field)`
    Sum,
}

impl AggregateFunc {
    /// The TraceQL function name.
    pub fn name(self) -> &'static str {
        match self {
            AggregateFunc::Count => "count",
            AggregateFunc::Avg => "avg",
            AggregateFunc::Min => "min",
            AggregateFunc::Max => "max",
            AggregateFunc::Sum => "sum",
        }
    }
}

/// `| func(field) op value`: keeps the spansets whose aggregate satisfies
/// the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateFilter {
    /// The function.
    pub func: AggregateFunc,
    /// Its argument (`None` for `count()`): a numeric intrinsic or an
    /// attribute (non-numeric values are skipped).
    pub field: Option<FieldRef>,
    /// Comparison operator (not a regex operator).
    pub op: CompareOp,
    /// Numeric literal (int, float or duration).
    pub value: Literal,
}

/// A pipeline stage (`| ...`).
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// `| { ... }` (or any spanset expression): keeps the spans of each
    /// spanset that the expression selects among them.
    Filter(SpansetExpr),
    /// `| select(a, b)`: extra fields to return with matched spans; does not
    /// filter.
    Select(Vec<FieldRef>),
    /// `| count() > 2`, `| avg(duration) > 1s`, ...
    Aggregate(AggregateFilter),
}

/// An expression selecting a set of spans of one trace.
#[derive(Debug, Clone, PartialEq)]
pub enum SpansetExpr {
    /// `{ expr }`, or `{ }` (`None`: every span).
    Filter(Option<FieldExpr>),
    /// `lhs && rhs`: both select spans; the union of their spans.
    And(Box<SpansetExpr>, Box<SpansetExpr>),
    /// `lhs || rhs`: the union of the spans either selects.
    Or(Box<SpansetExpr>, Box<SpansetExpr>),
    /// `input | stage | ...`
    Pipeline(Box<SpansetExpr>, Vec<Stage>),
}

// ------------------------------------------------------------------ walking

impl SpansetExpr {
    /// Calls `f` on every field a span filter (at any depth, including filter
    /// stages) reads, in query order.
    pub(crate) fn visit_filter_fields(&self, f: &mut impl FnMut(&FieldRef)) {
        match self {
            SpansetExpr::Filter(Some(e)) => e.visit_fields(f),
            SpansetExpr::Filter(None) => {}
            SpansetExpr::And(a, b) | SpansetExpr::Or(a, b) => {
                a.visit_filter_fields(f);
                b.visit_filter_fields(f);
            }
            SpansetExpr::Pipeline(input, stages) => {
                input.visit_filter_fields(f);
                for stage in stages {
                    if let Stage::Filter(e) = stage {
                        e.visit_filter_fields(f);
                    }
                }
            }
        }
    }

    /// Calls `f` on every field of every `select(...)`, in query order.
    pub(crate) fn visit_selected(&self, f: &mut impl FnMut(&FieldRef)) {
        match self {
            SpansetExpr::Filter(_) => {}
            SpansetExpr::And(a, b) | SpansetExpr::Or(a, b) => {
                a.visit_selected(f);
                b.visit_selected(f);
            }
            SpansetExpr::Pipeline(input, stages) => {
                input.visit_selected(f);
                for stage in stages {
                    match stage {
                        Stage::Filter(e) => e.visit_selected(f),
                        Stage::Select(fields) => fields.iter().for_each(&mut *f),
                        Stage::Aggregate(_) => {}
                    }
                }
            }
        }
    }

    /// Calls `f` on every field read anywhere (filters, selects, aggregates).
    pub(crate) fn visit_all_fields(&self, f: &mut impl FnMut(&FieldRef)) {
        match self {
            SpansetExpr::Filter(Some(e)) => e.visit_fields(f),
            SpansetExpr::Filter(None) => {}
            SpansetExpr::And(a, b) | SpansetExpr::Or(a, b) => {
                a.visit_all_fields(f);
                b.visit_all_fields(f);
            }
            SpansetExpr::Pipeline(input, stages) => {
                input.visit_all_fields(f);
                for stage in stages {
                    match stage {
                        Stage::Filter(e) => e.visit_all_fields(f),
                        Stage::Select(fields) => fields.iter().for_each(&mut *f),
                        Stage::Aggregate(a) => a.field.iter().for_each(&mut *f),
                    }
                }
            }
        }
    }
}

impl FieldExpr {
    /// The fields the expression reads, in order, without repetitions.
    pub fn fields(&self) -> Vec<FieldRef> {
        let mut out: Vec<FieldRef> = Vec::new();
        self.visit_fields(&mut |f| {
            if !out.contains(f) {
                out.push(f.clone());
            }
        });
        out
    }

    pub(crate) fn visit_fields(&self, f: &mut impl FnMut(&FieldRef)) {
        match self {
            FieldExpr::Bool(_) => {}
            FieldExpr::Compare(c) => {
                for side in [&c.lhs, &c.rhs] {
                    if let Operand::Field(field) = side {
                        f(field);
                    }
                }
            }
            FieldExpr::Exists { field, .. } => f(field),
            FieldExpr::Not(e) => e.visit_fields(f),
            FieldExpr::And(a, b) | FieldExpr::Or(a, b) => {
                a.visit_fields(f);
                b.visit_fields(f);
            }
        }
    }
}

// ------------------------------------------------------------------ display

/// Writes `s` as a double-quoted TraceQL string.
pub(crate) fn write_quoted(out: &mut Formatter<'_>, s: &str) -> fmt::Result {
    out.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control() => write!(out, "\\u{:04x}", u32::from(c))?,
            c => write!(out, "{c}")?,
        }
    }
    out.write_str("\"")
}

/// Writes a duration in nanoseconds with the largest unit dividing it.
pub(crate) fn write_duration(out: &mut Formatter<'_>, nanos: i64) -> fmt::Result {
    const UNITS: [(i64, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    if nanos == 0 {
        return out.write_str("0s");
    }
    for (size, unit) in UNITS {
        if nanos % size == 0 {
            return write!(out, "{}{unit}", nanos / size);
        }
    }
    write!(out, "{nanos}ns")
}

impl Display for Intrinsic {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether an attribute name can be written without quotes.
fn plain_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| {
            !c.is_whitespace()
                && !matches!(
                    c,
                    '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ',' | '"' | '\\'
                )
        })
}

impl Display for AttributeRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self.scope {
            AttributeScope::Span => "span.",
            AttributeScope::Resource => "resource.",
            AttributeScope::Unscoped => ".",
        })?;
        if plain_attribute_name(&self.name) {
            f.write_str(&self.name)
        } else {
            f.write_str("\"")?;
            for c in self.name.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")
        }
    }
}

impl Display for FieldRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FieldRef::Intrinsic(i) => i.fmt(f),
            FieldRef::Attribute(a) => a.fmt(f),
        }
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write_quoted(f, s),
            Literal::Int(i64::MIN) => f.write_str("minInt"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::Duration(d) => write_duration(f, *d),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Status(s) => f.write_str(s.keyword()),
            Literal::Kind(k) => f.write_str(k.keyword()),
        }
    }
}

impl Display for CompareOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Display for Operand {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Literal(l) => l.fmt(f),
            Operand::Field(x) => x.fmt(f),
        }
    }
}

impl Display for Comparison {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.lhs, self.op, self.rhs)
    }
}

impl FieldExpr {
    /// Binding strength when printing: `||` < `&&` < everything else.
    fn precedence(&self) -> u8 {
        match self {
            FieldExpr::Or(..) => 1,
            FieldExpr::And(..) => 2,
            _ => 3,
        }
    }

    fn fmt_child(&self, f: &mut Formatter<'_>, parent: u8) -> fmt::Result {
        if self.precedence() < parent {
            write!(f, "({self})")
        } else {
            self.fmt(f)
        }
    }
}

impl Display for FieldExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FieldExpr::Bool(b) => write!(f, "{b}"),
            FieldExpr::Compare(c) => c.fmt(f),
            FieldExpr::Exists { field, present } => {
                write!(f, "{field} {} nil", if *present { "!=" } else { "=" })
            }
            FieldExpr::Not(e) => match **e {
                FieldExpr::Bool(_) => write!(f, "!{e}"),
                _ => write!(f, "!({e})"),
            },
            FieldExpr::And(a, b) => {
                a.fmt_child(f, 2)?;
                f.write_str(" && ")?;
                b.fmt_child(f, 3)
            }
            FieldExpr::Or(a, b) => {
                a.fmt_child(f, 1)?;
                f.write_str(" || ")?;
                b.fmt_child(f, 2)
            }
        }
    }
}

impl Display for AggregateFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.func.name())?;
        f.write_str("(")?;
        if let Some(field) = &self.field {
            field.fmt(f)?;
        }
        write!(f, ") {} {}", self.op, self.value)
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Filter(e) => e.fmt_child(f, 2),
            Stage::Select(fields) => {
                f.write_str("select(")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    field.fmt(f)?;
                }
                f.write_str(")")
            }
            Stage::Aggregate(a) => a.fmt(f),
        }
    }
}

impl SpansetExpr {
    /// Binding strength when printing: `|` < `||` < `&&` < filters.
    fn precedence(&self) -> u8 {
        match self {
            SpansetExpr::Pipeline(..) => 0,
            SpansetExpr::Or(..) => 1,
            SpansetExpr::And(..) => 2,
            SpansetExpr::Filter(_) => 3,
        }
    }

    fn fmt_child(&self, f: &mut Formatter<'_>, parent: u8) -> fmt::Result {
        if self.precedence() < parent {
            write!(f, "({self})")
        } else {
            self.fmt(f)
        }
    }
}

impl Display for SpansetExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter(None) => f.write_str("{ }"),
            SpansetExpr::Filter(Some(e)) => write!(f, "{{ {e} }}"),
            SpansetExpr::And(a, b) => {
                a.fmt_child(f, 2)?;
                f.write_str(" && ")?;
                b.fmt_child(f, 3)
            }
            SpansetExpr::Or(a, b) => {
                a.fmt_child(f, 1)?;
                f.write_str(" || ")?;
                b.fmt_child(f, 2)
            }
            SpansetExpr::Pipeline(input, stages) => {
                input.fmt_child(f, 1)?;
                for stage in stages {
                    write!(f, " | {stage}")?;
                }
                Ok(())
            }
        }
    }
}
