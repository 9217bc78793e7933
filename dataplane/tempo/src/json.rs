//! JSON bodies in exactly the shape Tempo (gogo `jsonpb` over `tempopb`)
//! writes them: proto field order, camelCase keys, 64-bit integers as
//! strings, enums by name, bytes as base64, zero and empty fields omitted
//! (except where Tempo keeps them), Go's string escaping and float format.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

use crate::api::{BuildInfo, ScopedTags, SearchMetrics, SpanOut, SpanSetOut, TraceSummary, TypedValue};

/// Formats a float as Go's `encoding/json` does: shortest round-trip digits,
/// plain notation in `[1e-6, 1e21)`, otherwise `1e+21` / `1e-7`; NaN and
/// infinities as jsonpb's strings (without the quotes).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        return match exp.strip_prefix('-') {
            Some(neg) => format!("{mantissa}e-{neg}"),
            None => format!("{mantissa}e+{exp:0>2}"),
        };
    }
    format!("{f}")
}

/// Appends `s` as a JSON string with Go's escaping (`<`, `>`, `&`, U+2028 and
/// U+2029 escaped too).
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes one JSON object, field by field, handling the commas.
struct Obj<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, empty: true }
    }

    /// Starts a field and returns the buffer to write its value into.
    fn key(&mut self, key: &str) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        push_str(self.out, key);
        self.out.push(':');
        self.out
    }

    fn str(&mut self, key: &str, value: &str) {
        push_str(self.key(key), value);
    }

    fn str_nonempty(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.str(key, value);
        }
    }

    /// A 64-bit integer: a quoted decimal, omitted when zero.
    fn u64_nonzero(&mut self, key: &str, value: u64) {
        if value != 0 {
            let _ = write!(self.key(key), "\"{value}\"");
        }
    }

    /// A 32-bit integer: a number, omitted when zero.
    fn u32_nonzero(&mut self, key: &str, value: u32) {
        if value != 0 {
            let _ = write!(self.key(key), "{value}");
        }
    }

    fn bytes_nonempty(&mut self, key: &str, value: &[u8]) {
        if !value.is_empty() {
            self.str(key, &BASE64.encode(value));
        }
    }

    fn array<T>(&mut self, key: &str, items: &[T], mut each: impl FnMut(&mut String, &T)) {
        let out = self.key(key);
        out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            each(out, item);
        }
        out.push(']');
    }

    fn array_nonempty<T>(&mut self, key: &str, items: &[T], each: impl FnMut(&mut String, &T)) {
        if !items.is_empty() {
            self.array(key, items, each);
        }
    }

    fn end(self) {
        self.out.push('}');
    }
}

fn any_value(out: &mut String, value: &AnyValue) {
    let mut obj = Obj::new(out);
    match &value.value {
        Some(any_value::Value::StringValue(s)) => obj.str("stringValue", s),
        Some(any_value::Value::BoolValue(b)) => {
            let _ = write!(obj.key("boolValue"), "{b}");
        }
        Some(any_value::Value::IntValue(i)) => {
            let _ = write!(obj.key("intValue"), "\"{i}\"");
        }
        Some(any_value::Value::DoubleValue(f)) => {
            let out = obj.key("doubleValue");
            if f.is_finite() {
                out.push_str(&go_float(*f));
            } else {
                push_str(out, &go_float(*f));
            }
        }
        Some(any_value::Value::ArrayValue(array)) => {
            let mut inner = Obj::new(obj.key("arrayValue"));
            inner.array_nonempty("values", &array.values, any_value);
            inner.end();
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let mut inner = Obj::new(obj.key("kvlistValue"));
            inner.array_nonempty("values", &list.values, key_value);
            inner.end();
        }
        Some(any_value::Value::BytesValue(bytes)) => obj.str("bytesValue", &BASE64.encode(bytes)),
        // Dictionary references only exist inside profiles; nothing to show.
        Some(any_value::Value::StringValueStrindex(_)) | None => {}
    }
    obj.end();
}

