//! SignalDB's end-to-end suite: one scenario against any kubeconfig.
//!
//! The binary `signaldb-e2e` runs [`scenario::run`]. The modules beside it
//! are pure (waiting, checks, manifests, OTLP payloads, tool arguments) and
//! unit-tested without a cluster. The crate's integration tests check the
//! deployment artefacts that need no cluster: the Helm chart (with the real
//! `helm`), the Argo CD health check (with Lua 5.1), the Dockerfile and the
//! GitOps documentation.

pub mod checks;
pub mod manifests;
pub mod otlp;
pub mod scenario;
pub mod tools;
pub mod wait;
