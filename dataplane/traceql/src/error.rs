//! Errors of parsing and of evaluating queries.

use arrow_schema::{ArrowError, DataType};

/// A position in the query text: 1-based line and 1-based column, counted in
/// characters (not bytes), like Tempo's error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
}

impl Pos {
    pub(crate) const START: Pos = Pos { line: 1, col: 1 };
}

/// The query is not syntactically valid TraceQL.
///
/// Displayed as `parse error at line L, col C: MESSAGE`, the text Tempo puts
/// after `invalid TraceQL query: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at line {line}, col {col}: {message}")]
pub struct ParseError {
    /// 1-based line of the offending token.
    pub line: u32,
    /// 1-based column (in characters) of the offending token.
    pub col: u32,
    /// What is wrong, e.g. `unknown identifier: this`.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }
}

/// The query parses but is not meaningful: operands of incompatible types
/// (`duration > "abc"`, `status = 3`), an operator not defined for its
/// operands (`name =~ 1`, `kind > server`), an invalid regular expression.
///
/// Displayed as the message alone, worded like Tempo's validation errors
/// (`binary operations must operate on the same type: status = 3`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidQuery {
    /// 1-based line of the offending expression.
    pub line: u32,
    /// 1-based column (in characters) of the offending expression.
    pub col: u32,
    /// What is wrong.
    pub message: String,
}

impl InvalidQuery {
    pub(crate) fn new(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }
}

/// The query uses valid TraceQL this implementation does not evaluate
/// (structural operators, `by()`, metrics functions, arithmetic, event and
/// link scopes, ...). Such queries are refused rather than evaluated wrongly.
///
/// Displayed as `CONSTRUCT is not supported yet`, e.g.
/// ``structural operator `>>` is not supported yet``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{construct} is not supported yet")]
pub struct UnsupportedError {
    /// 1-based line where the construct starts.
    pub line: u32,
    /// 1-based column (in characters) where the construct starts.
    pub col: u32,
    /// The construct, e.g. ``structural operator `>>` ``.
    pub construct: String,
}

impl UnsupportedError {
    pub(crate) fn new(pos: Pos, construct: impl Into<String>) -> Self {
        Self {
            line: pos.line,
            col: pos.col,
            construct: construct.into(),
        }
    }
}

/// Why a query could not be turned into a [`Query`](crate::Query).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Syntax error.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Type error or invalid regular expression.
    #[error(transparent)]
    Invalid(#[from] InvalidQuery),
    /// Valid TraceQL that is not implemented.
    #[error(transparent)]
    Unsupported(#[from] UnsupportedError),
}

impl QueryError {
    /// Where the problem is.
    pub fn pos(&self) -> Pos {
        let (line, col) = match self {
            QueryError::Parse(e) => (e.line, e.col),
            QueryError::Invalid(e) => (e.line, e.col),
            QueryError::Unsupported(e) => (e.line, e.col),
        };
        Pos { line, col }
    }
}

/// Why a batch could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A column the query needs is not in the batch.
    #[error("column {column} is missing")]
    MissingColumn {
        /// Column (or `column.item.field`) name.
        column: String,
    },
    /// A column has a type that cannot be read as the span schema's.
    #[error("column {column} has type {actual}, expected {expected}")]
    ColumnType {
        /// Column (or `column.item.field`) name.
        column: String,
        /// Its type in the batch.
        actual: DataType,
        /// What was expected.
        expected: String,
    },
    /// The rows of one trace are not contiguous: the batch must hold the rows
    /// of each trace next to each other (e.g. sorted by trace id).
    #[error("rows of trace {trace_id} are not contiguous (rows must be grouped by trace id)")]
    TraceNotContiguous {
        /// Hex trace id.
        trace_id: String,
    },
    /// A row index outside the batch.
    #[error("row {row} is out of range (batch has {rows} rows)")]
    RowOutOfRange {
        /// The row asked for.
        row: usize,
        /// Rows in the batch.
        rows: usize,
    },
    /// An Arrow kernel failed.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}
