//! Turns query text into tokens with positions.
//!
//! Lexical rules follow Tempo's lexer: attribute names run until whitespace
//! or one of `{ } ( ) = ~ ! < > & | ^ ,` (so `span.http.user-agent` is one
//! name) and may contain double-quoted parts (`span."http url"`); numbers
//! directly followed by a unit are durations (Go `time.ParseDuration`
//! syntax: `1.5s`, `1h30m`, units `ns us µs ms s m h`); strings use double
//! quotes with Go escapes or backticks (raw). A bare word that is not a
//! TraceQL keyword is an error (`unknown identifier: this`).

use std::fmt::{self, Display, Formatter};

use crate::error::{ParseError, Pos};

/// Scopes that can prefix an attribute (`SCOPE.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttrScope {
    /// `.name`
    None,
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
    Parent,
}

impl AttrScope {
    fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "span" => AttrScope::Span,
            "resource" => AttrScope::Resource,
            "event" => AttrScope::Event,
            "link" => AttrScope::Link,
            "instrumentation" => AttrScope::Instrumentation,
            "parent" => AttrScope::Parent,
            _ => return None,
        })
    }

    fn prefix(self) -> &'static str {
        match self {
            AttrScope::None => "",
            AttrScope::Span => "span",
            AttrScope::Resource => "resource",
            AttrScope::Event => "event",
            AttrScope::Link => "link",
            AttrScope::Instrumentation => "instrumentation",
            AttrScope::Parent => "parent",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Pipe,
    AndAnd,
    OrOr,
    Bang,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// `=~`
    Re,
    /// `!~`: regex non-match, or the not-sibling structural operator.
    NotRe,
    /// `>>`
    Desc,
    /// `<<`
    Anc,
    /// `~`
    Tilde,
    /// `!>>`
    NotDesc,
    /// `!<<`
    NotAnc,
    /// `!>`
    NotChild,
    /// `!<`
    NotParent,
    /// `&>>`
    UnionDesc,
    /// `&<<`
    UnionAnc,
    /// `&>`
    UnionChild,
    /// `&<`
    UnionParent,
    /// `&~`
    UnionSibling,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Caret,
    Str(String),
    Int(i64),
    Float(f64),
    /// Nanoseconds.
    Duration(i64),
    /// A keyword: intrinsic, literal keyword or function name.
    Word(&'static str),
    /// `scope:name`, e.g. `span:duration`.
    ScopedIntrinsic(&'static str, String),
    /// `.name`, `span.name`, ...
    Attr(AttrScope, String),
    Eof,
    /// A lexical error; the parser reports it when it gets there.
    Error(ParseError),
}

impl Display for Tok {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let sym = match self {
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Pipe => "|",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            Tok::Bang => "!",
            Tok::Eq => "=",
            Tok::Ne => "!=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Re => "=~",
            Tok::NotRe => "!~",
            Tok::Desc => ">>",
            Tok::Anc => "<<",
            Tok::Tilde => "~",
            Tok::NotDesc => "!>>",
            Tok::NotAnc => "!<<",
            Tok::NotChild => "!>",
            Tok::NotParent => "!<",
            Tok::UnionDesc => "&>>",
            Tok::UnionAnc => "&<<",
            Tok::UnionChild => "&>",
            Tok::UnionParent => "&<",
            Tok::UnionSibling => "&~",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Caret => "^",
            Tok::Str(s) => return write!(f, "string {s:?}"),
            Tok::Int(i) => return write!(f, "number {i}"),
            Tok::Float(x) => return write!(f, "number {x:?}"),
            Tok::Duration(d) => {
                f.write_str("duration ")?;
                return crate::ast::write_duration(f, *d);
            }
            Tok::Word(w) => w,
            Tok::ScopedIntrinsic(scope, name) => return write!(f, "{scope}:{name}"),
            Tok::Attr(scope, name) => return write!(f, "{}.{name}", scope.prefix()),
            Tok::Eof => return f.write_str("end of query"),
            Tok::Error(e) => return f.write_str(&e.message),
        };
        write!(f, "`{sym}`")
    }
}

/// Every bare word TraceQL knows. Anything else is `unknown identifier`.
const KEYWORDS: &[&str] = &[
    // literals
    "true",
    "false",
    "nil",
    "ok",
    "error",
    "unset",
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
    "minInt",
    "maxInt",
    // unscoped intrinsics
    "name",
    "status",
    "statusMessage",
    "duration",
    "kind",
    "rootName",
    "rootServiceName",
    "traceDuration",
    "childCount",
    "nestedSetLeft",
    "nestedSetRight",
    "nestedSetParent",
    "parent",
    // scope words (when not followed by `.` or `:`)
    "span",
    "resource",
    "trace",
    "event",
    "link",
    "instrumentation",
    // pipeline functions
    "select",
    "count",
    "avg",
    "min",
    "max",
    "sum",
    "by",
    "coalesce",
    "with",
    // query hints
    "most_recent",
    "sample",
    "exemplars",
    // metrics functions
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
    "offset",
];

/// Scoped intrinsic scopes.
const INTRINSIC_SCOPES: &[&str] = &["span", "trace", "event", "link", "instrumentation"];

/// Characters that end an unquoted attribute name.
fn ends_attribute(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ','
        )
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Characters that can continue a duration after its first number.
fn is_duration_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '.' | 'n' | 'u' | 'µ' | 'μ' | 'm' | 's' | 'h')
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: u32,
    col: u32,
}

