//! Per-tenant bytes per trace (`limits.*.max_bytes_per_trace`, as Tempo's
//! limit of the same name): the acceptor adds up the OTLP bytes of each
//! trace's spans as they arrive, and refuses, before the acknowledgement,
//! the spans of a trace that would pass the limit. A trace is forgotten
//! once no span of it arrived for [`IDLE`]. Each acceptor counts what it
//! received itself, as with the ingestion rate: a trace whose spans reach
//! several acceptors may grow to the limit at each of them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use signaldb_config::{LimitsConfig, TenantId};

/// How long a trace is remembered after its last span.
pub const IDLE: Duration = Duration::from_secs(60);

/// Traces remembered at most, over all tenants; past it the idle ones are
/// forgotten, and if that is not enough, all of them (a trace then starts
/// counting again: the limit is a guard, not an exact account). About 60
/// bytes each.
const MAX_TRACES: usize = 1_000_000;

/// How often idle traces are forgotten (so the table holds about the
/// traces of the last [`IDLE`], not [`MAX_TRACES`]).
const PRUNE_EVERY: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy)]
struct Seen {
    bytes: u64,
    at: Instant,
}

/// The bytes of the traces each tenant sent lately.
#[derive(Debug)]
pub struct TraceSizes {
    limits: LimitsConfig,
    table: Mutex<Table>,
}

/// Each tenant's active traces.
#[derive(Debug, Default)]
struct Table {
    tenants: HashMap<TenantId, HashMap<[u8; 16], Seen>>,
    len: usize,
    pruned: Option<Instant>,
}

impl Table {
    /// Forgets the traces idle at `now`.
    fn prune(&mut self, now: Instant) {
        for traces in self.tenants.values_mut() {
            traces.retain(|_, s| now.duration_since(s.at) < IDLE);
        }
        self.tenants.retain(|_, traces| !traces.is_empty());
        self.len = self.tenants.values().map(HashMap::len).sum();
        self.pruned = Some(now);
    }
}

/// What [`TraceSizes::admit`] took out of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refused {
    pub spans: usize,
    pub traces: usize,
    pub limit: u64,
    /// What was added to the counts (given back if the request is not logged).
    added: Vec<([u8; 16], u64)>,
}

impl TraceSizes {
    pub fn new(limits: LimitsConfig) -> Self {
        Self {
            limits,
            table: Mutex::default(),
        }
    }

    /// Removes from `request` the spans of every trace that would pass the
    /// tenant's limit with them, counts the rest, and says what was removed.
    /// `sizes` are the request's OTLP bytes per trace, as validation
    /// measured them ([`super::validate::Summary::trace_bytes`]).
    pub fn admit(
        &self,
        tenant: &TenantId,
        request: &mut ExportTraceServiceRequest,
        sizes: &HashMap<[u8; 16], u64>,
    ) -> Refused {
        self.admit_at(tenant, request, sizes, Instant::now())
    }

    fn admit_at(
        &self,
        tenant: &TenantId,
        request: &mut ExportTraceServiceRequest,
        sizes: &HashMap<[u8; 16], u64>,
        now: Instant,
    ) -> Refused {
        let limit = self.limits.of(tenant).max_bytes_per_trace.as_u64();
        let mut refused = Refused {
            limit,
            ..Refused::default()
        };
        if limit == 0 {
            return refused;
        }
        let over: std::collections::HashSet<[u8; 16]> = {
            let Ok(mut table) = self.table.lock() else {
                return refused;
            };
            if table.pruned.is_none_or(|at| now.duration_since(at) >= PRUNE_EVERY)
                || table.len + sizes.len() > MAX_TRACES
            {
                table.prune(now);
                if table.len + sizes.len() > MAX_TRACES {
                    table.tenants.clear();
                    table.len = 0;
                }
            }
            let before = table.tenants.get(tenant).map_or(0, HashMap::len);
            let traces = table.tenants.entry(tenant.clone()).or_default();
            let mut over = std::collections::HashSet::new();
            for (&id, &bytes) in sizes {
                let entry = traces.entry(id).or_insert(Seen { bytes: 0, at: now });
                if now.duration_since(entry.at) >= IDLE {
                    entry.bytes = 0;
                }
                if entry.bytes + bytes > limit {
                    over.insert(id);
                } else {
                    entry.bytes += bytes;
                    entry.at = now;
                    refused.added.push((id, bytes));
                }
            }
            let after = traces.len();
            table.len = table.len + after - before;
            over
        };
        if over.is_empty() {
            return refused;
        }
        refused.traces = over.len();
        for scope in request.resource_spans.iter_mut().flat_map(|r| &mut r.scope_spans) {
            let before = scope.spans.len();
            scope
                .spans
                .retain(|s| <[u8; 16]>::try_from(s.trace_id.as_slice()).map_or(true, |id| !over.contains(&id)));
            refused.spans += before - scope.spans.len();
        }
        request
            .resource_spans
            .iter_mut()
            .for_each(|r| r.scope_spans.retain(|s| !s.spans.is_empty()));
        request.resource_spans.retain(|r| !r.scope_spans.is_empty());
        refused
    }

