//! Request parsing with Tempo's rules and error texts: query strings as Go's
//! `net/url` reads them, Go's `strconv` and `time.ParseDuration` errors, the
//! logfmt `tags` parameter, trace ids and TraceQL tag names.

use crate::api::{
    DEFAULT_SEARCH_LIMIT, DEFAULT_SPANS_PER_SPANSET, SearchRequest, TagNamesRequest, TagScope, TagValuesRequest,
};

/// Decoded query parameters, in order, duplicates kept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string like Go's `url.ParseQuery`: `&`-separated
    /// pairs, `+` as space, `%XX` escapes; pairs that fail to decode (or
    /// contain `;`) are skipped.
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&') {
            if part.is_empty() || part.contains(';') {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) {
                pairs.push((k, v));
            }
        }
        Self(pairs)
    }

    /// The first value of `key`, if present and non-empty (Tempo treats an
    /// empty value as absent).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// All pairs, in order.
    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; `None` on a bad
/// escape or a result that is not UTF-8.
pub(crate) fn query_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16))?;
                let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16))?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Go's `strconv.Quote`, as used by `%q` in error texts.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.ParseInt(s, 10, bits)`, with its error text (`func_name` is
/// `ParseInt` or `Atoi`, as Go names the failing function).
pub(crate) fn go_parse_int(s: &str, bits: u32, func_name: &str) -> Result<i64, String> {
    let syntax = || format!("strconv.{func_name}: parsing {}: invalid syntax", go_quote(s));
    let range = || format!("strconv.{func_name}: parsing {}: value out of range", go_quote(s));
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    let mut magnitude: u128 = 0;
    for b in digits.bytes() {
        magnitude = magnitude.saturating_mul(10).saturating_add(u128::from(b - b'0'));
    }
    let limit: u128 = 1u128 << (bits - 1);
    if (!neg && magnitude >= limit) || (neg && magnitude > limit) {
        return Err(range());
    }
    let value = i128::try_from(magnitude).map_err(|_| range())?;
    let value = if neg { -value } else { value };
    i64::try_from(value).map_err(|_| range())
}

const NANOS_PER: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Go's `time.ParseDuration`: `300ms`, `-1.5h`, `2h45m`; returns nanoseconds
/// (negative allowed) or Go's error text.
pub(crate) fn go_parse_duration(orig: &str) -> Result<i64, String> {
    const OVERFLOW: u64 = 1 << 63;
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut value: u64 = 0;
        for b in s[..int_len].bytes() {
            if value > (OVERFLOW - 1) / 10 {
                return Err(invalid());
            }
            value = value * 10 + u64::from(b - b'0');
            if value > OVERFLOW {
                return Err(invalid());
            }
        }
        let had_int = int_len > 0;
        s = &s[int_len..];
        // Fraction.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut had_frac = false;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            had_frac = frac_len > 0;
            let mut overflowed = false;
            for b in s[..frac_len].bytes() {
                if overflowed {
                    continue;
                }
                if frac > (OVERFLOW - 1) / 10 {
                    overflowed = true;
                    continue;
                }
                let next = frac * 10 + u64::from(b - b'0');
                if next > OVERFLOW {
                    overflowed = true;
                    continue;
                }
                frac = next;
                scale *= 10.0;
            }
            s = &s[frac_len..];
        }
        if !had_int && !had_frac {
            return Err(invalid());
        }
        // Unit.
        let unit_len = s.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let unit_text = &s[..unit_len];
        s = &s[unit_len..];
        let Some(&(_, unit)) = NANOS_PER.iter().find(|(name, _)| *name == unit_text) else {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                go_quote(unit_text),
                go_quote(orig)
            ));
        };
        if value > OVERFLOW / unit {
            return Err(invalid());
        }
        value *= unit;
        if frac > 0 {
            // Same float arithmetic as Go, truncated.
            value += (frac as f64 * (unit as f64 / scale)) as u64;
            if value > OVERFLOW {
                return Err(invalid());
            }
        }
        total += value;
        if total > OVERFLOW {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > OVERFLOW - 1 {
        return Err(invalid());
    }
    Ok(total as i64)
}

