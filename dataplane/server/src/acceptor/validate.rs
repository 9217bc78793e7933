//! Validation of OTLP trace requests before anything is logged, and the
//! per-tenant attribute size limit (values are truncated and counted).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

/// What validation found in a valid request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub spans: usize,
    pub truncated_values: u64,
}

/// Checks ids and timestamps of every span, event and link, and truncates
/// attribute values longer than `max_value` bytes. The error names the first
/// offending element by its position, e.g.
/// `resource_spans[0].scope_spans[1].spans[2]: span_id is 4 bytes, expected 8`.
pub fn validate_traces(req: &mut ExportTraceServiceRequest, max_value: usize) -> Result<Summary, String> {
    let mut s = Summary::default();
    for (ri, rs) in req.resource_spans.iter_mut().enumerate() {
        if let Some(r) = rs.resource.as_mut() {
            s.truncated_values += limit(&mut r.attributes, max_value);
        }
        for (si, ss) in rs.scope_spans.iter_mut().enumerate() {
            if let Some(scope) = ss.scope.as_mut() {
                s.truncated_values += limit(&mut scope.attributes, max_value);
            }
            for (pi, span) in ss.spans.iter_mut().enumerate() {
                let at = || format!("resource_spans[{ri}].scope_spans[{si}].spans[{pi}]");
                id(&span.trace_id, 16, "trace_id").map_err(|e| format!("{}: {e}", at()))?;
                id(&span.span_id, 8, "span_id").map_err(|e| format!("{}: {e}", at()))?;
                if !span.parent_span_id.is_empty() {
                    id(&span.parent_span_id, 8, "parent_span_id").map_err(|e| format!("{}: {e}", at()))?;
                }
                if span.start_time_unix_nano == 0 {
                    return Err(format!("{}: start_time_unix_nano is missing", at()));
                }
                time(span.start_time_unix_nano, "start_time_unix_nano").map_err(|e| format!("{}: {e}", at()))?;
                time(span.end_time_unix_nano, "end_time_unix_nano").map_err(|e| format!("{}: {e}", at()))?;
                s.truncated_values += limit(&mut span.attributes, max_value);
                for (ei, ev) in span.events.iter_mut().enumerate() {
                    time(ev.time_unix_nano, "time_unix_nano").map_err(|e| format!("{}.events[{ei}]: {e}", at()))?;
                    s.truncated_values += limit(&mut ev.attributes, max_value);
                }
                for (li, link) in span.links.iter_mut().enumerate() {
                    id(&link.trace_id, 16, "trace_id").map_err(|e| format!("{}.links[{li}]: {e}", at()))?;
                    id(&link.span_id, 8, "span_id").map_err(|e| format!("{}.links[{li}]: {e}", at()))?;
                    s.truncated_values += limit(&mut link.attributes, max_value);
                }
                s.spans += 1;
            }
        }
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
