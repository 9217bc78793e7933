//! Validation of OTLP trace requests before anything is logged, and the
//! limits that keep an acknowledged request storable: attribute values are
//! truncated and counted; too many attributes on one element, or a request
//! that would grow too large once converted to span rows, is refused before
//! the acknowledgement, never dropped after it.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

/// The bounds a request is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest string or bytes attribute value kept; longer ones are cut.
    pub max_value: usize,
    /// Most attributes on one resource, scope, span, event or link.
    pub max_attributes: usize,
    /// Largest the request may be once converted to span rows, where the
    /// resource and scope attributes repeat on every span row.
    pub max_converted: usize,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Malformed: 400 / INVALID_ARGUMENT.
    #[error("{0}")]
    Invalid(String),
    /// Past a size bound: 413 / INVALID_ARGUMENT.
    #[error("{0}")]
    TooLarge(String),
}

/// Fixed cost of one span row (ids, times, kind, status) in the estimate of
/// the converted size.
const ROW_OVERHEAD: usize = 64;

fn attributes_size(attrs: &[KeyValue]) -> usize {
    attrs.iter().map(Message::encoded_len).sum()
}

fn count_attributes(attrs: &[KeyValue], max: usize, at: impl FnOnce() -> String) -> Result<(), Refused> {
    if attrs.len() > max {
        return Err(Refused::TooLarge(format!(
            "{}: {} attributes; at most {max} are accepted (acceptor.max_attributes, or the tenant's limits \
             max_attributes)",
            at(),
            attrs.len()
        )));
    }
    Ok(())
}

/// What validation found in a valid request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub spans: usize,
    pub truncated_values: u64,
    /// The OTLP bytes of each trace's spans in the request (after
    /// truncation), for the tenant's bytes-per-trace limit.
    pub trace_bytes: std::collections::HashMap<[u8; 16], u64>,
}