/// A logfmt syntax error: message and 1-based byte position in its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogfmtError {
    pub(crate) msg: String,
    pub(crate) pos: usize,
}

/// Parses logfmt text (as go-logfmt decodes it) into `(key, value)` pairs:
/// records are lines, pairs are separated by whitespace, a key without `=`
/// has an empty value, values may be double-quoted with JSON-style escapes or
/// single-quoted without escapes.
pub(crate) fn parse_logfmt(text: &str) -> Result<Vec<(String, String)>, LogfmtError> {
    let mut pairs = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        parse_logfmt_line(line.as_bytes(), &mut pairs)?;
    }
    Ok(pairs)
}

fn unexpected(byte: u8, pos: usize) -> LogfmtError {
    let shown = match byte {
        b'\'' => "'\\''".to_owned(),
        b => format!("'{}'", b as char),
    };
    LogfmtError {
        msg: format!("unexpected {shown}"),
        pos: pos + 1,
    }
}

fn parse_logfmt_line(line: &[u8], pairs: &mut Vec<(String, String)>) -> Result<(), LogfmtError> {
    let text = |range: &[u8]| String::from_utf8_lossy(range).into_owned();
    let mut pos = 0;
    loop {
        // Skip separators.
        while pos < line.len() && line[pos] <= b' ' {
            pos += 1;
        }
        if pos >= line.len() {
            return Ok(());
        }
        // Key.
        let start = pos;
        while pos < line.len() {
            let c = line[pos];
            if c == b'=' || c <= b' ' {
                break;
            }
            if c == b'"' || c == b'\'' {
                return Err(unexpected(c, pos));
            }
            pos += 1;
        }
        if pos >= line.len() || line[pos] <= b' ' {
            pairs.push((text(&line[start..pos]), String::new()));
            continue;
        }
        // line[pos] == '='
        if pos == start {
            return Err(unexpected(b'=', pos));
        }
        let key = text(&line[start..pos]);
        pos += 1;
        if pos >= line.len() || line[pos] <= b' ' {
            pairs.push((key, String::new()));
            continue;
        }
        let quote = line[pos];
        if quote == b'"' || quote == b'\'' {
            let open = pos;
            let mut escaped = false;
            let mut has_escape = false;
            let mut close = None;
            let mut i = open + 1;
            while i < line.len() {
                let c = line[i];
                if escaped {
                    escaped = false;
                } else if c == b'\\' && quote == b'"' {
                    has_escape = true;
                    escaped = true;
                } else if c == quote {
                    close = Some(i);
                    break;
                }
                i += 1;
            }
            let Some(close) = close else {
                return Err(LogfmtError {
                    msg: "unterminated quoted value".to_owned(),
                    pos: line.len() + 1,
                });
            };
            pos = close + 1;
            let inner = &line[open + 1..close];
            let value = if has_escape {
                unquote_json(inner).ok_or(LogfmtError {
                    msg: "invalid quoted value".to_owned(),
                    pos: pos + 1,
                })?
            } else {
                text(inner)
            };
            pairs.push((key, value));
            continue;
        }
        let start = pos;
        while pos < line.len() && line[pos] > b' ' {
            let c = line[pos];
            if c == b'=' || c == b'"' || c == b'\'' {
                return Err(unexpected(c, pos));
            }
            pos += 1;
        }
        pairs.push((key, text(&line[start..pos])));
    }
}