/// Splits `text` into tokens, ending with [`Tok::Eof`] or, at the first
/// lexical error, [`Tok::Error`].
pub(crate) fn tokenize(text: &str) -> Vec<(Tok, Pos)> {
    let mut lexer = Lexer {
        chars: text.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
    };
    let mut out = Vec::new();
    loop {
        lexer.skip_space();
        let pos = lexer.pos();
        match lexer.next_token() {
            Ok(Tok::Eof) => {
                out.push((Tok::Eof, pos));
                return out;
            }
            Ok(tok) => out.push((tok, pos)),
            Err(e) => {
                let at = Pos {
                    line: e.line,
                    col: e.col,
                };
                out.push((Tok::Error(e), at));
                return out;
            }
        }
    }
}

impl Lexer {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn next_token(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos();
        let Some(c) = self.peek() else {
            return Ok(Tok::Eof);
        };
        if c.is_ascii_digit() {
            return self.number(start);
        }
        if is_word_start(c) {
            return self.word(start);
        }
        if c == '"' {
            self.bump();
            return self.quoted_string(start).map(Tok::Str);
        }
        if c == '`' {
            self.bump();
            return self.raw_string(start).map(Tok::Str);
        }
        if c == '.' {
            self.bump();
            return self.attribute(start, AttrScope::None);
        }
        self.bump();
        let tok = match c {
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '%' => Tok::Percent,
            '^' => Tok::Caret,
            '~' => Tok::Tilde,
            '|' => {
                if self.eat('|') {
                    Tok::OrOr
                } else {
                    Tok::Pipe
                }
            }
            '&' => {
                if self.eat('&') {
                    Tok::AndAnd
                } else if self.eat('>') {
                    if self.eat('>') { Tok::UnionDesc } else { Tok::UnionChild }
                } else if self.eat('<') {
                    if self.eat('<') { Tok::UnionAnc } else { Tok::UnionParent }
                } else if self.eat('~') {
                    Tok::UnionSibling
                } else {
                    return Err(ParseError::new(start, "unexpected character `&`"));
                }
            }
            '=' => {
                if self.eat('~') {
                    Tok::Re
                } else {
                    Tok::Eq
                }
            }
            '!' => {
                if self.eat('=') {
                    Tok::Ne
                } else if self.eat('~') {
                    Tok::NotRe
                } else if self.eat('>') {
                    if self.eat('>') { Tok::NotDesc } else { Tok::NotChild }
                } else if self.eat('<') {
                    if self.eat('<') { Tok::NotAnc } else { Tok::NotParent }
                } else {
                    Tok::Bang
                }
            }
            '>' => {
                if self.eat('=') {
                    Tok::Ge
                } else if self.eat('>') {
                    Tok::Desc
                } else {
                    Tok::Gt
                }
            }
            '<' => {
                if self.eat('=') {
                    Tok::Le
                } else if self.eat('<') {
                    Tok::Anc
                } else {
                    Tok::Lt
                }
            }
            other => {
                return Err(ParseError::new(start, format!("unexpected character `{other}`")));
            }
        };
        Ok(tok)
    }