fn key_value(out: &mut String, kv: &KeyValue) {
    let mut obj = Obj::new(out);
    obj.str_nonempty("key", &kv.key);
    let value = obj.key("value");
    match &kv.value {
        Some(v) => any_value(value, v),
        None => value.push_str("{}"),
    }
    obj.end();
}

fn attributes(obj: &mut Obj<'_>, attrs: &[KeyValue]) {
    obj.array_nonempty("attributes", attrs, key_value);
}

fn resource(out: &mut String, resource: Option<&Resource>) {
    let mut obj = Obj::new(out);
    if let Some(r) = resource {
        attributes(&mut obj, &r.attributes);
        obj.u32_nonzero("droppedAttributesCount", r.dropped_attributes_count);
    }
    obj.end();
}

fn scope(out: &mut String, scope: Option<&InstrumentationScope>) {
    let mut obj = Obj::new(out);
    if let Some(s) = scope {
        obj.str_nonempty("name", &s.name);
        obj.str_nonempty("version", &s.version);
        attributes(&mut obj, &s.attributes);
        obj.u32_nonzero("droppedAttributesCount", s.dropped_attributes_count);
    }
    obj.end();
}

fn span_kind_name(kind: i32) -> Option<&'static str> {
    Some(match kind {
        1 => "SPAN_KIND_INTERNAL",
        2 => "SPAN_KIND_SERVER",
        3 => "SPAN_KIND_CLIENT",
        4 => "SPAN_KIND_PRODUCER",
        5 => "SPAN_KIND_CONSUMER",
        _ => return None,
    })
}

fn status_code_name(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "STATUS_CODE_OK",
        2 => "STATUS_CODE_ERROR",
        _ => return None,
    })
}

/// An enum field: its name when known, its number otherwise; omitted when 0.
fn enum_field(obj: &mut Obj<'_>, key: &str, value: i32, name: fn(i32) -> Option<&'static str>) {
    if value == 0 {
        return;
    }
    match name(value) {
        Some(n) => obj.str(key, n),
        None => {
            let _ = write!(obj.key(key), "{value}");
        }
    }
}

fn status(out: &mut String, status: Option<&Status>) {
    let mut obj = Obj::new(out);
    if let Some(s) = status {
        obj.str_nonempty("message", &s.message);
        enum_field(&mut obj, "code", s.code, status_code_name);
    }
    obj.end();
}

fn event(out: &mut String, event: &span::Event) {
    let mut obj = Obj::new(out);
    obj.u64_nonzero("timeUnixNano", event.time_unix_nano);
    obj.str_nonempty("name", &event.name);
    attributes(&mut obj, &event.attributes);
    obj.u32_nonzero("droppedAttributesCount", event.dropped_attributes_count);
    obj.end();
}

fn link(out: &mut String, link: &span::Link) {
    let mut obj = Obj::new(out);
    obj.bytes_nonempty("traceId", &link.trace_id);
    obj.bytes_nonempty("spanId", &link.span_id);
    obj.str_nonempty("traceState", &link.trace_state);
    attributes(&mut obj, &link.attributes);
    obj.u32_nonzero("droppedAttributesCount", link.dropped_attributes_count);
    obj.u32_nonzero("flags", link.flags);
    obj.end();
}

fn otlp_span(out: &mut String, span: &Span) {
    let mut obj = Obj::new(out);
    obj.bytes_nonempty("traceId", &span.trace_id);
    obj.bytes_nonempty("spanId", &span.span_id);
    obj.str_nonempty("traceState", &span.trace_state);
    obj.bytes_nonempty("parentSpanId", &span.parent_span_id);
    obj.u32_nonzero("flags", span.flags);
    obj.str_nonempty("name", &span.name);
    enum_field(&mut obj, "kind", span.kind, span_kind_name);
    obj.u64_nonzero("startTimeUnixNano", span.start_time_unix_nano);
    obj.u64_nonzero("endTimeUnixNano", span.end_time_unix_nano);
    attributes(&mut obj, &span.attributes);
    obj.u32_nonzero("droppedAttributesCount", span.dropped_attributes_count);
    obj.array_nonempty("events", &span.events, event);
    obj.u32_nonzero("droppedEventsCount", span.dropped_events_count);
    obj.array_nonempty("links", &span.links, link);
    obj.u32_nonzero("droppedLinksCount", span.dropped_links_count);
    status(obj.key("status"), span.status.as_ref());
    obj.end();
}

