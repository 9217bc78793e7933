//! The server crate's one integration-test binary: real servers on port 0,
//! real clients, real files.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]

mod common;

mod abuse;
mod bad_input;
mod bounds;
mod compaction;
mod crash;
mod decode_once;
mod drain;
mod endpoint_slices;
mod memory;
mod multiprocess;
mod otel_sdk;
mod overload;
mod partial;
mod query;
mod replication;
mod retention;
mod scale_out;
mod search;
mod tenant_auth;
mod tls;
mod unreachable;
mod wal_damage;
