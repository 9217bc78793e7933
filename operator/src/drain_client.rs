//! Talking to a writer's drain endpoint (admin port 9091): `POST /drain`
//! starts draining and answers 202; `GET /drain` answers
//! `{"draining":bool,"buffered_bytes":u64,"wal_pending_bytes":u64,"done":bool}`.
//!
//! [`DrainClient`] is the seam: [`HttpDrainClient`] speaks HTTP to the pod,
//! [`FakeDrainClient`] plays scripted writers in tests.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use signaldb_config::ports;

use crate::drain::{Probe, WriterDrainStatus};

/// The cluster token (from the Secret the operator made): writers start a
/// drain only for a request that carries it. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterToken(String);

impl ClusterToken {
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterToken(..)")
    }
}

/// The pod to talk to: a writer, or an acceptor (same drain API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterTarget {
    /// `Writer` or `Acceptor`.
    pub role: signaldb_config::Role,
    pub ordinal: i32,
    /// Pod name.
    pub pod: String,
    /// Pod IP, once the pod has one.
    pub ip: Option<String>,
    /// Sent as `Authorization: Bearer` when set.
    pub token: Option<ClusterToken>,
}

/// Why a drain call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrainError {
    /// Transient: no pod IP, connection refused, timeout, 5xx.
    #[error("{0}")]
    Unreachable(String),
    /// Definitive: a 4xx answer (e.g. 404 from a writer without the drain
    /// API) or an answer that is not the documented JSON.
    #[error("{0}")]
    Refused(String),
}

/// The drain API of writers.
pub trait DrainClient: Send + Sync + fmt::Debug {
    /// `POST /drain`.
    fn start(&self, target: &WriterTarget) -> BoxFuture<'_, Result<(), DrainError>>;
    /// `GET /drain`.
    fn status(&self, target: &WriterTarget) -> BoxFuture<'_, Result<WriterDrainStatus, DrainError>>;
}

/// Asks a writer for its drain status, (re-)starting the drain if the writer
/// does not report draining (it may have restarted), and folds the outcome
/// into a [`Probe`] for the state machine.
pub async fn ensure_draining(client: &dyn DrainClient, target: &WriterTarget) -> Probe {
    let first = client.status(target).await;
    let status = match first {
        Ok(s) if s.draining => Ok(s),
        Ok(_) => match client.start(target).await {
            Ok(()) => client.status(target).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match status {
        Ok(s) => Probe::Status(s),
        Err(DrainError::Unreachable(reason)) => Probe::Unreachable(reason),
        Err(DrainError::Refused(reason)) => Probe::Failed(reason),
    }
}

/// The real client: plain HTTP to the pod IP on the admin port.
#[derive(Clone)]
pub struct HttpDrainClient {
    client: Client<HttpConnector, Full<Bytes>>,
    port: u16,
    timeout: Duration,
}

impl fmt::Debug for HttpDrainClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpDrainClient")
            .field("port", &self.port)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for HttpDrainClient {
    fn default() -> Self {
        Self::new(ports::ADMIN_HTTP, Duration::from_secs(5))
    }
}

impl HttpDrainClient {
    pub fn new(port: u16, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            port,
            timeout,
        }
    }

    fn url(&self, target: &WriterTarget) -> Result<String, DrainError> {
        let ip = target
            .ip
            .as_deref()
            .ok_or_else(|| DrainError::Unreachable(format!("pod {} has no IP yet", target.pod)))?;
        // IPv6 addresses need brackets in a URL.
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_owned()
        };
        Ok(format!("http://{host}:{}/drain", self.port))
    }

    async fn call(&self, method: Method, target: &WriterTarget) -> Result<(StatusCode, Bytes), DrainError> {
        let url = self.url(target)?;
        let mut request = Request::builder().method(method.clone()).uri(&url);
        if let Some(token) = &target.token {
            request = request.header(http::header::AUTHORIZATION, token.bearer());
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| DrainError::Refused(format!("{method} {url}: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| DrainError::Unreachable(format!("{method} {url}: {e}")))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| DrainError::Unreachable(format!("{method} {url}: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange).await.map_err(|_| {
            DrainError::Unreachable(format!(
                "{method} {url}: no answer within {}",
                humantime::format_duration(self.timeout)
            ))
        })??;
        if status.is_server_error() {
            return Err(DrainError::Unreachable(format!("{method} {url} answered {status}")));
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(DrainError::Refused(format!(
                "{method} {url} answered {status}: {}",
                text.trim()
            )));
        }
        Ok((status, body))
    }
}

impl DrainClient for HttpDrainClient {
    fn start(&self, target: &WriterTarget) -> BoxFuture<'_, Result<(), DrainError>> {
        let target = target.clone();
        Box::pin(async move { self.call(Method::POST, &target).await.map(|_| ()) })
    }

    fn status(&self, target: &WriterTarget) -> BoxFuture<'_, Result<WriterDrainStatus, DrainError>> {
        let target = target.clone();
        Box::pin(async move {
            let (_, body) = self.call(Method::GET, &target).await?;
            serde_json::from_slice(&body).map_err(|e| {
                DrainError::Refused(format!(
                    "GET /drain of {} answered {:?}, not the drain status: {e}",
                    target.pod,
                    String::from_utf8_lossy(&body)
                ))
            })
        })
    }
}