/// Decodes the inside of a double-quoted logfmt value: JSON escapes.
fn unquote_json(inner: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(inner).ok()?;
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            '\'' => out.push('\''),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                let first = u32::from_str_radix(&hex, 16).ok().filter(|_| hex.len() == 4)?;
                if (0xd800..0xdc00).contains(&first) {
                    // A surrogate pair, or the replacement character.
                    let rest = chars.as_str();
                    let low = rest
                        .strip_prefix("\\u")
                        .and_then(|r| r.get(..4))
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .filter(|low| (0xdc00..0xe000).contains(low));
                    match low {
                        Some(low) => {
                            let code = 0x10000 + ((first - 0xd800) << 10) + (low - 0xdc00);
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                            chars = rest[6..].chars();
                        }
                        None => out.push('\u{fffd}'),
                    }
                } else {
                    out.push(char::from_u32(first).unwrap_or('\u{fffd}'));
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Parses a trace id as Tempo does: hex digits of either case, at most 32,
/// shorter ids left-padded with zeros.
pub(crate) fn parse_trace_id(id: &str) -> Result<[u8; 16], String> {
    if let Some((pos, c)) = id.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "trace IDs can only contain hex characters: invalid character '{c}' at position {}",
            pos + 1
        ));
    }
    let padded_len = id.len() + id.len() % 2;
    if padded_len > 32 {
        return Err("trace IDs can't be larger than 128 bits".to_owned());
    }
    let mut text = "0".repeat(32 - id.len());
    text.push_str(id);
    let mut out = [0u8; 16];
    hex::decode_to_slice(text, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Optional unix-seconds bound of the trace-by-id endpoint (64-bit).
fn parse_seconds_i64(query: &Query, key: &str) -> Result<i64, String> {
    match query.get(key) {
        Some(s) => go_parse_int(s, 64, "ParseInt").map_err(|e| format!("invalid {key}: {e}")),
        None => Ok(0),
    }
}

/// Optional unix-seconds bound of the search and tag endpoints: parsed as a
/// 32-bit int and stored as `uint32`, like Tempo.
fn parse_seconds_u32(query: &Query, key: &str) -> Result<u32, String> {
    match query.get(key) {
        Some(s) => go_parse_int(s, 32, "ParseInt")
            .map(|v| v as u32)
            .map_err(|e| format!("invalid {key}: {e}")),
        None => Ok(0),
    }
}

/// `start`/`end` of trace by id: `(start, end)` to hand to the backend.
pub(crate) fn parse_trace_range(query: &Query) -> Result<Option<(u64, u64)>, String> {
    if let Some(mode) = query.get("mode")
        && !matches!(mode, "all" | "ingesters" | "blocks")
    {
        return Err(format!("invalid value for mode {mode}"));
    }
    let start = parse_seconds_i64(query, "start")?;
    let end = parse_seconds_i64(query, "end")?;
    if start != 0 && end != 0 && end <= start {
        return Err(format!(
            "http parameter start must be before end. received start={start} end={end}"
        ));
    }
    if start == 0 && end == 0 {
        return Ok(None);
    }
    let start = u64::try_from(start).unwrap_or(0);
    let end = if end > 0 { end as u64 } else { u64::MAX };
    Ok(Some((start, end)))
}

fn parse_positive(query: &Query, key: &str) -> Result<Option<u32>, String> {
    let Some(s) = query.get(key) else {
        return Ok(None);
    };
    let n = go_parse_int(s, 64, "Atoi").map_err(|e| format!("invalid {key}: {e}"))?;
    if n <= 0 {
        return Err(format!("invalid {key}: must be a positive number"));
    }
    Ok(Some(u32::try_from(n).unwrap_or(u32::MAX)))
}

fn parse_non_negative(query: &Query, key: &str) -> Result<Option<u32>, String> {
    let Some(s) = query.get(key) else {
        return Ok(None);
    };
    let n = go_parse_int(s, 64, "Atoi").map_err(|e| format!("invalid {key}: {e}"))?;
    if n < 0 {
        return Err(format!("invalid {key}: must be a non-negative number"));
    }
    Ok(Some(u32::try_from(n).unwrap_or(u32::MAX)))
}

fn parse_duration_param(query: &Query, key: &str) -> Result<Option<u64>, String> {
    let Some(s) = query.get(key) else {
        return Ok(None);
    };
    let nanos = go_parse_duration(s).map_err(|e| format!("invalid {key}: {e}"))?;
    let nanos = u64::try_from(nanos).map_err(|_| format!("invalid {key}: must not be negative"))?;
    Ok(Some(nanos))
}

fn non_zero(v: u32) -> Option<u64> {
    (v != 0).then_some(u64::from(v))
}

/// The most tags one search may give: each becomes a condition of the
/// query, and the query's depth must stay bounded.
pub(crate) const MAX_SEARCH_TAGS: usize = 256;

/// Search parameters that are never read as tags.
const RESERVED: &[&str] = &[
    "q",
    "tags",
    "minDuration",
    "maxDuration",
    "limit",
    "spss",
    "start",
    "end",
];

/// Parses `GET /api/search` parameters with Tempo's rules and error texts.
pub(crate) fn parse_search(query: &Query) -> Result<SearchRequest, String> {
    let start = parse_seconds_u32(query, "start")?;
    let end = parse_seconds_u32(query, "end")?;
    let q = query.get("q").map(str::to_owned);
    let mut tags: Vec<(String, String)> = Vec::new();
    let tags_param = query.get("tags");
    if let Some(encoded) = tags_param {
        if q.is_some() {
            return Err("invalid request: can't specify tags and q in the same query".to_owned());
        }
        let pairs = parse_logfmt(encoded).map_err(|e| format!("invalid tags: {} at pos {}", e.msg, e.pos))?;
        for (k, v) in pairs {
            if tags.iter().any(|(seen, _)| *seen == k) {
                return Err(format!("invalid tags: tag {k} has been set twice"));
            }
            tags.push((k, v));
        }
    }
    if q.is_none() && tags_param.is_none() && start == 0 && end == 0 {
        // Old-style search: every other non-empty parameter is a tag.
        for (k, v) in query.pairs() {
            if RESERVED.contains(&k.as_str()) || v.is_empty() || tags.iter().any(|(seen, _)| seen == k) {
                continue;
            }
            tags.push((k.clone(), v.clone()));
        }
    }
    if tags.len() > MAX_SEARCH_TAGS {
        return Err(format!(
            "invalid tags: {} tags given; at most {} are accepted",
            tags.len(),
            MAX_SEARCH_TAGS
        ));
    }
    let min_duration_nanos = parse_duration_param(query, "minDuration")?;
    let max_duration_nanos = parse_duration_param(query, "maxDuration")?;
    if let (Some(min), Some(max)) = (min_duration_nanos, max_duration_nanos)
        && min != 0
        && min > max
    {
        return Err("invalid maxDuration: must be greater than minDuration".to_owned());
    }
    let limit = parse_positive(query, "limit")?.unwrap_or(DEFAULT_SEARCH_LIMIT);
    // As in Tempo, `spss=0` (which tempo-cli sends) means the default.
    let spans_per_spanset = match parse_non_negative(query, "spss")? {
        None | Some(0) => DEFAULT_SPANS_PER_SPANSET,
        Some(n) => n,
    };
    if (start != 0 || end != 0) && end <= start {
        return Err(format!(
            "http parameter start must be before end. received start={start} end={end}"
        ));
    }
    Ok(SearchRequest {
        q,
        tags,
        min_duration_nanos,
        max_duration_nanos,
        limit,
        spans_per_spanset,
        start: non_zero(start),
        end: non_zero(end),
    })
}

/// Parses the tag-names endpoints' parameters.
pub(crate) fn parse_tag_names(query: &Query) -> Result<TagNamesRequest, String> {
    let scope = match query.get("scope") {
        Some(s) => Some(s.parse::<TagScope>().map_err(|e| e.to_string())?),
        None => None,
    };
    let start = parse_seconds_u32(query, "start")?;
    let end = parse_seconds_u32(query, "end")?;
    let limit = parse_positive(query, "limit")?;
    Ok(TagNamesRequest {
        scope,
        q: query.get("q").map(str::to_owned),
        start: non_zero(start),
        end: non_zero(end),
        limit,
    })
}

/// Parses the tag-values endpoints' path segment and parameters.
pub(crate) fn parse_tag_values(tag: &str, v2: bool, query: &Query) -> Result<TagValuesRequest, String> {
    if tag.is_empty() {
        return Err("please provide a non-empty tagName".to_owned());
    }
    let tag = query_unescape(tag).ok_or_else(|| "error in unescaping tagName".to_owned())?;
    if v2 {
        validate_traceql_identifier(&tag).map_err(|e| format!("please provide a valid tagName: {e}"))?;
    }
    let start = parse_seconds_u32(query, "start")?;
    let end = parse_seconds_u32(query, "end")?;
    let limit = parse_positive(query, "limit")?;
    Ok(TagValuesRequest {
        tag,
        v2,
        q: query.get("q").map(str::to_owned),
        start: non_zero(start),
        end: non_zero(end),
        limit,
    })
}

/// Intrinsics that stand alone in a TraceQL filter.
const BARE_INTRINSICS: &[&str] = &[
    "duration",
    "childCount",
    "name",
    "status",
    "statusMessage",
    "kind",
    "rootName",
    "rootServiceName",
    "rootService",
    "traceDuration",
    "nestedSetLeft",
    "nestedSetRight",
    "nestedSetParent",
];

/// Scoped intrinsics (`scope:name`).
const SCOPED_INTRINSICS: &[&str] = &[
    "trace:duration",
    "trace:rootName",
    "trace:rootService",
    "trace:id",
    "span:duration",
    "span:name",
    "span:kind",
    "span:status",
    "span:statusMessage",
    "span:id",
    "span:parentID",
    "span:childCount",
    "event:name",
    "event:timeSinceStart",
    "link:traceID",
    "link:spanID",
    "instrumentation:name",
    "instrumentation:version",
];

/// Attribute prefixes, longest first.
const ATTRIBUTE_PREFIXES: &[&str] = &[
    "parent.resource.",
    "parent.span.",
    "instrumentation.",
    "resource.",
    "parent.",
    "event.",
    "link.",
    "span.",
    ".",
];

fn is_attribute_char(c: char) -> bool {
    !c.is_whitespace() && !"{}()=~!<>&|^,".contains(c)
}

/// Checks that `name` is a TraceQL attribute or intrinsic, as Tempo's
/// `ParseIdentifier` does for the v2 tag-values path; the error text follows
/// Tempo's for the common case of an unscoped name (`service.name`).
pub(crate) fn validate_traceql_identifier(name: &str) -> Result<(), String> {
    let fail = |col: usize, msg: String| {
        Err(format!(
            "failed to parse identifier {name}: parse error at line 1, col {col}: {msg}"
        ))
    };
    if BARE_INTRINSICS.contains(&name) || SCOPED_INTRINSICS.contains(&name) {
        return Ok(());
    }
    for prefix in ATTRIBUTE_PREFIXES {
        if let Some(rest) = name.strip_prefix(prefix) {
            return match attribute_body_ok(rest) {
                Ok(()) => Ok(()),
                Err(msg) => fail(2 + prefix.chars().count(), msg),
            };
        }
    }
    // A bare word: the TraceQL lexer reads an identifier (letters, digits,
    // `_`) and rejects it.
    let ident: String = name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    if ident.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_') {
        return fail(2, format!("unknown identifier: {ident}"));
    }
    fail(2, format!("syntax error: unexpected {}", go_quote(name)))
}