/// Checks ids and timestamps of every span, event and link, truncates
/// attribute values longer than `limits.max_value` bytes, and refuses
/// elements with too many attributes and requests too large once converted.
/// The error names the first offending element by its position, e.g.
/// `resource_spans[0].scope_spans[1].spans[2]: span_id is 4 bytes, expected 8`.
pub fn validate_traces(req: &mut ExportTraceServiceRequest, limits: Limits) -> Result<Summary, Refused> {
    let mut s = Summary::default();
    let max_value = limits.max_value;
    let max_attrs = limits.max_attributes;
    let mut converted = 0usize;
    for (ri, rs) in req.resource_spans.iter_mut().enumerate() {
        let mut resource_size = 0;
        if let Some(r) = rs.resource.as_mut() {
            count_attributes(&r.attributes, max_attrs, || format!("resource_spans[{ri}].resource"))?;
            s.truncated_values += limit(&mut r.attributes, max_value);
            resource_size = attributes_size(&r.attributes);
        }
        for (si, ss) in rs.scope_spans.iter_mut().enumerate() {
            let mut scope_size = 0;
            if let Some(scope) = ss.scope.as_mut() {
                count_attributes(&scope.attributes, max_attrs, || {
                    format!("resource_spans[{ri}].scope_spans[{si}].scope")
                })?;
                s.truncated_values += limit(&mut scope.attributes, max_value);
                scope_size = attributes_size(&scope.attributes) + scope.name.len() + scope.version.len();
            }
            for (pi, span) in ss.spans.iter_mut().enumerate() {
                let at = || format!("resource_spans[{ri}].scope_spans[{si}].spans[{pi}]");
                let invalid = |e: String| Refused::Invalid(format!("{}: {e}", at()));
                id(&span.trace_id, 16, "trace_id").map_err(invalid)?;
                id(&span.span_id, 8, "span_id").map_err(invalid)?;
                if !span.parent_span_id.is_empty() {
                    id(&span.parent_span_id, 8, "parent_span_id").map_err(invalid)?;
                }
                if span.start_time_unix_nano == 0 {
                    return Err(invalid("start_time_unix_nano is missing".into()));
                }
                time(span.start_time_unix_nano, "start_time_unix_nano").map_err(invalid)?;
                time(span.end_time_unix_nano, "end_time_unix_nano").map_err(invalid)?;
                count_attributes(&span.attributes, max_attrs, at)?;
                s.truncated_values += limit(&mut span.attributes, max_value);
                for (ei, ev) in span.events.iter_mut().enumerate() {
                    time(ev.time_unix_nano, "time_unix_nano")
                        .map_err(|e| Refused::Invalid(format!("{}.events[{ei}]: {e}", at())))?;
                    count_attributes(&ev.attributes, max_attrs, || format!("{}.events[{ei}]", at()))?;
                    s.truncated_values += limit(&mut ev.attributes, max_value);
                }
                for (li, link) in span.links.iter_mut().enumerate() {
                    let invalid_link = |e: String| Refused::Invalid(format!("{}.links[{li}]: {e}", at()));
                    id(&link.trace_id, 16, "trace_id").map_err(invalid_link)?;
                    id(&link.span_id, 8, "span_id").map_err(invalid_link)?;
                    count_attributes(&link.attributes, max_attrs, || format!("{}.links[{li}]", at()))?;
                    s.truncated_values += limit(&mut link.attributes, max_value);
                }
                let span_size = span.encoded_len();
                converted = converted
                    .saturating_add(resource_size + scope_size + ROW_OVERHEAD)
                    .saturating_add(span_size);
                // The id is 16 bytes: checked above.
                if let Ok(trace) = <[u8; 16]>::try_from(span.trace_id.as_slice()) {
                    *s.trace_bytes.entry(trace).or_default() += span_size as u64;
                }
                s.spans += 1;
            }
        }
    }
    if converted > limits.max_converted {
        return Err(Refused::TooLarge(format!(
            "request converts to about {converted} bytes of span rows (resource and scope attributes repeat on \
             every span); at most {} are accepted (acceptor.max_converted_request_size): send fewer spans per \
             request or smaller resource attributes",
            limits.max_converted
        )));
    }
    Ok(s)
}

fn id(bytes: &[u8], len: usize, field: &str) -> Result<(), String> {
    if bytes.len() != len {
        return Err(format!("{field} is {} bytes, expected {len}", bytes.len()));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err(format!("{field} is all zeros, which OTLP defines as invalid"));
    }
    Ok(())
}

fn time(t: u64, field: &str) -> Result<(), String> {
    if t > i64::MAX as u64 {
        return Err(format!("{field} {t} is past the year 2262"));
    }
    Ok(())
}

/// Truncates string and bytes values (also inside arrays and maps) longer than
/// `max` bytes; returns how many were cut.
fn limit(attrs: &mut [KeyValue], max: usize) -> u64 {
    attrs
        .iter_mut()
        .filter_map(|kv| kv.value.as_mut())
        .map(|v| limit_value(v, max))
        .sum()
}

