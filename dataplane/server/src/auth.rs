//! The cluster token: the shared secret role-to-role calls and the admin
//! port's drain controls present as `Authorization: Bearer <token>`.
//!
//! It comes from `cluster.token_file` (in Kubernetes, a Secret the operator
//! creates and mounts). The all-in-one process without one makes a random
//! token at start, so nothing outside the process can drain its writer.

use std::path::Path;
use std::sync::Arc;

use http::HeaderMap;
use rand::RngCore;

/// A cluster token; cheap to clone, never printed.
#[derive(Clone)]
pub struct ClusterToken(Arc<str>);

impl std::fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterToken(..)")
    }
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("reading cluster token file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cluster token file {path} holds {len} characters; at least 16 are needed")]
    TooShort { path: String, len: usize },
    #[error("cluster token file {path} holds characters not allowed in an HTTP header")]
    NotHeaderSafe { path: String },
}

impl ClusterToken {
    /// The token in `path` (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: shown.clone(),
            source,
        })?;
        let token = text.trim();
        if token.len() < 16 {
            return Err(TokenError::TooShort {
                path: shown,
                len: token.len(),
            });
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::NotHeaderSafe { path: shown });
        }
        Ok(Self(token.into()))
    }

    /// A fresh random token (256 bits, hex).
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(hex::encode(bytes).into())
    }

    /// Makes a random token and writes it to a new file at `path`, readable
    /// by its owner only.
    pub fn create_file(path: &Path) -> std::io::Result<Self> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let token = Self::random();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(token.0.as_bytes())?;
        f.sync_all()?;
        Ok(token)
    }

    /// The `Authorization` header value that carries this token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    fn matches(&self, presented: &str) -> bool {
        crate::api_keys::same_bytes(self.0.as_bytes(), presented.as_bytes())
    }

    /// Checks an `Authorization: Bearer` value (HTTP header or gRPC metadata).
    pub fn check_authorization(&self, value: Option<&str>) -> Result<(), &'static str> {
        let Some(value) = value else {
            return Err("this endpoint needs the cluster token: send Authorization: Bearer <token>");
        };
        let presented = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or("the Authorization header must be Bearer <cluster token>")?;
        if self.matches(presented.trim()) {
            Ok(())
        } else {
            Err("wrong cluster token")
        }
    }

    /// Checks the `Authorization` header of an HTTP request.
    pub fn check_http(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        match headers.get(http::header::AUTHORIZATION).map(|v| v.to_str()) {
            None => self.check_authorization(None),
            Some(Ok(v)) => self.check_authorization(Some(v)),
            Some(Err(_)) => Err("the Authorization header is not valid text"),
        }
    }
}

/// Adds the cluster token to every role-to-role gRPC call (a client
/// interceptor); without a token it adds nothing.
#[derive(Debug, Clone, Default)]
pub struct SendToken(Option<ClusterToken>);

impl SendToken {
    pub fn new(token: Option<ClusterToken>) -> Self {
        Self(token)
    }
}

impl tonic::service::Interceptor for SendToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value = token
                .bearer()
                .parse()
                .map_err(|_| tonic::Status::internal("the cluster token is not a valid header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// Refuses role-to-role gRPC calls without the cluster token
/// (`UNAUTHENTICATED`), when the process has one (a server interceptor).
#[derive(Debug, Clone, Default)]
pub struct RequireToken(Option<ClusterToken>);

impl RequireToken {
    pub fn new(token: Option<ClusterToken>) -> Self {
        Self(token)
    }
}

impl tonic::service::Interceptor for RequireToken {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(token) = &self.0 else {
            return Ok(request);
        };
        let presented = match request.metadata().get("authorization").map(|v| v.to_str()) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => return Err(tonic::Status::unauthenticated("authorization is not valid text")),
        };
        match token.check_authorization(presented) {
            Ok(()) => Ok(request),
            Err(why) => Err(tonic::Status::unauthenticated(format!(
                "{why} (this port is for SignalDB's own roles)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn checks_bearer_tokens() {
        let t = ClusterToken::random();
        assert!(t.check_authorization(Some(&t.bearer())).is_ok());
        assert_eq!(
            t.check_authorization(None),
            Err("this endpoint needs the cluster token: send Authorization: Bearer <token>")
        );
        assert_eq!(t.check_authorization(Some("Bearer nope")), Err("wrong cluster token"));
        assert_eq!(
            t.check_authorization(Some("Basic abc")),
            Err("the Authorization header must be Bearer <cluster token>")
        );
        assert_ne!(ClusterToken::random().bearer(), t.bearer());
    }

    #[test]
    fn reads_token_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        let t = ClusterToken::from_file(&path).unwrap();
        assert!(t.check_authorization(Some("Bearer 0123456789abcdef0123")).is_ok());
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(
            ClusterToken::from_file(&path),
            Err(TokenError::TooShort { len: 5, .. })
        ));
        assert!(matches!(
            ClusterToken::from_file(&dir.path().join("missing")),
            Err(TokenError::Read { .. })
        ));
        assert!(!format!("{t:?}").contains("0123"));
        let made = ClusterToken::create_file(&dir.path().join("new")).unwrap();
        let read = ClusterToken::from_file(&dir.path().join("new")).unwrap();
        assert_eq!(made.bearer(), read.bearer());
        assert!(
            ClusterToken::create_file(&dir.path().join("new")).is_err(),
            "never overwrites"
        );
    }
}