fn attribute_body_ok(rest: &str) -> Result<(), String> {
    if rest.is_empty() {
        return Err("syntax error: unexpected END_ATTRIBUTE, expecting IDENTIFIER".to_owned());
    }
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c == '"' {
            let mut closed = false;
            while let Some(q) = chars.next() {
                match q {
                    '\\' => match chars.next() {
                        Some('"' | '\\') => {}
                        _ => return Err("invalid escape sequence".to_owned()),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    _ => {}
                }
            }
            if !closed {
                return Err("unexpected EOF, expecting \"".to_owned());
            }
        } else if !is_attribute_char(c) {
            return Err(format!("syntax error: unexpected {}", go_quote(&c.to_string())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(raw: &str) -> Query {
        Query::parse(Some(raw))
    }

    #[test]
    fn query_strings_decode_like_go() {
        let query = q("a=1&b=x+y&c=%7Bstatus%3Derror%7D&bad=%zz&d=&a=2&semi=1;2");
        assert_eq!(query.get("a"), Some("1"));
        assert_eq!(query.get("b"), Some("x y"));
        assert_eq!(query.get("c"), Some("{status=error}"));
        assert_eq!(query.get("bad"), None);
        assert_eq!(query.get("d"), None);
        assert_eq!(query.get("semi"), None);
        assert_eq!(Query::parse(None).get("a"), None);
    }

    #[test]
    fn go_int_errors() {
        assert_eq!(go_parse_int("42", 32, "ParseInt"), Ok(42));
        assert_eq!(go_parse_int("-7", 32, "ParseInt"), Ok(-7));
        assert_eq!(go_parse_int("+7", 64, "Atoi"), Ok(7));
        assert_eq!(
            go_parse_int("x", 64, "ParseInt"),
            Err(r#"strconv.ParseInt: parsing "x": invalid syntax"#.to_owned())
        );
        assert_eq!(
            go_parse_int("2147483648", 32, "ParseInt"),
            Err(r#"strconv.ParseInt: parsing "2147483648": value out of range"#.to_owned())
        );
        assert_eq!(go_parse_int("-2147483648", 32, "ParseInt"), Ok(-2_147_483_648));
        assert_eq!(
            go_parse_int("1.5", 64, "Atoi"),
            Err(r#"strconv.Atoi: parsing "1.5": invalid syntax"#.to_owned())
        );
        assert_eq!(go_parse_int("9223372036854775807", 64, "Atoi"), Ok(i64::MAX));
        assert!(go_parse_int("9223372036854775808", 64, "Atoi").is_err());
    }

    #[test]
    fn go_durations() {
        let ms = 1_000_000;
        assert_eq!(go_parse_duration("100ms"), Ok(100 * ms));
        assert_eq!(go_parse_duration("1.5s"), Ok(1_500 * ms));
        assert_eq!(go_parse_duration("2m"), Ok(120_000 * ms));
        assert_eq!(go_parse_duration("1h30m"), Ok(5_400_000 * ms));
        assert_eq!(go_parse_duration("0"), Ok(0));
        assert_eq!(go_parse_duration(".5s"), Ok(500 * ms));
        assert_eq!(go_parse_duration("300us"), Ok(300_000));
        assert_eq!(go_parse_duration("300\u{b5}s"), Ok(300_000));
        assert_eq!(go_parse_duration("-1s"), Ok(-1_000_000_000));
        assert_eq!(go_parse_duration("1.000000001s"), Ok(1_000_000_001));
        assert_eq!(
            go_parse_duration("100"),
            Err(r#"time: missing unit in duration "100""#.to_owned())
        );
        assert_eq!(
            go_parse_duration("5d"),
            Err(r#"time: unknown unit "d" in duration "5d""#.to_owned())
        );
        assert_eq!(
            go_parse_duration("abc"),
            Err(r#"time: invalid duration "abc""#.to_owned())
        );
        assert_eq!(go_parse_duration(""), Err(r#"time: invalid duration """#.to_owned()));
        assert_eq!(go_parse_duration("."), Err(r#"time: invalid duration ".""#.to_owned()));
        assert!(go_parse_duration("9999999999h").is_err());
    }

    #[test]
    fn logfmt() {
        let pairs = parse_logfmt(r#"service.name=golden-grpc-svc  http.status_code=200"#).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("service.name".into(), "golden-grpc-svc".into()),
                ("http.status_code".into(), "200".into())
            ]
        );
        let pairs = parse_logfmt(r#"name="GET /api/users" empty= bare msg="a \"q\" \u00e9\n""#).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("name".into(), "GET /api/users".into()),
                ("empty".into(), String::new()),
                ("bare".into(), String::new()),
                ("msg".into(), "a \"q\" \u{e9}\n".into()),
            ]
        );
        assert_eq!(
            parse_logfmt("a='x y'").unwrap(),
            vec![("a".to_owned(), "x y".to_owned())]
        );
        assert_eq!(parse_logfmt("a=1\nb=2").unwrap().len(), 2);
        let err = parse_logfmt("a=b=c").unwrap_err();
        assert_eq!((err.msg.as_str(), err.pos), ("unexpected '='", 4));
        let err = parse_logfmt("=x").unwrap_err();
        assert_eq!((err.msg.as_str(), err.pos), ("unexpected '='", 1));
        let err = parse_logfmt(r#"a="open"#).unwrap_err();
        assert_eq!((err.msg.as_str(), err.pos), ("unterminated quoted value", 8));
        let err = parse_logfmt(r#"k"ey=1"#).unwrap_err();
        assert_eq!((err.msg.as_str(), err.pos), ("unexpected '\"'", 2));
        let err = parse_logfmt(r#"a="\q""#).unwrap_err();
        assert_eq!(err.msg, "invalid quoted value");
    }

    #[test]
    fn trace_ids() {
        let full = parse_trace_id("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(hex::encode(full), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            parse_trace_id("0AF7651916CD43DD8448EB211C80319C").unwrap(),
            parse_trace_id("0af7651916cd43dd8448eb211c80319c").unwrap()
        );
        assert_eq!(
            hex::encode(parse_trace_id("7f3a2c1b9d8e6f50").unwrap()),
            "00000000000000007f3a2c1b9d8e6f50"
        );
        assert_eq!(
            hex::encode(parse_trace_id("abc").unwrap()),
            format!("{}abc", "0".repeat(29))
        );
        assert_eq!(
            parse_trace_id("not-a-hex-id").unwrap_err(),
            "trace IDs can only contain hex characters: invalid character 'n' at position 1"
        );
        assert_eq!(
            parse_trace_id("12xz").unwrap_err(),
            "trace IDs can only contain hex characters: invalid character 'x' at position 3"
        );
        assert_eq!(
            parse_trace_id(&"a".repeat(33)).unwrap_err(),
            "trace IDs can't be larger than 128 bits"
        );
    }

    #[test]
    fn search_params() {
        let req = parse_search(&q(
            "tags=service.name%3Dgolden-grpc-svc&minDuration=500ms&start=1795567827&end=1795567948",
        ))
        .unwrap();
        assert_eq!(req.tags, vec![("service.name".into(), "golden-grpc-svc".into())]);
        assert_eq!(req.min_duration_nanos, Some(500_000_000));
        assert_eq!((req.start, req.end), (Some(1_795_567_827), Some(1_795_567_948)));
        assert_eq!((req.limit, req.spans_per_spanset), (20, 3));
        let req = parse_search(&q("q=%7B%7D&limit=2&spss=1")).unwrap();
        assert_eq!((req.q.as_deref(), req.limit, req.spans_per_spanset), (Some("{}"), 2, 1));
        // Old-style tags.
        let req = parse_search(&q("service.name=a&limit=5&x=")).unwrap();
        assert_eq!(req.tags, vec![("service.name".into(), "a".into())]);
        let err = |raw: &str| parse_search(&q(raw)).unwrap_err();
        assert_eq!(
            err("q=%7B%7D&tags=a%3Db"),
            "invalid request: can't specify tags and q in the same query"
        );
        assert_eq!(err("tags=a%3D1+a%3D2"), "invalid tags: tag a has been set twice");
        assert_eq!(err("tags=a%3Db%3Dc"), "invalid tags: unexpected '=' at pos 4");
        assert_eq!(err("limit=0"), "invalid limit: must be a positive number");
        assert_eq!(
            err("limit=x"),
            r#"invalid limit: strconv.Atoi: parsing "x": invalid syntax"#
        );
        assert_eq!(err("spss=-1"), "invalid spss: must be a non-negative number");
        let many: Vec<String> = (0..=MAX_SEARCH_TAGS).map(|i| format!("k{i}%3Dv")).collect();
        assert_eq!(
            err(&format!("tags={}", many.join("+"))),
            format!(
                "invalid tags: {} tags given; at most {MAX_SEARCH_TAGS} are accepted",
                MAX_SEARCH_TAGS + 1
            )
        );
        let req = parse_search(&q("q=%7B%7D&spss=0")).unwrap();
        assert_eq!(req.spans_per_spanset, DEFAULT_SPANS_PER_SPANSET);
        assert_eq!(
            err("minDuration=1x"),
            r#"invalid minDuration: time: unknown unit "x" in duration "1x""#
        );
        assert_eq!(
            err("minDuration=2s&maxDuration=1s"),
            "invalid maxDuration: must be greater than minDuration"
        );
        assert_eq!(
            err("start=x"),
            r#"invalid start: strconv.ParseInt: parsing "x": invalid syntax"#
        );
        assert_eq!(
            err("start=10&end=5"),
            "http parameter start must be before end. received start=10 end=5"
        );
        assert_eq!(
            err("start=10"),
            "http parameter start must be before end. received start=10 end=0"
        );
    }

    #[test]
    fn trace_range() {
        assert_eq!(parse_trace_range(&q("")), Ok(None));
        assert_eq!(parse_trace_range(&q("start=5&end=9")), Ok(Some((5, 9))));
        assert_eq!(parse_trace_range(&q("start=5")), Ok(Some((5, u64::MAX))));
        assert_eq!(parse_trace_range(&q("end=9")), Ok(Some((0, 9))));
        assert_eq!(
            parse_trace_range(&q("start=9&end=3")),
            Err("http parameter start must be before end. received start=9 end=3".to_owned())
        );
        assert_eq!(
            parse_trace_range(&q("mode=sideways")),
            Err("invalid value for mode sideways".to_owned())
        );
    }

    #[test]
    fn tag_requests() {
        let req = parse_tag_names(&q("scope=span&start=1&end=2&limit=7")).unwrap();
        assert_eq!(req.scope, Some(TagScope::Span));
        assert_eq!((req.start, req.end, req.limit), (Some(1), Some(2), Some(7)));
        assert_eq!(parse_tag_names(&q("scope=nope")).unwrap_err(), "invalid scope: nope");
        let req = parse_tag_values("resource.service.name", true, &q("q=%7B%7D")).unwrap();
        assert_eq!(
            (req.tag.as_str(), req.q.as_deref()),
            ("resource.service.name", Some("{}"))
        );
        assert!(parse_tag_values("service.name", false, &q("")).is_ok());
        assert_eq!(
            parse_tag_values("service.name", true, &q("")).unwrap_err(),
            "please provide a valid tagName: failed to parse identifier service.name: \
             parse error at line 1, col 2: unknown identifier: service"
        );
        for ok in [
            "status",
            "kind",
            "name",
            "span:status",
            "trace:rootService",
            "span.http.response.status_code",
            ".foo",
            "event.exception.type",
            "resource.\"a b\"",
        ] {
            assert!(validate_traceql_identifier(ok).is_ok(), "{ok}");
        }
        for bad in ["resource.", "span.a{b", "1abc", "span.\"open"] {
            assert!(validate_traceql_identifier(bad).is_err(), "{bad}");
        }
    }
}