/// One scripted writer of [`FakeDrainClient`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeWriter {
    pub draining: bool,
    pub buffered_bytes: u64,
    pub wal_pending_bytes: u64,
    /// Answer every call with this error.
    pub error: Option<DrainError>,
}

/// A call the fake received (writers; acceptors' calls are the
/// `Acceptor*` ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    Start(i32),
    Status(i32),
    AcceptorStart(i32),
    AcceptorStatus(i32),
}

/// Scripted writers and acceptors, keyed by role and ordinal; unknown pods
/// are unreachable. `POST /drain` sets `draining`;
/// [`FakeDrainClient::flush`] empties a writer,
/// [`FakeDrainClient::deliver`] an acceptor's WAL.
#[derive(Debug, Clone, Default)]
pub struct FakeDrainClient {
    writers: Arc<Mutex<BTreeMap<(signaldb_config::Role, i32), FakeWriter>>>,
    calls: Arc<Mutex<Vec<FakeCall>>>,
}

const WRITER: signaldb_config::Role = signaldb_config::Role::Writer;
const ACCEPTOR: signaldb_config::Role = signaldb_config::Role::Acceptor;

impl FakeDrainClient {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a writer.
    pub fn set(&self, ordinal: i32, writer: FakeWriter) {
        if let Ok(mut w) = self.writers.lock() {
            w.insert((WRITER, ordinal), writer);
        }
    }

    /// An acceptor whose WAL holds `pending` undelivered bytes, not draining.
    pub fn acceptor_holding(&self, ordinal: i32, pending: u64) {
        if let Ok(mut w) = self.writers.lock() {
            w.insert(
                (ACCEPTOR, ordinal),
                FakeWriter {
                    wal_pending_bytes: pending,
                    ..FakeWriter::default()
                },
            );
        }
    }

    /// Delivers everything an acceptor's WAL holds.
    pub fn deliver(&self, ordinal: i32) {
        if let Ok(mut w) = self.writers.lock()
            && let Some(w) = w.get_mut(&(ACCEPTOR, ordinal))
        {
            w.wal_pending_bytes = 0;
        }
    }

    /// The scripted state of an acceptor.
    pub fn acceptor(&self, ordinal: i32) -> Option<FakeWriter> {
        self.writers.lock().ok()?.get(&(ACCEPTOR, ordinal)).cloned()
    }

    /// A writer holding data, not draining.
    pub fn holding(&self, ordinal: i32, buffered: u64, pending: u64) {
        self.set(
            ordinal,
            FakeWriter {
                buffered_bytes: buffered,
                wal_pending_bytes: pending,
                ..FakeWriter::default()
            },
        );
    }

    /// Empties a writer's buffer and WAL.
    pub fn flush(&self, ordinal: i32) {
        if let Ok(mut w) = self.writers.lock()
            && let Some(w) = w.get_mut(&(WRITER, ordinal))
        {
            w.buffered_bytes = 0;
            w.wal_pending_bytes = 0;
        }
    }

    /// Simulates a restarted pod: it forgets it was draining.
    pub fn restart(&self, ordinal: i32) {
        if let Ok(mut w) = self.writers.lock()
            && let Some(w) = w.get_mut(&(WRITER, ordinal))
        {
            w.draining = false;
        }
    }

    /// The scripted state of a writer.
    pub fn writer(&self, ordinal: i32) -> Option<FakeWriter> {
        self.writers.lock().ok()?.get(&(WRITER, ordinal)).cloned()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, call: FakeCall) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }

    fn with<T>(&self, target: &WriterTarget, f: impl FnOnce(&mut FakeWriter) -> T) -> Result<T, DrainError> {
        let mut writers = self
            .writers
            .lock()
            .map_err(|_| DrainError::Unreachable("fake poisoned".to_owned()))?;
        let writer = writers
            .get_mut(&(target.role, target.ordinal))
            .ok_or_else(|| DrainError::Unreachable(format!("no {} {}", target.role, target.ordinal)))?;
        if let Some(e) = &writer.error {
            return Err(e.clone());
        }
        Ok(f(writer))
    }
}

