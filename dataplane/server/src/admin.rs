//! The admin HTTP port (9091): `/metrics`, `/ready`, `/live`, and the drain
//! of a writer or an acceptor (`GET` progress, `POST` start, `DELETE` undo).
//! A writer drains by leaving routing and flushing its buffer; an acceptor
//! by refusing new requests (and reporting not ready, so its Service stops
//! sending them) and delivering its WAL.
//!
//! Starting or undoing a drain changes where acknowledged data goes, so it
//! needs the cluster token as `Authorization: Bearer <token>`
//! ([`ClusterToken`]). Reading progress and metrics needs nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use signaldb_catalog::Catalog;
use tracing::{info, warn};

use crate::auth::ClusterToken;
use crate::metrics::Metrics;
use crate::writer::Writer;

/// What the admin handlers read.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) metrics: Metrics,
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) writer: Option<Writer>,
    /// The acceptor of a process that runs one and no writer (a process
    /// with both drains its writer).
    pub(crate) acceptor: Option<crate::acceptor::Acceptor>,
    pub(crate) catalog: Arc<dyn Catalog>,
    /// The token `POST`/`DELETE /drain` need; `None`: open (a role run alone
    /// without `cluster.token_file`, warned about at start).
    pub(crate) token: Option<ClusterToken>,
}

pub(crate) fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/ready", get(ready_handler))
        .route("/live", get(|| async { "live\n" }))
        .route("/drain", get(drain_status).post(drain_start).delete(drain_stop))
        .with_state(state)
}

/// Progress of a writer's drain, as `GET /drain` reports it.
#[derive(Debug, serde::Serialize)]
struct DrainStatus {
    draining: bool,
    buffered_bytes: u64,
    wal_pending_bytes: u64,
    /// Draining, and nothing is left to flush.
    done: bool,
}

fn drain_report(w: &Writer) -> DrainStatus {
    let (buffered, _) = w.buffered();
    let pending = w.wal_pending_bytes();
    let draining = w.is_draining();
    DrainStatus {
        draining,
        buffered_bytes: buffered as u64,
        wal_pending_bytes: pending,
        done: draining && w.puts_in_flight() == 0 && buffered == 0 && pending == 0,
    }
}

fn no_writer() -> axum::response::Response {
    (StatusCode::NOT_FOUND, "this process runs no writer or acceptor\n").into_response()
}

/// Progress of an acceptor's drain, in the same shape as a writer's: the
/// bytes of requests being received stand for `buffered_bytes`.
fn acceptor_report(a: &crate::acceptor::Acceptor) -> DrainStatus {
    let draining = a.is_draining();
    let receiving = a.in_flight().in_use();
    let pending = a.wal_pending_bytes();
    DrainStatus {
        draining,
        buffered_bytes: receiving,
        wal_pending_bytes: pending,
        done: draining && a.requests_in_progress() == 0 && pending == 0,
    }
}

/// The refusal for a request without the cluster token, or `None` when it
/// carries it (or no token is configured).
fn refuse_without_token(s: &AdminState, headers: &HeaderMap) -> Option<axum::response::Response> {
    let token = s.token.as_ref()?;
    match token.check_http(headers) {
        Ok(()) => None,
        Err(why) => Some((StatusCode::UNAUTHORIZED, format!("{why}\n")).into_response()),
    }
}

async fn drain_status(State(s): State<AdminState>) -> axum::response::Response {
    match &s.writer {
        Some(w) => {
            if w.is_draining() {
                // Re-assert the flag: a re-registration after a catalog outage resets it.
                let _ = s.catalog.set_draining(w.id(), true).await;
            }
            axum::Json(drain_report(w)).into_response()
        }
        None => match &s.acceptor {
            Some(a) => axum::Json(acceptor_report(a)).into_response(),
            None => no_writer(),
        },
    }
}

/// Starts draining: leave routing, refuse new data, flush everything.
async fn drain_start(State(s): State<AdminState>, headers: HeaderMap) -> axum::response::Response {
    if let Some(refusal) = refuse_without_token(&s, &headers) {
        return refusal;
    }
    let Some(w) = s.writer.clone() else {
        return match &s.acceptor {
            Some(a) => {
                a.set_draining(true);
                info!("draining: refusing new requests and delivering the WAL");
                (StatusCode::ACCEPTED, axum::Json(acceptor_report(a))).into_response()
            }
            None => no_writer(),
        };
    };
    w.set_draining(true);
    if let Err(e) = s.catalog.set_draining(w.id(), true).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot mark the writer draining in the catalog: {e}\n"),
        )
            .into_response();
    }
    info!(writer = %w.id(), "draining: refusing new data and flushing");
    let flusher = w.clone();
    tokio::spawn(async move {
        if let Err(e) = flusher.flush().await {
            warn!(error = %e, "drain flush failed; the flusher retries");
        }
    });
    (StatusCode::ACCEPTED, axum::Json(drain_report(&w))).into_response()
}

/// Undoes a drain: the writer takes new data again and rejoins routing.
async fn drain_stop(State(s): State<AdminState>, headers: HeaderMap) -> axum::response::Response {
    if let Some(refusal) = refuse_without_token(&s, &headers) {
        return refusal;
    }
    let Some(w) = s.writer.clone() else {
        return match &s.acceptor {
            Some(a) => {
                a.set_draining(false);
                info!("drain undone: taking requests again");
                (StatusCode::OK, axum::Json(acceptor_report(a))).into_response()
            }
            None => no_writer(),
        };
    };
    // Catalog first: acceptors must see the writer back before it is
    // reported back, and a failure leaves it draining (safe) rather than half.
    if let Err(e) = s.catalog.set_draining(w.id(), false).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot mark the writer active in the catalog: {e}\n"),
        )
            .into_response();
    }
    w.set_draining(false);
    info!(writer = %w.id(), "drain undone: taking new data again");
    (StatusCode::OK, axum::Json(drain_report(&w))).into_response()
}

async fn metrics_handler(State(s): State<AdminState>) -> impl IntoResponse {
    if let Some(w) = &s.writer {
        let (bytes, _) = w.buffered();
        s.metrics
            .writer_buffer_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn ready_handler(State(s): State<AdminState>) -> impl IntoResponse {
    if s.writer.is_none() && s.acceptor.as_ref().is_some_and(crate::acceptor::Acceptor::is_draining) {
        // Out of the acceptor Service: clients' retries go elsewhere.
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}
