//! OTLP/HTTP (port 4318): `POST /v1/traces` with protobuf or JSON bodies,
//! optionally gzip- or zstd-compressed. Errors are `google.rpc.Status` in the
//! request's encoding, as the OTLP specification asks.

use std::io::Read;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use signaldb_config::TenantId;

use super::admission::Refusal;
use super::{Acceptor, IngestError};
use crate::metrics::RequestLabels;
use crate::proto::RpcStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// The HTTP front end's routes.
pub fn router(acceptor: Acceptor) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(not_yet))
        .route("/v1/metrics", post(not_yet))
        .fallback(not_found)
        // The body is read by `traces` itself, within acceptor.max_in_flight
        // and acceptor.max_request_size; no extractor limit applies.
        .layer(DefaultBodyLimit::disable())
        .with_state(acceptor)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

async fn not_yet() -> Response {
    (
        StatusCode::NOT_IMPLEMENTED,
        "SignalDB does not store this signal yet; only traces (/v1/traces) are accepted\n",
    )
        .into_response()
}

async fn traces(State(acceptor): State<Acceptor>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let (encoding, result) = handle(&acceptor, &parts.headers, body).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(HttpError::Ingest(e)) => e.outcome(),
        Err(HttpError::Stalled(_)) => "stalled",
        Err(_) => "invalid",
    };
    acceptor
        .metrics()
        .requests
        .get_or_create(&RequestLabels {
            transport: "http",
            outcome,
        })
        .inc();
    match result {
        Ok(accepted) => success(encoding, accepted.partial_success()),
        Err(e) => e.into_response(encoding),
    }
}

enum HttpError {
    Ingest(IngestError),
    UnsupportedMediaType(String),
    TooLarge(String),
    Stalled(String),
}