fn scope_spans(out: &mut String, ss: &ScopeSpans) {
    let mut obj = Obj::new(out);
    scope(obj.key("scope"), ss.scope.as_ref());
    obj.array_nonempty("spans", &ss.spans, otlp_span);
    obj.str_nonempty("schemaUrl", &ss.schema_url);
    obj.end();
}

fn resource_spans(out: &mut String, rs: &ResourceSpans) {
    let mut obj = Obj::new(out);
    resource(obj.key("resource"), rs.resource.as_ref());
    obj.array_nonempty("scopeSpans", &rs.scope_spans, scope_spans);
    obj.str_nonempty("schemaUrl", &rs.schema_url);
    obj.end();
}

/// `GET /api/traces/{id}`: `{"batches":[` pieces `]}`; not found is 404.
pub(crate) const TRACE_V1_OPEN: &str = r#"{"batches":["#;
/// The end of a trace v1 body.
pub(crate) const TRACE_V1_CLOSE: &str = "]}";
/// `GET /api/v2/traces/{id}`: `{"trace":{"resourceSpans":[` pieces `]},"metrics":{}}`.
pub(crate) const TRACE_V2_OPEN: &str = r#"{"trace":{"resourceSpans":["#;
/// The end of a trace v2 body.
pub(crate) const TRACE_V2_CLOSE: &str = r#"]},"metrics":{}}"#;