    /// A bare word: keyword, `scope.attribute` or `scope:intrinsic`.
    fn word(&mut self, start: Pos) -> Result<Tok, ParseError> {
        let mut word = String::new();
        while let Some(c) = self.peek().filter(|c| is_word_char(*c)) {
            word.push(c);
            self.bump();
        }
        if self.peek() == Some('.')
            && let Some(scope) = AttrScope::from_word(&word)
        {
            self.bump();
            return self.attribute(start, scope);
        }
        if self.peek() == Some(':')
            && let Some(scope) = INTRINSIC_SCOPES.iter().copied().find(|s| *s == word)
        {
            self.bump();
            let mut name = String::new();
            while let Some(c) = self.peek().filter(|c| is_word_char(*c)) {
                name.push(c);
                self.bump();
            }
            if name.is_empty() {
                return Err(ParseError::new(
                    start,
                    format!("expected an intrinsic name after `{scope}:`"),
                ));
            }
            return Ok(Tok::ScopedIntrinsic(scope, name));
        }
        match KEYWORDS.iter().copied().find(|k| *k == word) {
            Some(k) => Ok(Tok::Word(k)),
            None => Err(ParseError::new(start, format!("unknown identifier: {word}"))),
        }
    }

    /// The name of an attribute, after its `scope.` (or `.`).
    fn attribute(&mut self, start: Pos, scope: AttrScope) -> Result<Tok, ParseError> {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if ends_attribute(c) {
                break;
            }
            if c == '"' {
                let quote = self.pos();
                self.bump();
                self.quoted_attribute_part(quote, &mut name)?;
            } else {
                name.push(c);
                self.bump();
            }
        }
        if name.is_empty() {
            return Err(ParseError::new(start, "expected an attribute name after `.`"));
        }
        Ok(Tok::Attr(scope, name))
    }

    /// A double-quoted part of an attribute name (only `\"` and `\\`
    /// escapes, like Tempo).
    fn quoted_attribute_part(&mut self, start: Pos, name: &mut String) -> Result<(), ParseError> {
        loop {
            let at = self.pos();
            match self.bump() {
                None | Some('\n') => return Err(ParseError::new(start, "quoted attribute name not terminated")),
                Some('"') => return Ok(()),
                Some('\\') => match self.bump() {
                    Some(c @ ('"' | '\\')) => name.push(c),
                    _ => return Err(ParseError::new(at, "invalid escape in quoted attribute name")),
                },
                Some(c) => name.push(c),
            }
        }
    }

    /// A double-quoted string after its opening quote, with Go's escapes.
    fn quoted_string(&mut self, start: Pos) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            let at = self.pos();
            match self.bump() {
                None | Some('\n') => return Err(ParseError::new(start, "literal not terminated")),
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape(at)?),
                Some(c) => out.push(c),
            }
        }
    }

    /// One escape sequence after its backslash (at `at`).
    fn escape(&mut self, at: Pos) -> Result<char, ParseError> {
        let invalid = || ParseError::new(at, "invalid char escape");
        let c = self.bump().ok_or_else(invalid)?;
        let simple = match c {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(s) = simple {
            return Ok(s);
        }
        let (digits, radix) = match c {
            '0'..='7' => (2, 8),
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            _ => return Err(invalid()),
        };
        let mut value = if radix == 8 {
            c.to_digit(8).ok_or_else(invalid)?
        } else {
            0
        };
        for _ in 0..digits {
            let d = self.bump().and_then(|d| d.to_digit(radix)).ok_or_else(invalid)?;
            value = value
                .checked_mul(radix)
                .and_then(|v| v.checked_add(d))
                .ok_or_else(invalid)?;
        }
        if radix == 8 && value > 255 {
            return Err(invalid());
        }
        char::from_u32(value).ok_or_else(invalid)
    }

    /// A backtick string after its opening backtick: no escapes.
    fn raw_string(&mut self, start: Pos) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(ParseError::new(start, "literal not terminated")),
                Some('`') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    /// An integer, float or duration.
    fn number(&mut self, start: Pos) -> Result<Tok, ParseError> {
        let mut text = String::new();
        let mut is_float = false;
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            text.push(c);
            self.bump();
        }
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            is_float = true;
            text.push('.');
            self.bump();
            while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                text.push(c);
                self.bump();
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = self.peek_at(1).filter(|c| matches!(c, '+' | '-'));
            let digit_at = if sign.is_some() { 2 } else { 1 };
            if self.peek_at(digit_at).is_some_and(|c| c.is_ascii_digit()) {
                is_float = true;
                text.push('e');
                self.bump();
                if let Some(s) = sign {
                    text.push(s);
                    self.bump();
                }
                while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                    text.push(c);
                    self.bump();
                }
            }
        }
        if self
            .peek()
            .is_some_and(|c| is_duration_char(c) && !c.is_ascii_digit() && c != '.')
        {
            while let Some(c) = self.peek().filter(|c| is_duration_char(*c)) {
                text.push(c);
                self.bump();
            }
            if self.peek().is_some_and(is_word_char) {
                return Err(ParseError::new(start, format!("invalid duration {text:?}")));
            }
            return parse_duration(&text)
                .map(Tok::Duration)
                .ok_or_else(|| ParseError::new(start, format!("invalid duration {text:?}")));
        }
        if self.peek().is_some_and(is_word_char) {
            return Err(ParseError::new(start, format!("invalid number {text:?}")));
        }
        if is_float {
            text.parse::<f64>()
                .map(Tok::Float)
                .map_err(|_| ParseError::new(start, format!("invalid number {text:?}")))
        } else {
            text.parse::<i64>()
                .map(Tok::Int)
                .map_err(|_| ParseError::new(start, format!("integer {text} out of range")))
        }
    }
}

