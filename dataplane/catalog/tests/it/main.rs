//! The conformance suite on every backend: SQLite (a file shared by several
//! pools, as by several processes, and in memory) and PostgreSQL.
//!
//! PostgreSQL is required: set `SIGNALDB_TEST_POSTGRES_URL` (see
//! `scripts/start-postgres.sh`), or set `SIGNALDB_SKIP_POSTGRES=1` to skip
//! those tests explicitly.

// Helpers outside `#[test]` functions fail their tests the same way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod postgres;
mod sqlite;

use std::time::{SystemTime, UNIX_EPOCH};

/// A string unique to this moment and process, for names.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos}_{}", std::process::id())
}
