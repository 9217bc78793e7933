//! Typed messages SignalDB writes to its WALs and sends in Flight `app_metadata`.
//!
//! They are protobuf (prost) messages so that old and new versions of the
//! binary can read each other's records and metadata.

use bytes::Bytes;

/// One acknowledged OTLP request, as the acceptor logs it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AcceptorWalRecord {
    #[prost(string, tag = "1")]
    pub tenant: String,
    /// The signal; see [`SIGNAL_TRACES`].
    #[prost(uint32, tag = "2")]
    pub signal: u32,
    /// The protobuf encoding of the OTLP `Export*ServiceRequest`.
    #[prost(bytes = "bytes", tag = "3")]
    pub request: Bytes,
}

/// `signal` value of traces.
pub const SIGNAL_TRACES: u32 = 1;

/// `app_metadata` of the first message of a Flight `DoPut` from an acceptor.
///
/// `(source, seq, part)` names the batch: `source` is the acceptor's stable
/// service id, `seq` its WAL sequence number, `part` which writer partition of
/// the request this is. A writer stores each name once.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct PutMetadata {
    #[prost(string, tag = "1")]
    pub tenant: String,
    #[prost(uint32, tag = "2")]
    pub signal: u32,
    #[prost(string, tag = "3")]
    pub source: String,
    #[prost(uint64, tag = "4")]
    pub seq: u64,
    #[prost(uint32, tag = "5")]
    pub part: u32,
    /// Set on retries and WAL replays: the writer may have stored this batch
    /// already, so it checks the catalog's record of flushed batches too.
    #[prost(bool, tag = "6")]
    pub maybe_duplicate: bool,
}

/// `app_metadata` of the writer's `PutResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutAck {
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    #[prost(uint32, tag = "2")]
    pub part: u32,
    #[prost(uint64, tag = "3")]
    pub rows: u64,
    /// The batch had been stored before; nothing was added.
    #[prost(bool, tag = "4")]
    pub duplicate: bool,
}

/// One batch the writer accepted, as the writer logs it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriterWalRecord {
    #[prost(message, optional, tag = "1")]
    pub meta: Option<PutMetadata>,
    /// The batch as an Arrow IPC stream.
    #[prost(bytes = "bytes", tag = "2")]
    pub ipc: Bytes,
}

/// `google.rpc.Status`, the error body of OTLP/HTTP and the details carrier of gRPC.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`: how long a client should wait before retrying.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// A gRPC status carrying `RetryInfo`, which OTLP exporters honour.
pub fn status_with_retry(code: tonic::Code, message: String, retry_after: std::time::Duration) -> tonic::Status {
    let retry = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: i64::try_from(retry_after.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(retry_after.subsec_nanos()).unwrap_or(0),
        }),
    };
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![ProtoAny {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".to_owned(),
            value: prost::Message::encode_to_vec(&retry),
        }],
    };
    tonic::Status::with_details(code, message, Bytes::from(prost::Message::encode_to_vec(&details)))
}

/// Flight `DoGet` ticket of a writer: the unflushed spans of a tenant, of one
/// trace or overlapping a time range.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BufferTicket {
    #[prost(string, tag = "1")]
    pub tenant: String,
    /// 16 bytes, or empty for all traces.
    #[prost(bytes = "vec", tag = "2")]
    pub trace_id: Vec<u8>,
    #[prost(bool, tag = "3")]
    pub has_range: bool,
    #[prost(int64, tag = "4")]
    pub min_time_ns: i64,
    #[prost(int64, tag = "5")]
    pub max_time_ns: i64,
    /// More traces (16 bytes each); with `trace_id`, the spans of any.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub trace_ids: Vec<Vec<u8>>,
    // Tag 7 held the condition as TraceQL text; not reused.
    /// Only these columns, in this order; empty: all.
    #[prost(string, repeated, tag = "8")]
    pub columns: Vec<String>,
    /// Only the spans meeting this condition, parsed by the querier.
    #[prost(message, optional, tag = "9")]
    pub condition: Option<signaldb_traceql::ConditionPlan>,
    /// Non-zero: enough spans for this many distinct traces, any of them,
    /// the newest buffered first; zero: every span selected.
    #[prost(uint64, tag = "10")]
    pub max_traces: u64,
}

/// Flight `DoGet` ticket of a querier.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryTicket {
    #[prost(string, tag = "1")]
    pub tenant: String,
    #[prost(oneof = "QueryKind", tags = "2, 3")]
    pub kind: Option<QueryKind>,
}

/// What a [`QueryTicket`] asks for.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum QueryKind {
    /// All spans of one trace.
    #[prost(message, tag = "2")]
    TraceById(TraceByIdQuery),
    /// A SQL query over the tenant's `spans` table.
    #[prost(string, tag = "3")]
    Sql(String),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdQuery {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bool, tag = "2")]
    pub has_range: bool,
    #[prost(int64, tag = "3")]
    pub min_time_ns: i64,
    #[prost(int64, tag = "4")]
    pub max_time_ns: i64,
}
