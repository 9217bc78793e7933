//! The operator's integration tests: one binary, one module per subject.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod crd;
mod deps;
mod examples;
mod golden;
mod harness;
mod reconcile;
mod runtime;
mod scale_down;

use std::path::{Path, PathBuf};

/// The workspace root (the parent of `operator/`).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

/// `operator/`.
pub(crate) fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether golden files should be rewritten instead of compared.
pub(crate) fn update_golden() -> bool {
    std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1")
}
