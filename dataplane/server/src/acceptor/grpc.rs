//! OTLP/gRPC (port 4317).

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::received::{ExportReceived, Received, TraceServer};
use super::{Acceptor, IngestError};
use crate::metrics::RequestLabels;
use crate::proto::status_with_retry;

/// The gRPC front end.
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    acceptor: Acceptor,
}

impl OtlpGrpc {
    pub fn new(acceptor: Acceptor) -> Self {
        Self { acceptor }
    }

    /// The trace service; it keeps each request's bytes as received.
    pub fn trace_service(self) -> TraceServer<Self> {
        let max = self.acceptor.config().max_request_size.as_usize();
        TraceServer::new(self)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max)
    }

    pub fn logs_service(self) -> LogsServiceServer<Self> {
        LogsServiceServer::new(self).accept_compressed(CompressionEncoding::Gzip)
    }

    pub fn metrics_service(self) -> MetricsServiceServer<Self> {
        MetricsServiceServer::new(self).accept_compressed(CompressionEncoding::Gzip)
    }
}

/// The gRPC status of a refused export.
pub fn to_status(e: IngestError) -> Status {
    match e {
        IngestError::Invalid(m) | IngestError::TooLarge(m) => Status::invalid_argument(m),
        IngestError::Unauthenticated(m) => Status::unauthenticated(m),
        IngestError::Forbidden(m) => Status::permission_denied(m),
        IngestError::Overloaded { detail, retry_after } => {
            status_with_retry(tonic::Code::ResourceExhausted, detail, retry_after)
        }
        IngestError::Unavailable(m) => {
            status_with_retry(tonic::Code::Unavailable, m, std::time::Duration::from_secs(1))
        }
    }
}

#[tonic::async_trait]
impl ExportReceived for OtlpGrpc {
    async fn export(&self, request: Request<Received>) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let md = request.metadata();
        let text = |name: &str| md.get(name).map(|v| v.to_str().map_err(|_| ()));
        let tenant = self.acceptor.tenant(text("authorization"), text("x-scope-orgid")).await;
        let result = match tenant {
            Ok(tenant) => {
                let Received { bytes, request } = request.into_inner();
                self.acceptor.export_traces(tenant, request, Some(bytes)).await
            }
            Err(e) => Err(e),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.acceptor
            .metrics()
            .requests
            .get_or_create(&RequestLabels {
                transport: "grpc",
                outcome,
            })
            .inc();
        result
            .map(|accepted| {
                Response::new(ExportTraceServiceResponse {
                    partial_success: accepted.partial_success(),
                })
            })
            .map_err(to_status)
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        _request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        Err(Status::unimplemented(
            "SignalDB does not store logs yet; only traces are accepted",
        ))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        _request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        Err(Status::unimplemented(
            "SignalDB does not store metrics yet; only traces are accepted",
        ))
    }
}
