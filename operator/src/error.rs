//! Errors of a reconcile. Each variant names the action that failed and the
//! object it failed on; [`Error::metric_label`] names it for
//! `signaldb_operator_reconcile_errors_total`.

use crate::build::{BuildError, ChildKey};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a reconcile failed. Invalid specs and failed drains are not errors:
/// they are reported in status and the reconcile succeeds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action} {kind} {name}: {source}")]
    Kube {
        action: &'static str,
        kind: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("cannot update the status of SignalDBCluster {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("cannot read or write the Secret {name}: {source}")]
    Secret {
        name: String,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("the Secret {name} has no key {key}; delete it and the operator makes a new one")]
    SecretKeyMissing { name: String, key: &'static str },

    #[error("cannot list the writer pods of {name}: {source}")]
    WriterPods {
        name: String,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("cannot restart writer pod {pod}: {source}")]
    RestartPod {
        pod: String,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("cannot serialise {what}: {source}")]
    Serialize {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error(transparent)]
    Build(#[from] BuildError),

    #[error("the SignalDBCluster has no {0}")]
    MissingMetadata(&'static str),
}

impl Error {
    /// A failed API call on a child.
    pub fn kube(action: &'static str, key: &ChildKey, source: kube::Error) -> Self {
        Error::Kube {
            action,
            kind: key.kind.as_str(),
            name: key.name.clone(),
            source: Box::new(source),
        }
    }

    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::Status { .. } => "status",
            Error::Secret { .. } => "secret",
            Error::SecretKeyMissing { .. } => "secret_key_missing",
            Error::WriterPods { .. } => "writer_pods",
            Error::RestartPod { .. } => "restart_pod",
            Error::Serialize { .. } => "serialize",
            Error::Build(_) => "build",
            Error::MissingMetadata(_) => "metadata",
        }
    }
}
