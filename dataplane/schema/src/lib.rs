//! Arrow schemas of SignalDB's signals and lossless conversion between OTLP
//! and Arrow.
//!
//! - [`columns`]: the names of every column and nested field, and the codes
//!   stored in them.
//! - [`traces`]: the span schema (one row per span) and OTLP <-> Arrow
//!   conversion of spans.
//!
//! Attribute lists of every signal share one Arrow type, ATTRIBUTES:
//! `List<Struct{key, type, str, int, double, bool, bytes}>`; see
//! [`columns::attribute`].

mod attributes;
pub mod columns;
mod error;
mod read;
pub mod traces;

pub use error::Error;
