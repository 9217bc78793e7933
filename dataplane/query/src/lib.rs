//! SignalDB's query engine: DataFusion over the catalog's Parquet files plus
//! the writers' unflushed buffers, and per-file indexes (footer, page index,
//! trace-id bloom filters) that let a trace by id, and a search's second
//! step, read only the pages that can hold their traces. Queries run on a
//! runtime of their own ([`CpuRuntime`]); searches that read every file can
//! split their scan across queriers ([`Peers`], `QueryEngine::with_cluster`).
//!
//! Every query is scoped to one tenant: the tables a query sees are built
//! from that tenant's catalog entries and that tenant's buffers only, so no
//! SQL or TraceQL can reach another tenant's data.

mod bounds;
mod byid;
mod candidates;
mod counting;
mod cpu;
mod distributed;
mod engine;
mod explain;
mod listing;
mod lower;
mod search;
mod table;

pub use bounds::{QueryTimedOut, is_timeout};
pub use byid::{DEFAULT_INDEX_CACHE_BYTES, StoreReader};
pub use candidates::Collect;
pub use counting::ReadStats;
pub use cpu::CpuRuntime;
pub use datafusion::error::DataFusionError;
pub use distributed::{Peers, WorkerServer};
pub use engine::{
    BufferFilter, BufferSource, Buffered, DEFAULT_QUERY_TIMEOUT, NoBuffers, QueryEngine, QueryError, Snapshot,
    dedup_spans,
};
pub use search::{
    MAX_CANDIDATE_TRACES, SearchParams, SearchTrace, SpanHit, TagScope, condition_columns, intrinsic_values, search,
    search_batches, search_columns, tag_names, tag_values,
};