fn limit_value(v: &mut AnyValue, max: usize) -> u64 {
    match v.value.as_mut() {
        Some(any_value::Value::StringValue(s)) if s.len() > max => {
            let mut cut = max;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            1
        }
        Some(any_value::Value::BytesValue(b)) if b.len() > max => {
            b.truncate(max);
            1
        }
        Some(any_value::Value::ArrayValue(a)) => a.values.iter_mut().map(|v| limit_value(v, max)).sum(),
        Some(any_value::Value::KvlistValue(kv)) => limit(&mut kv.values, max),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    const LIMITS: Limits = Limits {
        max_value: 100,
        max_attributes: 8,
        max_converted: 1 << 20,
    };

    fn validate_traces(req: &mut ExportTraceServiceRequest, max_value: usize) -> Result<Summary, String> {
        super::validate_traces(req, Limits { max_value, ..LIMITS }).map_err(|e| e.to_string())
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn refuses_too_many_attributes_anywhere() {
        let many: Vec<KeyValue> = (0..9).map(|i| kv(&format!("k{i}"), "v")).collect();
        let mut r = req(Span {
            attributes: many.clone(),
            ..good()
        });
        let e = super::validate_traces(&mut r, LIMITS).unwrap_err();
        assert_eq!(
            e,
            Refused::TooLarge(
                "resource_spans[0].scope_spans[0].spans[0]: 9 attributes; at most 8 are accepted \
                 (acceptor.max_attributes, or the tenant's limits max_attributes)"
                    .into()
            )
        );
        let mut r = req(good());
        r.resource_spans[0].resource = Some(opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: many,
            ..Default::default()
        });
        let e = super::validate_traces(&mut r, LIMITS).unwrap_err();
        assert!(
            e.to_string().starts_with("resource_spans[0].resource: 9 attributes"),
            "{e}"
        );
    }

    #[test]
    fn refuses_requests_that_grow_too_large_as_rows() {
        // 1 KiB of resource attributes over 2,000 spans: 2 MiB of rows from
        // a request of about 100 KiB.
        let mut r = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![kv("big", &"x".repeat(1024))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: (0..2000u32)
                        .map(|i| Span {
                            span_id: [&i.to_be_bytes()[..], &[1; 4]].concat(),
                            ..good()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert!(r.encoded_len() < 200 * 1024);
        let limits = Limits {
            max_value: 4096,
            ..LIMITS
        };
        let e = super::validate_traces(&mut r, limits).unwrap_err();
        let Refused::TooLarge(m) = e else { panic!("{e:?}") };
        assert!(
            m.contains("at most 1048576 are accepted (acceptor.max_converted_request_size)"),
            "{m}"
        );
        r.resource_spans[0].scope_spans[0].spans.truncate(500);
        assert_eq!(super::validate_traces(&mut r, limits).unwrap().spans, 500);
    }

    fn req(span: Span) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn good() -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            ..Default::default()
        }
    }

    #[test]
    fn accepts_good_and_names_bad_fields() {
        assert_eq!(validate_traces(&mut req(good()), 100).unwrap().spans, 1);
        let e = validate_traces(
            &mut req(Span {
                trace_id: vec![1; 5],
                ..good()
            }),
            100,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "resource_spans[0].scope_spans[0].spans[0]: trace_id is 5 bytes, expected 16"
        );
        let e = validate_traces(
            &mut req(Span {
                span_id: vec![0; 8],
                ..good()
            }),
            100,
        )
        .unwrap_err();
        assert!(e.contains("span_id is all zeros"), "{e}");
        let e = validate_traces(
            &mut req(Span {
                parent_span_id: vec![1; 3],
                ..good()
            }),
            100,
        )
        .unwrap_err();
        assert!(e.contains("parent_span_id is 3 bytes"), "{e}");
        let e = validate_traces(
            &mut req(Span {
                end_time_unix_nano: u64::MAX,
                ..good()
            }),
            100,
        )
        .unwrap_err();
        assert!(e.contains("end_time_unix_nano"), "{e}");
        let e = validate_traces(
            &mut req(Span {
                start_time_unix_nano: 0,
                ..good()
            }),
            100,
        )
        .unwrap_err();
        assert!(e.contains("start_time_unix_nano is missing"), "{e}");
    }

    #[test]
    fn truncates_long_values_on_char_boundaries() {
        let long = KeyValue {
            key: "k".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("é".repeat(10))),
            }),
            ..Default::default()
        };
        let mut r = req(Span {
            attributes: vec![long],
            ..good()
        });
        let s = validate_traces(&mut r, 5).unwrap();
        assert_eq!(s.truncated_values, 1);
        let v = &r.resource_spans[0].scope_spans[0].spans[0].attributes[0];
        assert_eq!(
            v.value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("éé".into()))
        );
    }
}
