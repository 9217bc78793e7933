//! The OTLP/gRPC trace service with the request's bytes kept as received.
//!
//! tonic's generated `TraceServiceServer` decodes each request into its
//! message and drops the bytes; the acceptor then had to encode the message
//! again to log it. This service decodes the same message once and keeps
//! the bytes it came from (a view of tonic's receive buffer, not a copy),
//! so a request that validation leaves unchanged is logged as received.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

/// A decoded export request and the protobuf bytes it was decoded from
/// (after gRPC decompression).
#[derive(Debug)]
pub struct Received {
    pub bytes: Bytes,
    pub request: ExportTraceServiceRequest,
}

/// What answers a [`Received`] export.
#[tonic::async_trait]
pub trait ExportReceived: Send + Sync + 'static {
    async fn export(&self, request: Request<Received>) -> Result<Response<ExportTraceServiceResponse>, Status>;
}

/// `opentelemetry.proto.collector.trace.v1.TraceService`, answered by `T`.
#[derive(Debug)]
pub struct TraceServer<T> {
    inner: Arc<T>,
    accept: EnabledCompressionEncodings,
    send: EnabledCompressionEncodings,
    max_decoding: Option<usize>,
}

impl<T> Clone for TraceServer<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            accept: self.accept,
            send: self.send,
            max_decoding: self.max_decoding,
        }
    }
}

impl<T: ExportReceived> TraceServer<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner: Arc::new(inner),
            accept: EnabledCompressionEncodings::default(),
            send: EnabledCompressionEncodings::default(),
            max_decoding: None,
        }
    }

    /// Accepts requests compressed with `encoding`.
    #[must_use]
    pub fn accept_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.accept.enable(encoding);
        self
    }

    /// Compresses answers with `encoding` when the client accepts it.
    #[must_use]
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.send.enable(encoding);
        self
    }

    /// Refuses requests larger than `limit` bytes once decompressed.
    #[must_use]
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.max_decoding = Some(limit);
        self
    }
}

impl<T> NamedService for TraceServer<T> {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

/// The path of the service's one method.
const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

impl<T, B> tonic::codegen::Service<http::Request<B>> for TraceServer<T>
where
    T: ExportReceived,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT {
            return Box::pin(async move { Ok(Status::unimplemented("unknown method").into_http()) });
        }
        let this = self.clone();
        Box::pin(async move {
            let mut grpc = Grpc::new(ReceivedCodec)
                .apply_compression_config(this.accept, this.send)
                .apply_max_message_size_config(this.max_decoding, None);
            Ok(grpc.unary(Export(this.inner), req).await)
        })
    }
}

struct Export<T>(Arc<T>);

impl<T: ExportReceived> UnaryService<Received> for Export<T> {
    type Response = ExportTraceServiceResponse;
    type Future = futures::future::BoxFuture<'static, Result<Response<Self::Response>, Status>>;

    fn call(&mut self, request: Request<Received>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.export(request).await })
    }
}

/// Decodes [`Received`]; encodes answers as protobuf.
#[derive(Debug, Clone, Copy, Default)]
struct ReceivedCodec;

impl Codec for ReceivedCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Received;
    type Encoder = tonic_prost::ProstEncoder<ExportTraceServiceResponse>;
    type Decoder = ReceivedDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ReceivedDecoder
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ReceivedDecoder;

impl Decoder for ReceivedDecoder {
    type Item = Received;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Received>, Status> {
        // The message is one contiguous piece of tonic's buffer: taking it
        // as `Bytes` splits it off without copying.
        let bytes = src.copy_to_bytes(src.remaining());
        let request = ExportTraceServiceRequest::decode(bytes.clone())
            .map_err(|e| Status::invalid_argument(format!("undecodable ExportTraceServiceRequest: {e}")))?;
        Ok(Some(Received { bytes, request }))
    }
}