impl DrainClient for FakeDrainClient {
    fn start(&self, target: &WriterTarget) -> BoxFuture<'_, Result<(), DrainError>> {
        let ordinal = target.ordinal;
        self.record(match target.role {
            ACCEPTOR => FakeCall::AcceptorStart(ordinal),
            _ => FakeCall::Start(ordinal),
        });
        let result = self.with(target, |w| w.draining = true);
        Box::pin(async move { result })
    }

    fn status(&self, target: &WriterTarget) -> BoxFuture<'_, Result<WriterDrainStatus, DrainError>> {
        let ordinal = target.ordinal;
        self.record(match target.role {
            ACCEPTOR => FakeCall::AcceptorStatus(ordinal),
            _ => FakeCall::Status(ordinal),
        });
        let result = self.with(target, |w| WriterDrainStatus {
            draining: w.draining,
            buffered_bytes: w.buffered_bytes,
            wal_pending_bytes: w.wal_pending_bytes,
            done: w.draining && w.buffered_bytes == 0 && w.wal_pending_bytes == 0,
        });
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::Router;
    use axum::routing::get;

    fn target(ip: Option<&str>) -> WriterTarget {
        WriterTarget {
            role: signaldb_config::Role::Writer,
            ordinal: 1,
            pod: "demo-writer-1".into(),
            ip: ip.map(str::to_owned),
            token: Some(ClusterToken::new("cluster-token-for-tests".into())),
        }
    }

    /// A writer admin server on port 0 with the documented drain API.
    async fn serve(router: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    #[tokio::test]
    async fn http_client_speaks_the_drain_api() {
        let draining = Arc::new(AtomicBool::new(false));
        let (d1, d2) = (Arc::clone(&draining), Arc::clone(&draining));
        let router = Router::new().route(
            "/drain",
            get(move || async move {
                let d = d1.load(Ordering::SeqCst);
                format!(r#"{{"draining":{d},"buffered_bytes":0,"wal_pending_bytes":0,"done":{d}}}"#)
            })
            .post(move |headers: http::HeaderMap| async move {
                // As writers do: no drain without the cluster token.
                if headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
                    != Some("Bearer cluster-token-for-tests")
                {
                    return StatusCode::UNAUTHORIZED;
                }
                d2.store(true, Ordering::SeqCst);
                StatusCode::ACCEPTED
            }),
        );
        let addr = serve(router).await;
        let client = HttpDrainClient::new(addr.port(), Duration::from_secs(2));
        let t = target(Some("127.0.0.1"));
        let s = client.status(&t).await.unwrap();
        assert!(!s.draining);
        let without = WriterTarget {
            token: None,
            ..t.clone()
        };
        assert!(matches!(client.start(&without).await, Err(DrainError::Refused(m)) if m.contains("401")));
        assert!(!draining.load(Ordering::SeqCst));
        assert!(
            !format!("{t:?}").contains("cluster-token-for-tests"),
            "the token is never printed"
        );
        let probe = ensure_draining(&client, &t).await;
        assert_eq!(
            probe,
            Probe::Status(WriterDrainStatus {
                draining: true,
                buffered_bytes: 0,
                wal_pending_bytes: 0,
                done: true
            })
        );
    }

    #[tokio::test]
    async fn http_errors_are_classified() {
        let router = Router::new().route(
            "/drain",
            get(|| async { "not json" }).post(|| async { StatusCode::NOT_FOUND }),
        );
        let addr = serve(router).await;
        let client = HttpDrainClient::new(addr.port(), Duration::from_secs(2));
        let t = target(Some("127.0.0.1"));
        assert!(matches!(client.start(&t).await, Err(DrainError::Refused(m)) if m.contains("404")));
        assert!(matches!(client.status(&t).await, Err(DrainError::Refused(m)) if m.contains("not json")));
        assert!(matches!(
            client.status(&target(None)).await,
            Err(DrainError::Unreachable(m)) if m.contains("no IP")
        ));

        let busy = Router::new().route("/drain", get(|| async { StatusCode::SERVICE_UNAVAILABLE }));
        let addr = serve(busy).await;
        let client = HttpDrainClient::new(addr.port(), Duration::from_secs(2));
        assert!(matches!(client.status(&t).await, Err(DrainError::Unreachable(m)) if m.contains("503")));

        // Nothing listens on port 9 of localhost.
        let client = HttpDrainClient::new(9, Duration::from_secs(2));
        assert!(matches!(client.status(&t).await, Err(DrainError::Unreachable(_))));
    }

    #[tokio::test]
    async fn fake_plays_scripted_writers() {
        let fake = FakeDrainClient::new();
        fake.holding(1, 100, 10);
        let t = target(None);
        let p = ensure_draining(&fake, &t).await;
        assert!(matches!(p, Probe::Status(s) if s.draining && !s.done));
        fake.flush(1);
        assert!(matches!(ensure_draining(&fake, &t).await, Probe::Status(s) if s.done));
        fake.set(
            1,
            FakeWriter {
                error: Some(DrainError::Refused("404".into())),
                ..FakeWriter::default()
            },
        );
        assert_eq!(ensure_draining(&fake, &t).await, Probe::Failed("404".into()));
        let mut other = t.clone();
        other.ordinal = 7;
        assert!(matches!(ensure_draining(&fake, &other).await, Probe::Unreachable(_)));
        assert_eq!(
            fake.calls()[..3],
            [FakeCall::Status(1), FakeCall::Start(1), FakeCall::Status(1)]
        );
    }
}