impl HttpError {
    fn into_response(self, encoding: Encoding) -> Response {
        let (status, grpc_code, message, retry_after) = match self {
            HttpError::Ingest(IngestError::Invalid(m)) => (StatusCode::BAD_REQUEST, 3, m, None),
            HttpError::Ingest(IngestError::TooLarge(m)) => (StatusCode::PAYLOAD_TOO_LARGE, 3, m, None),
            HttpError::Ingest(IngestError::Unauthenticated(m)) => (StatusCode::UNAUTHORIZED, 16, m, None),
            HttpError::Ingest(IngestError::Forbidden(m)) => (StatusCode::FORBIDDEN, 7, m, None),
            HttpError::Ingest(IngestError::Overloaded { detail, retry_after }) => {
                (StatusCode::TOO_MANY_REQUESTS, 8, detail, Some(retry_after))
            }
            HttpError::Ingest(IngestError::Unavailable(m)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                14,
                m,
                Some(std::time::Duration::from_secs(1)),
            ),
            HttpError::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, 3, m, None),
            HttpError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, 11, m, None),
            HttpError::Stalled(m) => (StatusCode::REQUEST_TIMEOUT, 4, m, None),
        };
        let body = RpcStatus {
            code: grpc_code,
            message,
            details: vec![],
        };
        let mut response = encode(encoding, status, &body);
        if let Some(after) = retry_after {
            let secs = after.as_secs().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

fn encode(encoding: Encoding, status: StatusCode, body: &RpcStatus) -> Response {
    match encoding {
        Encoding::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            body.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => {
            let json = serde_json::json!({ "code": body.code, "message": body.message });
            (status, [(header::CONTENT_TYPE, "application/json")], json.to_string()).into_response()
        }
    }
}

fn success(
    encoding: Encoding,
    partial: Option<opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess>,
) -> Response {
    match encoding {
        Encoding::Protobuf => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            ExportTraceServiceResponse {
                partial_success: partial,
            }
            .encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => {
            let body = match partial {
                Some(p) => serde_json::json!({ "partialSuccess": { "errorMessage": p.error_message } }).to_string(),
                None => r#"{"partialSuccess":{}}"#.to_owned(),
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    }
}

/// The request's answer encoding, and what was accepted.
async fn handle(
    acceptor: &Acceptor,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> (Encoding, Result<crate::acceptor::Accepted, HttpError>) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let encoding = match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            let shown = if other.is_empty() { "none" } else { other };
            return (
                Encoding::Json,
                Err(HttpError::UnsupportedMediaType(format!(
                    "unsupported content type {shown}: send application/x-protobuf or application/json"
                ))),
            );
        }
    };
    // Who is sending, before reading a byte of the body.
    let text = |name: &str| headers.get(name).map(|v| v.to_str().map_err(|_| ()));
    let tenant = match acceptor.tenant(text("authorization"), text("x-scope-orgid")).await {
        Ok(tenant) => tenant,
        Err(e) => return (encoding, Err(HttpError::Ingest(e))),
    };
    // Held until the request is logged: its bytes count against
    // acceptor.max_in_flight until then.
    let max = acceptor.config().max_request_size.as_usize();
    let (body, _admitted) = match acceptor.in_flight().collect(body, max).await {
        Ok(collected) => collected,
        Err(refusal) => return (encoding, Err(HttpError::from(refusal))),
    };
    (
        encoding,
        decode_and_export(acceptor, tenant, headers, body, encoding).await,
    )
}

impl From<Refusal> for HttpError {
    fn from(r: Refusal) -> Self {
        match (&r, r.retry_after()) {
            (Refusal::Busy { .. }, Some(retry_after)) => HttpError::Ingest(IngestError::Overloaded {
                detail: r.message(),
                retry_after,
            }),
            (Refusal::TooLarge { .. }, _) => HttpError::TooLarge(r.message()),
            (Refusal::Stalled { .. }, _) => HttpError::Stalled(r.message()),
            _ => HttpError::Ingest(IngestError::Invalid(r.message())),
        }
    }
}

async fn decode_and_export(
    acceptor: &Acceptor,
    tenant: TenantId,
    headers: &HeaderMap,
    body: Bytes,
    encoding: Encoding,
) -> Result<crate::acceptor::Accepted, HttpError> {
    let max = acceptor.config().max_request_size.as_usize();
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let body = match content_encoding.as_str() {
        "" | "identity" => body,
        "gzip" => Bytes::from(decompress(flate2::read::GzDecoder::new(&body[..]), "gzip", max)?),
        "zstd" => {
            let decoder = zstd::stream::read::Decoder::new(&body[..])
                .map_err(|e| HttpError::Ingest(IngestError::Invalid(format!("malformed zstd body: {e}"))))?;
            Bytes::from(decompress(decoder, "zstd", max)?)
        }
        other => {
            return Err(HttpError::UnsupportedMediaType(format!(
                "unsupported content encoding {other}: send gzip, zstd or identity"
            )));
        }
    };
    // Protobuf is logged as received (unless validation changes it); JSON
    // is encoded as protobuf to be logged.
    let (request, received) = match encoding {
        Encoding::Protobuf => (
            ExportTraceServiceRequest::decode(body.clone())
                .map_err(|e| HttpError::Ingest(IngestError::Invalid(format!("malformed OTLP protobuf: {e}"))))?,
            Some(body),
        ),
        Encoding::Json => (
            serde_json::from_slice::<ExportTraceServiceRequest>(&body)
                .map_err(|e| HttpError::Ingest(IngestError::Invalid(format!("malformed OTLP JSON: {e}"))))?,
            None,
        ),
    };
    acceptor
        .export_traces(tenant, request, received)
        .await
        .map_err(HttpError::Ingest)
}

/// Decompresses at most `max` bytes: a body that expands further (a
/// compression bomb) is refused with 413 once `max + 1` bytes came out,
/// without holding more than that.
fn decompress(reader: impl Read, what: &str, max: usize) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| HttpError::Ingest(IngestError::Invalid(format!("malformed {what} body: {e}"))))?;
    if out.len() > max {
        return Err(HttpError::TooLarge(format!(
            "request is larger than {max} bytes after decompression (acceptor.max_request_size)"
        )));
    }
    Ok(out)
}
