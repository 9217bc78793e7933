//! The acceptor: OTLP in over gRPC and HTTP, validated, logged to the WAL and
//! fsynced before the client hears "ok", then delivered to writers over Flight.

pub mod admission;
mod delivery;
pub mod grpc;
pub mod http;
pub mod rate;
pub mod received;
pub mod trace_size;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use signaldb_config::{AcceptorConfig, TenantId};
use signaldb_wal::Wal;
use tokio::sync::mpsc;
use tracing::warn;

pub use delivery::{ConvertedBudget, Delivery, Pending};

use crate::api_keys::{AuthError, Tenants};
use crate::metrics::Metrics;
use crate::proto::{AcceptorWalRecord, SIGNAL_TRACES};

/// Why an export was refused. Each maps to one HTTP status and one gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The request is malformed; retrying it cannot help (400 / INVALID_ARGUMENT).
    #[error("{0}")]
    Invalid(String),
    /// Past a size bound; retrying the same request cannot help
    /// (413 / INVALID_ARGUMENT).
    #[error("{0}")]
    TooLarge(String),
    /// No or a bad tenant or API key (401 / UNAUTHENTICATED).
    #[error("{0}")]
    Unauthenticated(String),
    /// An API key used for another tenant (403 / PERMISSION_DENIED).
    #[error("{0}")]
    Forbidden(String),
    /// The WAL holds as much undelivered data as allowed (429 / RESOURCE_EXHAUSTED).
    #[error("{detail}")]
    Overloaded { detail: String, retry_after: Duration },
    /// The WAL cannot be written (503 / UNAVAILABLE).
    #[error("{0}")]
    Unavailable(String),
}

impl IngestError {
    pub fn outcome(&self) -> &'static str {
        match self {
            IngestError::Invalid(_) => "invalid",
            IngestError::TooLarge(_) => "too_large",
            IngestError::Unauthenticated(_) => "unauthenticated",
            IngestError::Forbidden(_) => "forbidden",
            IngestError::Overloaded { .. } => "overloaded",
            IngestError::Unavailable(_) => "unavailable",
        }
    }
}

/// The acceptor's request path, shared by the gRPC and HTTP front ends.
#[derive(Debug, Clone)]
pub struct Acceptor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    wal: Wal,
    config: AcceptorConfig,
    tenants: Tenants,
    metrics: Metrics,
    to_delivery: mpsc::UnboundedSender<Pending>,
    in_flight: admission::InFlight,
    rates: rate::Rates,
    trace_sizes: trace_size::TraceSizes,
    limits: signaldb_config::LimitsConfig,
    /// Span rows converted at acceptance and held until delivered.
    converted: ConvertedBudget,
    /// Leaving (a scale-down): new requests are refused so that clients
    /// retry on another acceptor, and what the WAL holds is delivered.
    draining: std::sync::atomic::AtomicBool,
    /// Requests between their draining check and their WAL append.
    active: std::sync::atomic::AtomicUsize,
}

