//! The query crate's tests on real Parquet files, written with the writer's
//! own encoder and registered in a real (SQLite) catalog.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod byid;
mod common;
mod distributed;
mod explain;
mod search;
