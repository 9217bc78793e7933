//! TLS on the listeners clients reach (OTLP gRPC and HTTP, the Tempo API,
//! Flight SQL), with rustls and its ring provider.
//!
//! The certificate chain and key come from PEM files (`tls.cert_file`,
//! `tls.key_file`; in Kubernetes a Secret of cert-manager's format, whose
//! `tls.crt` and `tls.key` are mounted). The files are checked every
//! `tls.reload_interval`: a changed pair is loaded for the connections that
//! follow, and a pair that does not load (a half-written renewal) is
//! logged and the previous one kept. Handshakes run apart from the accept
//! loop, each bounded in time, so a client that never finishes its
//! handshake holds nothing but its own socket.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::crypto::ring;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: String },
    #[error("the key in {path} cannot sign with the ring provider: {source}")]
    Key { path: String, source: rustls::Error },
    #[error("the certificate in {cert} does not match the key in {key}: {source}")]
    Mismatch {
        cert: String,
        key: String,
        source: rustls::Error,
    },
}

/// The server side of TLS: the current certificate and the rustls
/// configuration that presents it. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
    current: Arc<Current>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert_file", &self.current.cert_file)
            .finish_non_exhaustive()
    }
}

/// The certificate presented now, and what its files looked like when read.
struct Current {
    cert_file: PathBuf,
    key_file: PathBuf,
    key: RwLock<Arc<CertifiedKey>>,
    stamp: Mutex<Option<Stamp>>,
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Current").field("cert_file", &self.cert_file).finish()
    }
}

/// Modification times and sizes of the two files.
type Stamp = [(SystemTime, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Option<Stamp> {
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    Some([one(cert)?, one(key)?])
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.key.read().unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

/// Reads a certificate chain and its key from PEM files.
fn load(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|source| TlsError::Read {
            what: "certificate file",
            path: shown(cert_file),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: shown(cert_file) });
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|source| TlsError::Read {
        what: "key file",
        path: shown(key_file),
        source,
    })?;
    let provider = ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::Key {
            path: shown(key_file),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|source| TlsError::Mismatch {
        cert: shown(cert_file),
        key: shown(key_file),
        source,
    })?;
    Ok(certified)
}

impl Tls {
    /// The certificate chain of `cert_file` with the key of `key_file` (PEM).
    pub fn from_files(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let before = stamp(cert_file, key_file);
        let key = load(cert_file, key_file)?;
        let current = Arc::new(Current {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            key: RwLock::new(Arc::new(key)),
            stamp: Mutex::new(before),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Key {
                path: key_file.display().to_string(),
                source,
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        // gRPC needs HTTP/2; the HTTP APIs also serve HTTP/1.1.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            current,
        })
    }

    /// Loads the files again if they changed since last read; `Ok(true)`
    /// when a new certificate is presented from now on.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let c = &self.current;
        let now = stamp(&c.cert_file, &c.key_file);
        {
            let seen = c.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if now.is_some() && *seen == now {
                return Ok(false);
            }
        }
        let key = load(&c.cert_file, &c.key_file)?;
        *c.key.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(key);
        *c.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = now;
        Ok(true)
    }

    /// Checks the files every `interval` until `stop` fires.
    pub async fn watch(self, interval: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(interval) => {}
            }
            match self.reload_if_changed() {
                Ok(true) => info!(cert_file = %self.current.cert_file.display(), "TLS certificate reloaded"),
                Ok(false) => {}
                Err(e) => warn!(error = %e, "TLS certificate not reloaded; the previous one is still presented"),
            }
        }
    }

    /// Accepts connections on `listener` and completes their handshakes
    /// apart from the accept loop; a failed handshake is logged and
    /// dropped. The loop stops when the returned listener is dropped.
    pub fn listen(&self, listener: TcpListener, what: &'static str) -> TlsListener {
        let local = listener.local_addr();
        let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config));
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    () = tx.closed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of descriptors and the like: wait, then go on.
                            warn!(error = %e, listener = what, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((TlsConn(stream), peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, %peer, listener = what, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, listener = what, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { rx, local }
    }
}

/// A TLS connection a client opened.
#[derive(Debug)]
pub struct TlsConn(tokio_rustls::server::TlsStream<TcpStream>);

impl AsyncRead for TlsConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

/// Connections whose TLS handshake is done, for `axum::serve` or (with
/// [`TlsListener::into_stream`]) tonic's `serve_with_incoming`.
#[derive(Debug)]
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsConn, SocketAddr)>,
    local: io::Result<SocketAddr>,
}

impl TlsListener {
    /// The connections as a stream, for tonic.
    pub fn into_stream(self) -> impl futures::Stream<Item = io::Result<TlsConn>> + Send + 'static {
        futures::stream::unfold(self.rx, |mut rx| async move {
            let (conn, _) = rx.recv().await?;
            Some((Ok(conn), rx))
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            // The accept loop ends only when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}