/// Parses a Go-style duration (`1.5s`, `1h30m`, `100ms`, `5us`, `5µs`) into
/// nanoseconds. No sign (the parser handles `-`).
pub(crate) fn parse_duration(text: &str) -> Option<i64> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut total: i64 = 0;
    if chars.is_empty() {
        return None;
    }
    while i < chars.len() {
        // Integer part.
        let mut int_part: i64 = 0;
        let mut digits = 0;
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            int_part = int_part.checked_mul(10)?.checked_add(i64::from(d))?;
            digits += 1;
            i += 1;
        }
        // Fractional part, kept as numerator / 10^scale.
        let mut frac: i64 = 0;
        let mut scale: i64 = 1;
        let mut frac_digits = 0;
        if chars.get(i) == Some(&'.') {
            i += 1;
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                // Digits beyond nanosecond precision of hours do not matter.
                if scale < 1_000_000_000_000_000 {
                    frac = frac * 10 + i64::from(d);
                    scale *= 10;
                }
                frac_digits += 1;
                i += 1;
            }
        }
        if digits == 0 && frac_digits == 0 {
            return None;
        }
        // Unit.
        let unit_start = i;
        while chars.get(i).is_some_and(|c| !c.is_ascii_digit() && *c != '.') {
            i += 1;
        }
        let unit: String = chars.get(unit_start..i)?.iter().collect();
        let size: i64 = match unit.as_str() {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole = int_part.checked_mul(size)?;
        let part = i64::try_from(i128::from(frac) * i128::from(size) / i128::from(scale)).ok()?;
        total = total.checked_add(whole)?.checked_add(part)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Some(100_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("5us"), Some(5_000));
        assert_eq!(parse_duration("5µs"), Some(5_000));
        assert_eq!(parse_duration("5μs"), Some(5_000));
        assert_eq!(parse_duration("7ns"), Some(7));
        assert_eq!(parse_duration("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration("0.000000001s"), Some(1));
        assert_eq!(parse_duration("1.5"), None);
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("99999999999999h"), None);
    }

    fn toks(text: &str) -> Vec<Tok> {
        tokenize(text).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn attribute_names_follow_tempo() {
        assert_eq!(
            toks("span.http.user-agent=`x`"),
            vec![
                Tok::Attr(AttrScope::Span, "http.user-agent".into()),
                Tok::Eq,
                Tok::Str("x".into()),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks(r#".a."b c\"d".e"#),
            vec![Tok::Attr(AttrScope::None, "a.b c\"d.e".into()), Tok::Eof]
        );
        assert_eq!(
            toks("resource.service.name!=nil"),
            vec![
                Tok::Attr(AttrScope::Resource, "service.name".into()),
                Tok::Ne,
                Tok::Word("nil"),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn operators() {
        assert_eq!(
            toks("&& || ! != =~ !~ >> << ~ !>> !<< !> !< &>> &<< &> &< &~ >= <= > < ="),
            vec![
                Tok::AndAnd,
                Tok::OrOr,
                Tok::Bang,
                Tok::Ne,
                Tok::Re,
                Tok::NotRe,
                Tok::Desc,
                Tok::Anc,
                Tok::Tilde,
                Tok::NotDesc,
                Tok::NotAnc,
                Tok::NotChild,
                Tok::NotParent,
                Tok::UnionDesc,
                Tok::UnionAnc,
                Tok::UnionChild,
                Tok::UnionParent,
                Tok::UnionSibling,
                Tok::Ge,
                Tok::Le,
                Tok::Gt,
                Tok::Lt,
                Tok::Eq,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn positions_count_characters_and_lines() {
        let t = tokenize("{\n  µ");
        assert_eq!(t[0].1, Pos { line: 1, col: 1 });
        match &t[1] {
            (Tok::Error(e), pos) => {
                assert_eq!(*pos, Pos { line: 2, col: 3 });
                assert_eq!(e.message, "unexpected character `µ`");
            }
            other => panic!("{other:?}"),
        }
        let t = tokenize("{ \"é\" = x");
        assert_eq!(t[2].1, Pos { line: 1, col: 7 });
    }

    #[test]
    fn strings() {
        assert_eq!(
            toks(r#""a\"b\\c\n\t\x41\u00e9\101""#),
            vec![Tok::Str("a\"b\\c\n\tAéA".into()), Tok::Eof]
        );
        assert_eq!(toks(r"`a\d+`"), vec![Tok::Str(r"a\d+".into()), Tok::Eof]);
        assert!(matches!(&toks(r#""a\.b""#)[0], Tok::Error(e) if e.message == "invalid char escape"));
        assert!(matches!(&toks("\"abc")[0], Tok::Error(e) if e.message == "literal not terminated"));
    }

    #[test]
    fn numbers() {
        assert_eq!(
            toks("1 1.5 2e3 100ms 1.5s 1h30m"),
            vec![
                Tok::Int(1),
                Tok::Float(1.5),
                Tok::Float(2000.0),
                Tok::Duration(100_000_000),
                Tok::Duration(1_500_000_000),
                Tok::Duration(5_400_000_000_000),
                Tok::Eof
            ]
        );
        assert!(matches!(&toks("5x")[0], Tok::Error(_)));
        assert!(matches!(&toks("99999999999999999999")[0], Tok::Error(_)));
        assert!(matches!(&toks("5sx")[0], Tok::Error(_)));
    }
}
