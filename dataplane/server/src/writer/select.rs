//! Which buffered spans a query asked for: the traces, time range, span
//! condition and columns of a buffer ticket, applied to buffered batches so
//! that only what the query needs crosses the network.

use std::collections::HashSet;

use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::{ArrowError, SchemaRef};
use signaldb_schema::traces::select;

use crate::proto::BufferTicket;

/// A buffer ticket, checked.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection {
    /// Empty: any trace.
    trace_ids: HashSet<[u8; 16]>,
    range: Option<(i64, i64)>,
    condition: Option<signaldb_traceql::FieldExpr>,
    /// Indexes into the span schema, in the order asked; None: all.
    columns: Option<Vec<usize>>,
    /// Enough rows for this many distinct traces, newest batches first.
    max_traces: Option<usize>,
}

impl Selection {
    /// The traces asked for; empty: any.
    pub(crate) fn trace_ids(&self) -> &HashSet<[u8; 16]> {
        &self.trace_ids
    }

    /// Checks `ticket`; the message says what is wrong.
    pub(crate) fn from_ticket(ticket: &BufferTicket) -> Result<Self, String> {
        let mut trace_ids = HashSet::with_capacity(ticket.trace_ids.len() + 1);
        let single = (!ticket.trace_id.is_empty()).then_some(&ticket.trace_id);
        for id in single.into_iter().chain(&ticket.trace_ids) {
            let id = <[u8; 16]>::try_from(id.as_slice())
                .map_err(|_| format!("ticket trace id is {} bytes, expected 16", id.len()))?;
            trace_ids.insert(id);
        }
        let condition = match &ticket.condition {
            Some(plan) => plan.condition().map_err(|e| format!("ticket condition: {e}"))?,
            None => None,
        };
        let columns = if ticket.columns.is_empty() {
            None
        } else {
            let schema = signaldb_schema::traces::schema();
            Some(
                ticket
                    .columns
                    .iter()
                    .map(|c| {
                        schema
                            .index_of(c)
                            .map_err(|_| format!("ticket asks for an unknown column {c:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        Ok(Self {
            trace_ids,
            range: ticket.has_range.then_some((ticket.min_time_ns, ticket.max_time_ns)),
            condition,
            columns,
            max_traces: (ticket.max_traces > 0).then(|| usize::try_from(ticket.max_traces).unwrap_or(usize::MAX)),
        })
    }

    /// The selected rows of `batches` (in the order received), with the
    /// columns selected; with a trace cap, only the newest batches that
    /// hold that many distinct selected traces, still in the order
    /// received.
    pub(crate) fn apply_all(&self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, ArrowError> {
        let Some(max) = self.max_traces else {
            let mut out = Vec::with_capacity(batches.len());
            for b in batches {
                let b = self.apply(&b)?;
                if b.num_rows() > 0 {
                    out.push(b);
                }
            }
            return Ok(out);
        };
        let mut out = Vec::new();
        let mut traces: HashSet<[u8; 16]> = HashSet::new();
        for b in batches.iter().rev() {
            let b = self.apply(b)?;
            if b.num_rows() == 0 {
                continue;
            }
            // Without the trace id among the columns the cap cannot be
            // counted, and every selected row is returned.
            if let Some(ids) = b
                .column_by_name(signaldb_schema::columns::TRACE_ID)
                .and_then(|c| c.as_any().downcast_ref::<arrow_array::FixedSizeBinaryArray>())
            {
                traces.extend((0..ids.len()).filter_map(|i| <[u8; 16]>::try_from(ids.value(i)).ok()));
            }
            out.push(b);
            if traces.len() >= max {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The schema of what [`Selection::apply`] returns.
    pub(crate) fn schema(&self) -> Result<SchemaRef, ArrowError> {
        let full = signaldb_schema::traces::schema();
        match &self.columns {
            Some(cols) => Ok(std::sync::Arc::new(full.project(cols)?)),
            None => Ok(full),
        }
    }

    /// The rows of `batch` (of the span schema) selected, with the columns
    /// selected.
    pub(crate) fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        let mut keep: Option<BooleanArray> = None;
        let mut and = |mask: BooleanArray| -> Result<(), ArrowError> {
            keep = Some(match keep.take() {
                Some(k) => arrow::compute::and(&k, &mask)?,
                None => mask,
            });
            Ok(())
        };
        if !self.trace_ids.is_empty() {
            and(select::trace_mask(batch, &self.trace_ids)?)?;
        }
        if let Some((min, max)) = self.range {
            and(select::time_mask(batch, min, max)?)?;
        }
        if let Some(condition) = &self.condition {
            let mask = signaldb_traceql::span_mask(condition, batch)
                .map_err(|e| ArrowError::ComputeError(format!("evaluating the condition: {e}")))?;
            // Unknown (null) is not a match.
            and((0..mask.len())
                .map(|i| Some(mask.is_valid(i) && mask.value(i)))
                .collect())?;
        }
        // Only the columns asked for are filtered, and a batch with no row
        // selected costs nothing more.
        let columns = match &self.columns {
            Some(cols) => batch.project(cols)?,
            None => batch.clone(),
        };
        match keep {
            Some(mask) if mask.true_count() == 0 => Ok(columns.slice(0, 0)),
            Some(mask) if mask.true_count() == mask.len() => Ok(columns),
            Some(mask) => arrow::compute::filter_record_batch(&columns, &mask),
            None => Ok(columns),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use signaldb_schema::columns;

    use super::*;

    /// Four spans: traces 1 and 2, `span.n` = 0..4, starting at 10, 20, 30, 40.
    fn batch() -> RecordBatch {
        let spans = (0..4u8)
            .map(|i| Span {
                trace_id: vec![1 + i / 2; 16],
                span_id: vec![i + 1; 8],
                name: format!("op-{i}"),
                start_time_unix_nano: 10 * (u64::from(i) + 1),
                end_time_unix_nano: 10 * (u64::from(i) + 1) + 5,
                attributes: vec![KeyValue {
                    key: "n".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(i64::from(i))),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        signaldb_schema::traces::otlp_to_arrow(&[ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }])
        .unwrap()
    }

    fn names(b: &RecordBatch) -> Vec<String> {
        let names = b
            .column_by_name(columns::NAME)
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        names.iter().map(|n| n.unwrap().to_owned()).collect()
    }

    /// The condition of the one-filter query `q`, as the querier sends it.
    fn condition(q: &str) -> Option<signaldb_traceql::ConditionPlan> {
        let query = signaldb_traceql::parse(q).unwrap();
        Some(signaldb_traceql::ConditionPlan::new(query.as_condition()))
    }

    fn select(ticket: BufferTicket) -> RecordBatch {
        Selection::from_ticket(&ticket).unwrap().apply(&batch()).unwrap()
    }

    #[test]
    fn every_part_of_a_ticket_narrows_the_rows() {
        assert_eq!(names(&select(BufferTicket::default())).len(), 4);
        let by_trace = BufferTicket {
            trace_ids: vec![vec![2; 16]],
            ..Default::default()
        };
        assert_eq!(names(&select(by_trace)), ["op-2", "op-3"]);
        let by_time = BufferTicket {
            has_range: true,
            min_time_ns: 20,
            max_time_ns: 31,
            ..Default::default()
        };
        assert_eq!(names(&select(by_time)), ["op-1", "op-2"]);
        let by_condition = BufferTicket {
            condition: condition(r#"{ span.n >= 1 && name != "op-3" }"#),
            ..Default::default()
        };
        assert_eq!(names(&select(by_condition)), ["op-1", "op-2"]);
        let all_three = BufferTicket {
            trace_id: vec![1; 16],
            has_range: true,
            min_time_ns: 0,
            max_time_ns: 100,
            condition: condition("{ span.n = 1 }"),
            ..Default::default()
        };
        assert_eq!(names(&select(all_three)), ["op-1"]);
    }

    /// With a trace cap, the newest batches holding that many selected
    /// traces are returned, in the order received; without one, all.
    #[test]
    fn a_trace_cap_keeps_the_newest_batches_that_reach_it() {
        // Received in this order: trace 1 (op-0, op-1), trace 2 (op-2,
        // op-3), trace 1 again (op-0, op-1).
        let batches = vec![batch().slice(0, 2), batch().slice(2, 2), batch().slice(0, 2)];
        let run = |ticket: BufferTicket| -> Vec<Vec<String>> {
            Selection::from_ticket(&ticket)
                .unwrap()
                .apply_all(batches.clone())
                .unwrap()
                .iter()
                .map(names)
                .collect()
        };
        assert_eq!(run(BufferTicket::default()).len(), 3);
        let capped = |max_traces: u64| BufferTicket {
            max_traces,
            ..Default::default()
        };
        assert_eq!(run(capped(1)), [["op-0", "op-1"]]);
        assert_eq!(run(capped(2)), [["op-2", "op-3"], ["op-0", "op-1"]]);
        assert_eq!(run(capped(3)).len(), 3, "fewer traces than the cap: everything");
        // The cap counts selected rows only.
        let op2 = BufferTicket {
            condition: condition(r#"{ name = "op-2" }"#),
            max_traces: 1,
            ..Default::default()
        };
        assert_eq!(run(op2), [["op-2"]]);
    }

    #[test]
    fn columns_come_in_the_order_asked() {
        let ticket = BufferTicket {
            columns: vec![columns::NAME.into(), columns::TRACE_ID.into()],
            ..Default::default()
        };
        let selection = Selection::from_ticket(&ticket).unwrap();
        let out = selection.apply(&batch()).unwrap();
        assert_eq!(out.schema(), selection.schema().unwrap());
        let fields: Vec<&str> = out.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(fields, [columns::NAME, columns::TRACE_ID]);
    }

    #[test]
    fn bad_tickets_say_what_is_wrong() {
        let err = |t: BufferTicket| Selection::from_ticket(&t).unwrap_err();
        assert!(
            err(BufferTicket {
                trace_ids: vec![vec![1; 5]],
                ..Default::default()
            })
            .contains("5 bytes, expected 16")
        );
        let mut wrong_version = condition("{ span.a = 1 }");
        if let Some(plan) = wrong_version.as_mut() {
            plan.version = 0;
        }
        assert!(
            err(BufferTicket {
                condition: wrong_version,
                ..Default::default()
            })
            .contains("ticket condition: invalid query plan: plan version 0")
        );
        let mut dangling = condition("{ span.a = 1 && span.b = 2 }");
        if let Some(plan) = dangling.as_mut() {
            plan.nodes.remove(0);
        }
        assert!(
            err(BufferTicket {
                condition: dangling,
                ..Default::default()
            })
            .contains("without its operands")
        );
        assert!(
            err(BufferTicket {
                columns: vec!["nope".into()],
                ..Default::default()
            })
            .contains(r#"unknown column "nope""#)
        );
    }
}