/// Tempo's `"status":"PARTIAL","message":...` fields, after a comma, when
/// the trace may lack spans; nothing otherwise.
fn partial_fields(partial: Option<&str>) -> String {
    match partial {
        Some(why) => {
            let mut out = String::from(r#","status":"PARTIAL","message":"#);
            push_str(&mut out, why);
            out
        }
        None => String::new(),
    }
}

/// The end of a v2 trace answer.
pub(crate) fn trace_v2_close(partial: Option<&str>) -> String {
    match partial {
        None => TRACE_V2_CLOSE.to_owned(),
        Some(_) => format!(r#"]}},"metrics":{{}}{}}}"#, partial_fields(partial)),
    }
}

/// The v2 answer for a trace not found.
pub(crate) fn trace_v2_not_found(partial: Option<&str>) -> String {
    match partial {
        None => TRACE_V2_NOT_FOUND.to_owned(),
        Some(_) => format!(r#"{{"trace":{{}},"metrics":{{}}{}}}"#, partial_fields(partial)),
    }
}
/// `GET /api/v2/traces/{id}` for a trace that is not there.
pub(crate) const TRACE_V2_NOT_FOUND: &str = r#"{"trace":{},"metrics":{}}"#;

/// A piece of a trace: its resource spans, separated by commas.
pub(crate) fn batches(batches: &[ResourceSpans]) -> String {
    let mut out = String::new();
    for (i, rs) in batches.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        resource_spans(&mut out, rs);
    }
    out
}

fn search_span(out: &mut String, span: &SpanOut) {
    let mut obj = Obj::new(out);
    obj.str("spanID", &hex::encode(span.span_id));
    if let Some(name) = &span.name {
        obj.str_nonempty("name", name);
    }
    obj.u64_nonzero("startTimeUnixNano", span.start_time_unix_nano);
    obj.u64_nonzero("durationNanos", span.duration_nanos);
    attributes(&mut obj, &span.attributes);
    obj.end();
}

fn span_set(out: &mut String, set: &SpanSetOut) {
    let mut obj = Obj::new(out);
    obj.array_nonempty("spans", &set.spans, search_span);
    obj.u32_nonzero("matched", set.matched);
    attributes(&mut obj, &set.attributes);
    obj.end();
}

/// Hex without leading zeros, as Tempo shows trace ids in search results.
pub(crate) fn trace_id_hex(id: &[u8; 16]) -> String {
    hex::encode(id).trim_start_matches('0').to_owned()
}

fn trace_summary(out: &mut String, t: &TraceSummary) {
    let mut obj = Obj::new(out);
    obj.str_nonempty("traceID", &trace_id_hex(&t.trace_id));
    obj.str_nonempty("rootServiceName", &t.root_service_name);
    obj.str_nonempty("rootTraceName", &t.root_trace_name);
    obj.u64_nonzero("startTimeUnixNano", t.start_time_unix_nano);
    obj.u32_nonzero("durationMs", t.duration_ms);
    if let Some(first) = t.span_sets.first() {
        span_set(obj.key("spanSet"), first);
    }
    obj.array_nonempty("spanSets", &t.span_sets, span_set);
    if !t.service_stats.is_empty() {
        let mut stats = Obj::new(obj.key("serviceStats"));
        for (service, s) in &t.service_stats {
            let mut one = Obj::new(stats.key(service));
            one.u32_nonzero("spanCount", s.span_count);
            one.u32_nonzero("errorCount", s.error_count);
            one.end();
        }
        stats.end();
    }
    obj.end();
}

fn search_metrics(out: &mut String, m: &SearchMetrics) {
    let mut obj = Obj::new(out);
    obj.u32_nonzero("inspectedTraces", m.inspected_traces);
    obj.u64_nonzero("inspectedBytes", m.inspected_bytes);
    obj.u32_nonzero("completedJobs", m.completed_jobs);
    obj.u32_nonzero("totalJobs", m.total_jobs);
    obj.end();
}

/// `GET /api/search`: `{"traces":[` traces `],"metrics":{...}}`.
pub(crate) const SEARCH_OPEN: &str = r#"{"traces":["#;

/// One trace of a search answer.
pub(crate) fn search_trace(t: &TraceSummary) -> String {
    let mut out = String::new();
    trace_summary(&mut out, t);
    out
}

/// The end of a search answer: its metrics.
pub(crate) fn search_close(m: &SearchMetrics) -> String {
    let mut out = String::from("],");
    let mut obj = Obj {
        out: &mut out,
        empty: true,
    };
    search_metrics(obj.key("metrics"), m);
    obj.end();
    out
}

/// Writes one element of a string array.
fn string_item<S: AsRef<str>>(out: &mut String, s: &S) {
    push_str(out, s.as_ref());
}

/// `GET /api/search/tags`.
pub(crate) fn tag_names_v1(names: &[String]) -> String {
    let mut out = String::new();
    let mut obj = Obj::new(&mut out);
    obj.array("tagNames", names, string_item);
    obj.key("metrics").push_str("{}");
    obj.end();
    out
}

/// `GET /api/v2/search/tags`.
pub(crate) fn tag_names_v2(scopes: &[ScopedTags]) -> String {
    let mut out = String::new();
    let mut obj = Obj::new(&mut out);
    obj.array("scopes", scopes, |out, scoped| {
        let mut one = Obj::new(out);
        one.str("name", scoped.scope.as_str());
        one.array_nonempty("tags", &scoped.names, string_item);
        one.end();
    });
    obj.key("metrics").push_str("{}");
    obj.end();
    out
}

/// `GET /api/search/tag/{tag}/values`.
pub(crate) fn tag_values_v1(values: &[String]) -> String {
    let mut out = String::new();
    let mut obj = Obj::new(&mut out);
    obj.array("tagValues", values, string_item);
    obj.key("metrics").push_str("{}");
    obj.end();
    out
}

/// `GET /api/v2/search/tag/{tag}/values`.
pub(crate) fn tag_values_v2(values: &[TypedValue]) -> String {
    let mut out = String::new();
    let mut obj = Obj::new(&mut out);
    obj.array("tagValues", values, |out, v| {
        let mut one = Obj::new(out);
        one.str_nonempty("type", &v.r#type);
        one.str_nonempty("value", &v.value);
        one.end();
    });
    obj.key("metrics").push_str("{}");
    obj.end();
    out
}

/// `GET /api/status/buildinfo`: every key, even when empty, and a trailing
/// newline (Tempo writes it with Go's `json.Encoder`).
pub(crate) fn build_info(info: &BuildInfo) -> String {
    let mut out = String::new();
    let mut obj = Obj::new(&mut out);
    obj.str("version", &info.version);
    obj.str("revision", &info.revision);
    obj.str("branch", &info.branch);
    obj.str("buildUser", &info.build_user);
    obj.str("buildDate", &info.build_date);
    obj.str("goVersion", &info.go_version);
    obj.end();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go() {
        assert_eq!(go_float(0.25), "0.25");
        assert_eq!(go_float(42.5), "42.5");
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(-3.0), "-3");
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1e20), "100000000000000000000");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e300), "1.5e+300");
        assert_eq!(go_float(0.000001), "0.000001");
        assert_eq!(go_float(1e-7), "1e-7");
        assert_eq!(go_float(-2.5e-10), "-2.5e-10");
        assert_eq!(go_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(go_float(f64::NAN), "NaN");
        assert_eq!(go_float(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn strings_like_go() {
        let mut out = String::new();
        push_str(&mut out, "a\"b\\c\n<root span not yet received> & \u{1} \u{2028} é");
        assert_eq!(
            out,
            r#""a\"b\\c\n\u003croot span not yet received\u003e \u0026 \u0001 \u2028 é""#
        );
    }

    #[test]
    fn any_values() {
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
        let kv = |key: &str, v: any_value::Value| KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let cases = [
            (
                kv("s", any_value::Value::StringValue(String::new())),
                r#"{"key":"s","value":{"stringValue":""}}"#,
            ),
            (
                kv("i", any_value::Value::IntValue(-17)),
                r#"{"key":"i","value":{"intValue":"-17"}}"#,
            ),
            (
                kv("b", any_value::Value::BoolValue(false)),
                r#"{"key":"b","value":{"boolValue":false}}"#,
            ),
            (
                kv("d", any_value::Value::DoubleValue(0.5)),
                r#"{"key":"d","value":{"doubleValue":0.5}}"#,
            ),
            (
                kv("n", any_value::Value::DoubleValue(f64::INFINITY)),
                r#"{"key":"n","value":{"doubleValue":"Infinity"}}"#,
            ),
            (
                kv("x", any_value::Value::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])),
                r#"{"key":"x","value":{"bytesValue":"3q2+7w=="}}"#,
            ),
            (
                kv("a", any_value::Value::ArrayValue(ArrayValue::default())),
                r#"{"key":"a","value":{"arrayValue":{}}}"#,
            ),
            (
                kv(
                    "k",
                    any_value::Value::KvlistValue(KeyValueList {
                        values: vec![kv("in", any_value::Value::IntValue(1))],
                    }),
                ),
                r#"{"key":"k","value":{"kvlistValue":{"values":[{"key":"in","value":{"intValue":"1"}}]}}}"#,
            ),
            (
                KeyValue {
                    key: "none".into(),
                    ..Default::default()
                },
                r#"{"key":"none","value":{}}"#,
            ),
        ];
        for (input, expected) in cases {
            let mut out = String::new();
            key_value(&mut out, &input);
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn not_found_v2_and_empty_search() {
        assert_eq!(
            format!("{SEARCH_OPEN}{}", search_close(&SearchMetrics::default())),
            r#"{"traces":[],"metrics":{}}"#
        );
        assert_eq!(tag_names_v1(&[]), r#"{"tagNames":[],"metrics":{}}"#);
        assert_eq!(tag_values_v1(&[]), r#"{"tagValues":[],"metrics":{}}"#);
    }

    #[test]
    fn trace_ids_lose_leading_zeros() {
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&[0x7f, 0x3a, 0x2c, 0x1b, 0x9d, 0x8e, 0x6f, 0x50]);
        assert_eq!(trace_id_hex(&id), "7f3a2c1b9d8e6f50");
        assert_eq!(trace_id_hex(&[0; 16]), "");
    }
}