    /// Takes back what [`TraceSizes::admit`] counted for a request that was
    /// then not logged (refused for its rate, or the WAL was full).
    pub fn give_back(&self, tenant: &TenantId, refused: &Refused) {
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        let Some(traces) = table.tenants.get_mut(tenant) else {
            return;
        };
        for (id, bytes) in &refused.added {
            if let Some(s) = traces.get_mut(id) {
                s.bytes = s.bytes.saturating_sub(*bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use signaldb_config::{ByteSize, TenantLimits};

    use super::*;

    fn request(spans: &[(u8, usize)]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: spans
                        .iter()
                        .map(|&(trace, payload)| Span {
                            trace_id: vec![trace; 16],
                            span_id: vec![1; 8],
                            name: "x".repeat(payload),
                            start_time_unix_nano: 1_700_000_000_000_000_000,
                            end_time_unix_nano: 1_700_000_000_000_000_100,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn sizes(limit: u64, other: Option<&str>) -> TraceSizes {
        let mut limits = LimitsConfig::default();
        limits.defaults.max_bytes_per_trace = ByteSize(limit);
        if let Some(t) = other {
            let unlimited = TenantLimits {
                max_bytes_per_trace: ByteSize(0),
                ..TenantLimits::default()
            };
            limits.overrides.insert(TenantId::new(t).unwrap(), unlimited);
        }
        TraceSizes::new(limits)
    }

    /// Admits `request` with its bytes per trace measured as validation
    /// measures them.
    fn admit(sizes: &TraceSizes, t: &TenantId, request: &mut ExportTraceServiceRequest, now: Instant) -> Refused {
        let limits = super::super::validate::Limits {
            max_value: usize::MAX,
            max_attributes: usize::MAX,
            max_converted: usize::MAX,
        };
        let mut checked = request.clone();
        let summary = super::super::validate::validate_traces(&mut checked, limits).unwrap();
        sizes.admit_at(t, request, &summary.trace_bytes, now)
    }

    fn spans(r: &ExportTraceServiceRequest) -> usize {
        r.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }

    #[test]
    fn a_trace_past_the_limit_loses_only_its_own_spans() {
        let t = TenantId::new("a").unwrap();
        let sizes = sizes(3_000, None);
        let now = Instant::now();
        // Trace 1 gets ~2 KB, then ~2 KB more (refused); trace 2 is small.
        let mut first = request(&[(1, 1000), (1, 1000), (2, 10)]);
        assert_eq!(admit(&sizes, &t, &mut first, now).spans, 0);
        let mut second = request(&[(1, 1000), (1, 1000), (2, 10)]);
        let refused = admit(&sizes, &t, &mut second, now);
        assert_eq!((refused.spans, refused.traces, refused.limit), (2, 1, 3_000));
        assert_eq!(spans(&second), 1, "trace 2's span stays");
        // A request holding only refused spans is left empty.
        let mut third = request(&[(1, 10)]);
        assert_eq!(admit(&sizes, &t, &mut third, now).spans, 0, "10 more bytes still fit");
        let mut fourth = request(&[(1, 2000)]);
        assert_eq!(admit(&sizes, &t, &mut fourth, now).spans, 1);
        assert!(fourth.resource_spans.is_empty());
        // After the idle time the trace counts from zero.
        let mut later = request(&[(1, 2000)]);
        assert_eq!(admit(&sizes, &t, &mut later, now + IDLE).spans, 0);
    }

    #[test]
    fn tenants_count_apart_and_zero_means_no_limit() {
        let (a, b) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
        let sizes = sizes(1_500, Some("b"));
        let now = Instant::now();
        let mut r = request(&[(1, 1000)]);
        assert_eq!(admit(&sizes, &a, &mut r, now).spans, 0);
        let mut r = request(&[(1, 1000)]);
        assert_eq!(admit(&sizes, &a, &mut r, now).spans, 1);
        for _ in 0..5 {
            let mut r = request(&[(1, 1000)]);
            assert_eq!(admit(&sizes, &b, &mut r, now).spans, 0, "tenant b has no limit");
        }
    }

    #[test]
    fn idle_traces_are_forgotten() {
        let t = TenantId::new("a").unwrap();
        let sizes = sizes(1_500, None);
        let now = Instant::now();
        for k in 1..=100 {
            let mut r = request(&[(k, 10)]);
            admit(&sizes, &t, &mut r, now);
        }
        assert_eq!(sizes.table.lock().unwrap().len, 100);
        // A request a whole idle time later prunes the others.
        let mut r = request(&[(200, 10)]);
        admit(&sizes, &t, &mut r, now + IDLE);
        assert_eq!(sizes.table.lock().unwrap().len, 1);
    }

    #[test]
    fn what_is_given_back_fits_again() {
        let t = TenantId::new("a").unwrap();
        let sizes = sizes(1_500, None);
        let now = Instant::now();
        let mut r = request(&[(1, 1000)]);
        let admitted = admit(&sizes, &t, &mut r, now);
        // The request was not logged (say, the WAL was full): its bytes do
        // not count against the retry.
        sizes.give_back(&t, &admitted);
        let mut retry = request(&[(1, 1000)]);
        assert_eq!(admit(&sizes, &t, &mut retry, now).spans, 0);
    }
}
