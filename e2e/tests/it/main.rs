//! Checks of the deployment artefacts that need no cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod argocd;
mod chart;
mod cli;
mod dockerfile;
mod docs;

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}