/// Counts a request as active while it lives.
struct ActiveRequest<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Acceptor {
    pub fn new(
        wal: Wal,
        config: AcceptorConfig,
        tenants: Tenants,
        limits: signaldb_config::LimitsConfig,
        metrics: Metrics,
        to_delivery: mpsc::UnboundedSender<Pending>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                wal,
                converted: ConvertedBudget::new(
                    config.max_converted_pending.as_usize(),
                    metrics.acceptor_converted_pending_bytes.clone(),
                ),
                in_flight: admission::InFlight::new(config.max_in_flight.as_u64(), config.body_timeout),
                trace_sizes: trace_size::TraceSizes::new(limits.clone()),
                rates: rate::Rates::new(limits.clone()),
                limits,
                tenants,
                metrics,
                to_delivery,
                config,
                draining: std::sync::atomic::AtomicBool::new(false),
                active: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    /// Starts (or undoes) a drain: while draining, requests are refused
    /// with UNAVAILABLE / 503 (clients retry, and reach another acceptor
    /// once this one is out of its Service for being not ready) and the
    /// WAL is delivered.
    pub fn set_draining(&self, on: bool) {
        self.inner.draining.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Acknowledged bytes in the WAL not yet delivered to every replica.
    pub fn wal_pending_bytes(&self) -> u64 {
        self.inner.wal.stats().pending_bytes
    }

    /// Requests being admitted now (past the draining check, before their
    /// WAL append).
    pub fn requests_in_progress(&self) -> usize {
        self.inner.active.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn config(&self) -> &AcceptorConfig {
        &self.inner.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The byte budget of request bodies in flight, shared by gRPC and HTTP.
    pub fn in_flight(&self) -> &admission::InFlight {
        &self.inner.in_flight
    }

    /// The tenant of a request from its `Authorization` and
    /// `X-Scope-OrgID` values (`Err(())`: not text).
    pub async fn tenant(
        &self,
        authorization: Option<Result<&str, ()>>,
        org_id: Option<Result<&str, ()>>,
    ) -> Result<TenantId, IngestError> {
        self.inner
            .tenants
            .resolve(authorization, org_id)
            .await
            .map_err(|e| match e {
                AuthError::Unauthenticated(m) => IngestError::Unauthenticated(m),
                AuthError::Forbidden(m) => IngestError::Forbidden(m),
                AuthError::Unavailable(m) => IngestError::Unavailable(m),
            })
    }

    /// Validates, converts to span rows, logs durably, and queues the rows
    /// for delivery. Returns once the request is fsynced: from then on it
    /// survives a crash. `received` is the protobuf `request` was decoded
    /// from, if it came as protobuf: it is logged as received unless
    /// validation changed the request.
    pub async fn export_traces(
        &self,
        tenant: TenantId,
        mut request: ExportTraceServiceRequest,
        received: Option<Bytes>,
    ) -> Result<Accepted, IngestError> {
        let i = &self.inner;
        // Every request reaching here was decoded once, by its front end.
        i.metrics
            .acceptor_decodes
            .get_or_create(&crate::metrics::DecodeLabels { at: "acceptance" })
            .inc();
        // Counted before the check: a drain that sees no request in progress
        // after setting its flag has seen every request it will let in.
        i.active.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _active = ActiveRequest(&i.active);
        if i.draining.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(IngestError::Unavailable(
                "this acceptor is leaving the cluster (draining); retry, another acceptor takes the request".into(),
            ));
        }
        // The tenant's own attribute limits, else the acceptor's.
        let tenant_limits = i.limits.of(&tenant);
        let max_value = tenant_limits
            .max_attribute_value_size
            .unwrap_or(i.config.max_attribute_value_size);
        let limits = validate::Limits {
            max_value: max_value.as_usize(),
            max_attributes: tenant_limits.max_attributes.unwrap_or(i.config.max_attributes),
            max_converted: i.config.max_converted_request_size.as_usize(),
        };
        let summary = validate::validate_traces(&mut request, limits).map_err(|e| match e {
            validate::Refused::Invalid(m) => IngestError::Invalid(m),
            validate::Refused::TooLarge(m) => IngestError::TooLarge(m),
        })?;
        i.metrics.attributes_truncated.inc_by(summary.truncated_values);
        if summary.spans == 0 {
            return Ok(Accepted {
                spans: 0,
                truncated_values: summary.truncated_values,
                max_value: max_value.as_u64(),
                too_large: None,
            });
        }
        // Spans of traces grown past the tenant's limit, before anything is
        // logged.
        let sized = i.trace_sizes.admit(&tenant, &mut request, &summary.trace_bytes);
        i.metrics.spans_refused_trace_too_large.inc_by(sized.spans as u64);
        let accepted = Accepted {
            spans: summary.spans - sized.spans,
            truncated_values: summary.truncated_values,
            max_value: max_value.as_u64(),
            too_large: (sized.spans > 0).then_some((sized.spans, sized.traces, sized.limit)),
        };
        if accepted.spans == 0 {
            return Err(IngestError::TooLarge(format!(
                "every span of the request belongs to a trace past tenant {tenant}'s limit of {} bytes \
                 (limits max_bytes_per_trace): {} spans of {} traces refused",
                sized.limit, sized.spans, sized.traces
            )));
        }
        // Logged as received, unless validation truncated values or the
        // trace-size limit removed spans.
        let changed = summary.truncated_values > 0 || sized.spans > 0;
        let encoded = match received {
            Some(bytes) if !changed => bytes,
            _ => Bytes::from(request.encode_to_vec()),
        };
        // The tenant's rate, before anything is logged.
        match i.rates.take(&tenant, encoded.len()) {
            Ok(()) => {}
            Err(rate::RateRefusal::Later { retry_after, rate }) => {
                i.trace_sizes.give_back(&tenant, &sized);
                return Err(IngestError::Overloaded {
                    detail: format!(
                        "tenant {tenant} is sending faster than its ingestion rate (limits ingestion_rate: {rate} bytes/s); retry later"
                    ),
                    retry_after,
                });
            }
            Err(rate::RateRefusal::TooLarge { burst }) => {
                i.trace_sizes.give_back(&tenant, &sized);
                return Err(IngestError::TooLarge(format!(
                    "request of {} bytes is larger than tenant {tenant}'s ingestion burst (limits ingestion_burst: {burst} bytes)",
                    encoded.len()
                )));
            }
        }
        // Converted once, here (after the rate check, so that refused requests
        // cost no conversion): a request whose spans cannot become rows is
        // refused now, never dropped after its acknowledgement.
        let rows = match signaldb_schema::traces::otlp_to_arrow(&request.resource_spans) {
            Ok(rows) => rows,
            Err(e) => {
                i.trace_sizes.give_back(&tenant, &sized);
                return Err(IngestError::Invalid(format!("the spans cannot be stored: {e}")));
            }
        };
        drop(request);
        let record = AcceptorWalRecord {
            tenant: tenant.as_str().to_owned(),
            signal: SIGNAL_TRACES,
            request: encoded.clone(),
        };
        let seq = match i.wal.append(Bytes::from(record.encode_to_vec())).await {
            Ok(seq) => seq,
            Err(signaldb_wal::Error::Full { pending_bytes, limit }) => {
                i.trace_sizes.give_back(&tenant, &sized);
                return Err(IngestError::Overloaded {
                    detail: format!(
                        "writers are behind: {pending_bytes} bytes wait for delivery (limit {limit}); retry later"
                    ),
                    retry_after: Duration::from_secs(1),
                });
            }
            Err(e) => {
                i.trace_sizes.give_back(&tenant, &sized);
                warn!(error = %e, "WAL append failed");
                return Err(IngestError::Unavailable(format!("cannot log the request durably: {e}")));
            }
        };
        i.metrics.spans_accepted.inc_by(accepted.spans as u64);
        i.metrics.set_wal_pending("acceptor", i.wal.stats().pending_bytes);
        let pending = Pending::accepted(seq, tenant, encoded, rows, &i.converted);
        if i.to_delivery.send(pending).is_err() {
            // Delivery has stopped (shutdown): the entry is in the WAL and is
            // delivered after the restart.
            warn!(seq, "delivery stopped; entry stays in the WAL for the next start");
        }
        Ok(accepted)
    }
}

/// What an acknowledged request held, and what was changed in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub spans: usize,
    /// Attribute values cut to `max_value` bytes.
    pub truncated_values: u64,
    pub max_value: u64,
    /// Spans refused because their trace grew past the tenant's bytes per
    /// trace: (spans, traces, limit).
    pub too_large: Option<(usize, usize, u64)>,
}

impl Accepted {
    /// OTLP's `partial_success`, when anything was refused or changed: the
    /// spans refused (their traces past `max_bytes_per_trace`) and what was
    /// truncated (OTLP's form of a warning).
    pub fn partial_success(
        &self,
    ) -> Option<opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess> {
        let mut said = Vec::new();
        if let Some((spans, traces, limit)) = self.too_large {
            said.push(format!(
                "{spans} spans of {traces} traces past the tenant's limit of {limit} bytes per trace \
                 (limits max_bytes_per_trace) were refused"
            ));
        }
        if self.truncated_values > 0 {
            said.push(format!(
                "{} attribute values longer than {} bytes (acceptor.max_attribute_value_size, or the tenant's \
                 limits max_attribute_value_size) were truncated",
                self.truncated_values, self.max_value
            ));
        }
        (!said.is_empty()).then(
            || opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                rejected_spans: self.too_large.map_or(0, |(spans, _, _)| spans as i64),
                error_message: said.join("; "),
            },
        )
    }
}

/// Decodes a replayed WAL record into a pending delivery.
pub fn pending_from_wal(seq: u64, payload: &[u8]) -> Result<Pending, String> {
    let record = AcceptorWalRecord::decode(payload).map_err(|e| format!("undecodable WAL record {seq}: {e}"))?;
    if record.signal != SIGNAL_TRACES {
        return Err(format!("WAL record {seq} has unknown signal {}", record.signal));
    }
    let tenant = TenantId::new(record.tenant).map_err(|e| format!("WAL record {seq}: {e}"))?;
    Ok(Pending::logged(seq, tenant, record.request))
}
