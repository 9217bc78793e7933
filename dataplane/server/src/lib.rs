//! The SignalDB data plane: every role of the `signaldb` binary.
//!
//! Roles are modules; [`server`] wires them to listeners, the catalog and
//! object storage. Roles talk Arrow Flight to each other even inside one
//! process, so the all-in-one mode and the one-role-per-pod mode run the same
//! code.

pub mod acceptor;
mod admin;
pub mod api_keys;
pub mod auth;
mod background;
pub mod compactor;
pub mod discovery;
pub mod endpoints;
pub mod flight;
pub mod loadgen;
pub mod manage;
pub mod metrics;
pub mod orphans;
pub mod proto;
pub mod querier;
pub mod querybench;
pub mod retention;
pub mod router;
pub mod server;
pub mod storage;
pub mod tls;
mod upload;
pub mod writer;

/// Makes `ring` the process's TLS crypto provider (S3 over HTTPS, and any
/// other rustls client). Needed because the dependency graph enables rustls
/// without choosing a provider; calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
