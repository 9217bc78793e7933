//! Traces the suite sends (OTLP/HTTP JSON) and reads back (Tempo's trace by
//! id JSON), with ids derived from the run so that every span is known.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::{Value, json};

/// The service name of every span the suite sends.
pub const SERVICE: &str = "signaldb-e2e";

/// One trace as sent: its id and its spans' ids, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentTrace {
    pub trace_id: String,
    pub span_ids: BTreeSet<String>,
}

/// An OTLP/HTTP JSON export request of `traces` traces with `spans` spans
/// each. Ids are unique per (`run`, `batch`, trace, span), never zero.
pub fn batch(run: u64, batch: u32, traces: u16, spans: u16, now_unix_nanos: u64) -> (Value, Vec<SentTrace>) {
    let mut sent = Vec::new();
    let mut out_spans = Vec::new();
    for t in 0..traces {
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&run.to_be_bytes());
        trace[8..12].copy_from_slice(&batch.to_be_bytes());
        trace[12..14].copy_from_slice(&t.to_be_bytes());
        trace[15] = 1;
        let trace_id = hex::encode(trace);
        let mut ids = BTreeSet::new();
        for s in 0..spans {
            let mut span = [0u8; 8];
            span[..4].copy_from_slice(&batch.to_be_bytes());
            span[4..6].copy_from_slice(&t.to_be_bytes());
            span[6..8].copy_from_slice(&(s + 1).to_be_bytes());
            let span_id = hex::encode(span);
            let start = now_unix_nanos + u64::from(s) * 1_000_000;
            let mut obj = json!({
                "traceId": trace_id,
                "spanId": span_id,
                "name": format!("e2e-span-{s}"),
                "kind": 2,
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + 500_000).to_string(),
                "attributes": [
                    { "key": "e2e.batch", "value": { "intValue": batch.to_string() } },
                ],
            });
            if s > 0 {
                // Children of the first span.
                obj["parentSpanId"] = json!(hex::encode({
                    let mut p = span;
                    p[6..8].copy_from_slice(&1u16.to_be_bytes());
                    p
                }));
            }
            ids.insert(span_id);
            out_spans.push(obj);
        }
        sent.push(SentTrace {
            trace_id,
            span_ids: ids,
        });
    }
    let body = json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": SERVICE } },
                { "key": "e2e.run", "value": { "stringValue": format!("{run:016x}") } },
            ]},
            "scopeSpans": [{ "scope": { "name": "signaldb-e2e" }, "spans": out_spans }],
        }]
    });
    (body, sent)
}

/// The span ids (hex) in a Tempo trace-by-id JSON answer (`/api/traces/<id>`:
/// `batches`, or `/api/v2/traces/<id>`: `trace.resourceSpans`). Tempo writes
/// ids in base64.
pub fn span_ids(body: &[u8]) -> Result<BTreeSet<String>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the trace is not JSON: {e}"))?;
    let batches = v
        .get("batches")
        .or_else(|| v.pointer("/trace/resourceSpans"))
        .and_then(Value::as_array)
        .ok_or("the trace has neither `batches` nor `trace.resourceSpans`")?;
    let mut ids = BTreeSet::new();
    for b in batches {
        let scopes = b
            .get("scopeSpans")
            .or_else(|| b.get("instrumentationLibrarySpans"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for s in scopes {
            for span in s.get("spans").and_then(Value::as_array).cloned().unwrap_or_default() {
                let id = span
                    .get("spanId")
                    .and_then(Value::as_str)
                    .ok_or("a span has no spanId")?;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(id)
                    .map_err(|e| format!("spanId {id:?} is not base64: {e}"))?;
                ids.insert(hex::encode(raw));
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_batches_and_never_zero() {
        let (_, a) = batch(7, 1, 3, 4, 1_000);
        let (_, b) = batch(7, 2, 3, 4, 1_000);
        let traces: BTreeSet<&String> = a.iter().chain(&b).map(|t| &t.trace_id).collect();
        assert_eq!(traces.len(), 6);
        let spans: BTreeSet<&String> = a.iter().chain(&b).flat_map(|t| &t.span_ids).collect();
        assert_eq!(spans.len(), 24);
        for id in traces.iter().chain(spans.iter()) {
            assert!(id.chars().any(|c| c != '0'), "{id}");
        }
        assert!(a.iter().all(|t| t.trace_id.len() == 32));
        assert!(spans.iter().all(|s| s.len() == 16));
    }

    #[test]
    fn the_request_carries_every_span_once() {
        let (body, sent) = batch(1, 9, 2, 3, 5_000);
        let spans = body
            .pointer("/resourceSpans/0/scopeSpans/0/spans")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(spans.len(), 6);
        let in_body: BTreeSet<String> = spans.iter().map(|s| s["spanId"].as_str().unwrap().to_owned()).collect();
        let expected: BTreeSet<String> = sent.iter().flat_map(|t| t.span_ids.clone()).collect();
        assert_eq!(in_body, expected);
        assert_eq!(spans[0]["startTimeUnixNano"], "5000");
        assert_eq!(spans[0]["endTimeUnixNano"], "505000");
        assert!(spans[0].get("parentSpanId").is_none());
        assert_eq!(spans[1]["parentSpanId"], spans[0]["spanId"]);
        assert_eq!(
            body.pointer("/resourceSpans/0/resource/attributes/0/value/stringValue"),
            Some(&json!(SERVICE))
        );
    }

    #[test]
    fn span_ids_read_tempo_json_in_both_shapes() {
        let v1 = br#"{"batches":[{"resource":{},"scopeSpans":[{"spans":[
            {"traceId":"AAAAAAAAAAAAAAAAAAAAAQ==","spanId":"AAAAAQABAAE="},
            {"traceId":"AAAAAAAAAAAAAAAAAAAAAQ==","spanId":"AAAAAQABAAI="}]}]}]}"#;
        let ids = span_ids(v1).unwrap();
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            vec!["0000000100010001".to_owned(), "0000000100010002".to_owned()]
        );
        let v2 = br#"{"trace":{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"AAAAAQABAAE="}]}]}]}}"#;
        assert_eq!(span_ids(v2).unwrap().len(), 1);
        assert!(span_ids(b"{}").unwrap_err().contains("neither"));
        assert!(span_ids(b"not json").unwrap_err().contains("not JSON"));
        let bad = br#"{"batches":[{"scopeSpans":[{"spans":[{"spanId":"!!"}]}]}]}"#;
        assert!(span_ids(bad).unwrap_err().contains("not base64"));
    }

    #[test]
    fn sent_ids_match_what_tempo_would_return() {
        let (_, sent) = batch(3, 4, 1, 2, 0);
        let encoded: Vec<String> = sent[0]
            .span_ids
            .iter()
            .map(|h| base64::engine::general_purpose::STANDARD.encode(hex::decode(h).unwrap()))
            .collect();
        let body = json!({ "batches": [{ "scopeSpans": [{ "spans": encoded.iter().map(|s| json!({"spanId": s})).collect::<Vec<_>>() }] }] });
        assert_eq!(span_ids(body.to_string().as_bytes()).unwrap(), sent[0].span_ids);
    }
}
