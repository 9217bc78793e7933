//! Admission control: one byte budget for request bodies in flight, shared
//! by the OTLP gRPC and HTTP servers (`acceptor.max_in_flight`).
//!
//! A body is read chunk by chunk, and each chunk must fit in the budget
//! before it is kept; a request that does not fit is refused at once with
//! 429 / RESOURCE_EXHAUSTED and what it had read is dropped. The budget is
//! held until the response is ready (the request is decoded, validated and
//! fsynced by then), so the memory taken by requests is bounded however many
//! clients send at once.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::HttpBody;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::{Metrics, RequestLabels};
use crate::proto::status_with_retry;

/// Why a body was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The budget is spent by other requests (429 / RESOURCE_EXHAUSTED).
    Busy { limit: u64 },
    /// The body is larger than any request may be (413 / RESOURCE_EXHAUSTED).
    TooLarge { max: usize },
    /// The body could not be read (the client went away, or sent garbage).
    Body(String),
    /// No byte of the body came for this long (408 / DEADLINE_EXCEEDED).
    Stalled { after: Duration },
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::Busy { limit } => {
                format!("too many request bytes in flight (acceptor.max_in_flight is {limit} bytes); retry later")
            }
            Refusal::TooLarge { max } => {
                format!("request body larger than acceptor.max_request_size ({max} bytes)")
            }
            Refusal::Body(e) => format!("cannot read the request body: {e}"),
            Refusal::Stalled { after } => format!(
                "the request body sent nothing for {} s (acceptor.body_timeout); dropped",
                after.as_secs_f64()
            ),
        }
    }

    /// How long a client should wait before retrying, when it should.
    pub fn retry_after(&self) -> Option<Duration> {
        matches!(self, Refusal::Busy { .. }).then_some(Duration::from_secs(1))
    }

    /// The gRPC status of this refusal.
    pub fn to_status(&self) -> tonic::Status {
        match self {
            Refusal::Busy { .. } => {
                status_with_retry(tonic::Code::ResourceExhausted, self.message(), Duration::from_secs(1))
            }
            Refusal::TooLarge { .. } => tonic::Status::resource_exhausted(self.message()),
            Refusal::Body(_) => tonic::Status::invalid_argument(self.message()),
            Refusal::Stalled { .. } => tonic::Status::deadline_exceeded(self.message()),
        }
    }
}

/// Request bytes held in the budget; given back when dropped.
#[derive(Debug)]
pub struct Admitted {
    _permit: Option<OwnedSemaphorePermit>,
}

/// The shared budget.
#[derive(Debug, Clone)]
pub struct InFlight {
    budget: Arc<Semaphore>,
    limit: u64,
    /// Longest wait for the next piece of a body.
    stall: Duration,
}

impl InFlight {
    pub fn new(limit_bytes: u64, stall: Duration) -> Self {
        let permits = usize::try_from(limit_bytes)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            budget: Arc::new(Semaphore::new(permits)),
            limit: limit_bytes,
            stall,
        }
    }

    /// Bytes held by requests now.
    pub fn in_use(&self) -> u64 {
        let free = u64::try_from(self.budget.available_permits()).unwrap_or(u64::MAX);
        self.limit.saturating_sub(free)
    }

    /// Reads `body` to its end (at most `max` bytes), taking budget for each
    /// chunk before keeping it.
    pub async fn collect<B>(&self, body: B, max: usize) -> Result<(Bytes, Admitted), Refusal>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let mut body = std::pin::pin!(body);
        let mut buf = BytesMut::new();
        let mut permit: Option<OwnedSemaphorePermit> = None;
        loop {
            let Some(frame) = tokio::time::timeout(self.stall, body.frame())
                .await
                .map_err(|_| Refusal::Stalled { after: self.stall })?
            else {
                break;
            };
            let frame = frame.map_err(|e| Refusal::Body(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            if buf.len() + data.len() > max {
                return Err(Refusal::TooLarge { max });
            }
            let n = u32::try_from(data.len()).map_err(|_| Refusal::TooLarge { max })?;
            let more = Arc::clone(&self.budget)
                .try_acquire_many_owned(n)
                .map_err(|_| Refusal::Busy { limit: self.limit })?;
            match permit.as_mut() {
                Some(p) => p.merge(more),
                None => permit = Some(more),
            }
            buf.extend_from_slice(&data);
        }
        Ok((buf.freeze(), Admitted { _permit: permit }))
    }
}

/// The tower layer that puts the OTLP gRPC services behind the budget.
#[derive(Debug, Clone)]
pub struct GrpcAdmissionLayer {
    pub in_flight: InFlight,
    /// Largest gRPC body: the message limit plus the 5-byte frame header.
    pub max_body: usize,
    pub metrics: Metrics,
}

