//! The SignalDB Kubernetes operator: the `SignalDBCluster` custom resource
//! and the controller that runs it.
//!
//! A reconcile is a pipeline: [`validate`] the spec, decide about writer
//! scale-downs ([`drain`]), [`build`] the desired children (pure functions),
//! [`apply`] them with server-side apply, then compute [`status`] from what
//! was applied. [`reconcile`] strings the stages together; [`run`] is the
//! process around it (controller, leader election, metrics, health).

pub mod apply;
pub mod build;
pub mod config;
pub mod crd;
pub mod crdgen;
pub mod drain;
pub mod drain_client;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod quantity;
pub mod rbac;
pub mod reconcile;
pub mod run;
pub mod server;
pub mod status;
pub mod validate;
