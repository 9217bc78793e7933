//! SignalDB's query engine: DataFusion over the catalog's Parquet files plus
//! the writers' unflushed buffers.
//!
//! Every query is scoped to one tenant: the tables a query sees are built
//! from that tenant's catalog entries and that tenant's buffers only, so no
//! SQL or TraceQL can reach another tenant's data.

mod engine;
mod search;

pub use datafusion::error::DataFusionError;
pub use engine::{BufferFilter, BufferSource, NoBuffers, QueryEngine, QueryError, dedup_spans};
pub use search::{
    SearchParams, SearchTrace, SpanHit, TagScope, intrinsic_values, search_batches, search_columns, tag_names,
    tag_values,
};
