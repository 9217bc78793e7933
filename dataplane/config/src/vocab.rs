//! Names shared by every component: roles, capabilities, signals, tenants, ports.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Default ports of each endpoint.
pub mod ports {
    /// OTLP over gRPC (acceptor).
    pub const OTLP_GRPC: u16 = 4317;
    /// OTLP over HTTP (acceptor).
    pub const OTLP_HTTP: u16 = 4318;
    /// Arrow Flight (writer).
    pub const WRITER_FLIGHT: u16 = 50051;
    /// Arrow Flight (querier).
    pub const QUERIER_FLIGHT: u16 = 50052;
    /// Flight SQL (router).
    pub const ROUTER_FLIGHT_SQL: u16 = 50053;
    /// Tempo-compatible HTTP API (router).
    pub const ROUTER_HTTP: u16 = 3200;
    /// `/metrics`, `/ready`, `/live` (every role).
    pub const ADMIN_HTTP: u16 = 9091;
}

/// A role of the `signaldb` binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Acceptor,
    Writer,
    Querier,
    Router,
    /// Merges small files; serves no port but the admin one and registers
    /// no service.
    Compactor,
}

impl Role {
    /// The roles that serve ports other roles or clients reach (and
    /// register as services); the compactor is not one of them.
    pub const ALL: [Role; 4] = [Role::Acceptor, Role::Writer, Role::Querier, Role::Router];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Acceptor => "acceptor",
            Role::Writer => "writer",
            Role::Querier => "querier",
            Role::Router => "router",
            Role::Compactor => "compactor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}: expected one of acceptor, writer, querier, router, compactor")]
pub struct ParseRoleError(String);

impl FromStr for Role {
    type Err = ParseRoleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .chain([Role::Compactor])
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ParseRoleError(s.to_owned()))
    }
}

/// What a registered service can do; routing looks services up by capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Capability {
    /// Accepts OTLP from clients (acceptor).
    TraceIngestion,
    /// Accepts Arrow batches over Flight `DoPut` and stores them (writer).
    Storage,
    /// Executes queries (querier).
    QueryExecution,
    /// Serves the external query APIs (router).
    Routing,
}

impl Capability {
    pub const ALL: [Capability; 4] = [
        Capability::TraceIngestion,
        Capability::Storage,
        Capability::QueryExecution,
        Capability::Routing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::TraceIngestion => "TraceIngestion",
            Capability::Storage => "Storage",
            Capability::QueryExecution => "QueryExecution",
            Capability::Routing => "Routing",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown capability {0:?}: expected one of TraceIngestion, Storage, QueryExecution, Routing")]
pub struct ParseCapabilityError(String);

impl FromStr for Capability {
    type Err = ParseCapabilityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| ParseCapabilityError(s.to_owned()))
    }
}

/// A telemetry signal; also the second level of the storage layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "traces" => Ok(Signal::Traces),
            "logs" => Ok(Signal::Logs),
            "metrics" => Ok(Signal::Metrics),
            other => Err(format!("unknown signal {other:?}: expected traces, logs or metrics")),
        }
    }
}

/// A tenant id, as carried by Tempo's `X-Scope-OrgID` header.
///
/// Valid ids are 1 to 150 bytes of ASCII letters, digits and `!-_.*'()`, and
/// are neither `.` nor `..`: they name a directory of the storage layout, so
/// nothing in them may escape it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

/// Why a string is not a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    #[error("tenant id is empty")]
    Empty,
    #[error("tenant id is {0} bytes long; at most 150 are allowed")]
    TooLong(usize),
    #[error("tenant id {0:?} contains {1:?}; only letters, digits and !-_.*'() are allowed")]
    BadChar(String, char),
    #[error("tenant id may not be {0:?}")]
    Reserved(String),
}

impl TenantId {
    /// The tenant of every request when multi-tenancy is off (Tempo's name).
    pub const DEFAULT: &'static str = "single-tenant";
    pub const MAX_LEN: usize = 150;

    pub fn new(s: impl Into<String>) -> Result<Self, TenantIdError> {
        let s = s.into();
        if s.is_empty() {
            return Err(TenantIdError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(TenantIdError::TooLong(s.len()));
        }
        if s == "." || s == ".." {
            return Err(TenantIdError::Reserved(s));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c)))
        {
            return Err(TenantIdError::BadChar(s, c));
        }
        Ok(Self(s))
    }

    /// The default tenant, `single-tenant`.
    pub fn default_tenant() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TenantId {
    type Error = TenantIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> Self {
        t.0
    }
}

impl FromStr for TenantId {
    type Err = TenantIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids() {
        assert_eq!(TenantId::new("acme-01").unwrap().as_str(), "acme-01");
        assert_eq!(TenantId::new(""), Err(TenantIdError::Empty));
        assert_eq!(TenantId::new(".."), Err(TenantIdError::Reserved("..".into())));
        assert!(matches!(TenantId::new("a/b"), Err(TenantIdError::BadChar(_, '/'))));
        assert!(matches!(
            TenantId::new("x".repeat(151)),
            Err(TenantIdError::TooLong(151))
        ));
        assert_eq!(TenantId::default_tenant().as_str(), "single-tenant");
    }

    #[test]
    fn names_round_trip() {
        for c in Capability::ALL {
            assert_eq!(c.as_str().parse::<Capability>().unwrap(), c);
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("Storagex".parse::<Capability>().is_err());
    }
}