impl<S> tower::Layer<S> for GrpcAdmissionLayer {
    type Service = GrpcAdmission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcAdmission {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`GrpcAdmissionLayer`].
#[derive(Debug, Clone)]
pub struct GrpcAdmission<S> {
    inner: S,
    layer: GrpcAdmissionLayer,
}

type GrpcRequest = http::Request<tonic::body::Body>;
type GrpcResponse = http::Response<tonic::body::Body>;

impl<S> tower::Service<GrpcRequest> for GrpcAdmission<S>
where
    S: tower::Service<GrpcRequest, Response = GrpcResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = GrpcResponse;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<GrpcResponse, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: GrpcRequest) -> Self::Future {
        // The service that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            match layer.in_flight.collect(body, layer.max_body).await {
                Ok((bytes, admitted)) => {
                    let request = http::Request::from_parts(parts, tonic::body::Body::new(Full::new(bytes)));
                    let response = inner.call(request).await;
                    drop(admitted);
                    response
                }
                Err(refusal) => {
                    let outcome = match refusal {
                        Refusal::Body(_) => "invalid",
                        Refusal::Stalled { .. } => "stalled",
                        _ => "overloaded",
                    };
                    layer
                        .metrics
                        .requests
                        .get_or_create(&RequestLabels {
                            transport: "grpc",
                            outcome,
                        })
                        .inc();
                    Ok(refusal.to_status().into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> axum::body::Body {
        let items: Vec<Result<Bytes, Infallible>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        axum::body::Body::from_stream(futures::stream::iter(items))
    }

    #[tokio::test]
    async fn bodies_within_the_budget_are_collected_and_held_until_dropped() {
        let gate = InFlight::new(10, Duration::from_secs(5));
        let (bytes, held) = gate.collect(chunks(&[b"abc", b"defg"]), 100).await.unwrap();
        assert_eq!(&bytes[..], b"abcdefg");
        assert_eq!(gate.in_use(), 7);
        let refused = gate.collect(chunks(&[b"abcd"]), 100).await.unwrap_err();
        assert_eq!(refused, Refusal::Busy { limit: 10 });
        assert_eq!(gate.in_use(), 7, "a refused body gives back what it took");
        drop(held);
        assert_eq!(gate.in_use(), 0);
        assert!(gate.collect(chunks(&[b"abcd"]), 100).await.is_ok());
    }

    #[tokio::test]
    async fn a_refusal_midway_releases_the_first_chunks() {
        let gate = InFlight::new(5, Duration::from_secs(5));
        let refused = gate.collect(chunks(&[b"abc", b"def"]), 100).await.unwrap_err();
        assert!(matches!(refused, Refusal::Busy { .. }));
        assert_eq!(gate.in_use(), 0);
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused_before_budget_is_taken() {
        let gate = InFlight::new(1000, Duration::from_secs(5));
        let refused = gate.collect(chunks(&[b"abc", b"def"]), 5).await.unwrap_err();
        assert_eq!(refused, Refusal::TooLarge { max: 5 });
        assert!(refused.message().contains("max_request_size (5 bytes)"));
        assert_eq!(gate.in_use(), 0);
    }

    /// A body that stops sending is dropped after the stall timeout, and
    /// what it had taken goes back to the budget.
    #[tokio::test]
    async fn a_stalled_body_is_dropped_and_gives_its_bytes_back() {
        let gate = InFlight::new(100, Duration::from_millis(50));
        let first: futures::stream::Iter<std::vec::IntoIter<Result<Bytes, Infallible>>> =
            futures::stream::iter(vec![Ok(Bytes::from_static(b"abcdef"))]);
        let stalled = futures::StreamExt::chain(first, futures::stream::pending());
        let body = axum::body::Body::from_stream(stalled);
        let refused = gate.collect(body, 1000).await.unwrap_err();
        assert_eq!(
            refused,
            Refusal::Stalled {
                after: Duration::from_millis(50)
            }
        );
        assert!(
            refused.message().contains("acceptor.body_timeout"),
            "{}",
            refused.message()
        );
        assert_eq!(refused.to_status().code(), tonic::Code::DeadlineExceeded);
        assert_eq!(gate.in_use(), 0);
    }

    #[test]
    fn refusals_map_to_clear_grpc_statuses() {
        let busy = Refusal::Busy { limit: 64 };
        assert_eq!(busy.to_status().code(), tonic::Code::ResourceExhausted);
        assert!(
            busy.to_status()
                .message()
                .contains("acceptor.max_in_flight is 64 bytes")
        );
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(1)));
        assert_eq!(
            Refusal::Body("reset".into()).to_status().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(Refusal::TooLarge { max: 1 }.retry_after(), None);
    }
}
