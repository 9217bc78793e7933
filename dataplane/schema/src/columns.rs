//! Column and field names of SignalDB's Arrow schemas, and the codes stored
//! in them. Code outside this crate refers to columns through these
//! constants, never through string literals.

/// Schema metadata key naming the signal a schema stores (`"traces"`).
pub const SCHEMA_METADATA_KEY: &str = "signaldb.schema";
/// Schema metadata key holding the schema's version.
pub const SCHEMA_VERSION_METADATA_KEY: &str = "signaldb.schema_version";
/// Value of [`SCHEMA_METADATA_KEY`] for the span schema.
pub const TRACES_SCHEMA: &str = "traces";
/// Value of [`SCHEMA_VERSION_METADATA_KEY`] for the span schema.
pub const TRACES_SCHEMA_VERSION: &str = "2";

/// Name of the item field of every list column.
pub const LIST_ITEM: &str = "item";

/// `FixedSizeBinary(16)`, not null.
pub const TRACE_ID: &str = "trace_id";
/// `FixedSizeBinary(8)`, not null.
pub const SPAN_ID: &str = "span_id";
/// `FixedSizeBinary(8)`, null for root spans (the OTLP field was empty).
pub const PARENT_SPAN_ID: &str = "parent_span_id";
/// `Utf8`, not null (empty when unset).
pub const TRACE_STATE: &str = "trace_state";
/// `Utf8`, not null.
pub const NAME: &str = "name";
/// `Int32`: the OTLP `SpanKind` value, kept as sent.
pub const KIND: &str = "kind";
/// `Timestamp(Nanosecond, "UTC")`, not null.
pub const START_TIME_UNIX_NANO: &str = "start_time_unix_nano";
/// `Timestamp(Nanosecond, "UTC")`, not null.
pub const END_TIME_UNIX_NANO: &str = "end_time_unix_nano";
/// `Int64`: end - start (saturating; negative when end < start). Derived, not
/// read back.
pub const DURATION_NANO: &str = "duration_nano";
/// `UInt32`: the span's W3C trace flags and OTLP `SpanFlags` bits.
pub const FLAGS: &str = "flags";
/// `Int32`: the OTLP `Status.code` value, kept as sent.
pub const STATUS_CODE: &str = "status_code";
/// `Utf8`: `Status.message`.
pub const STATUS_MESSAGE: &str = "status_message";
/// Span attributes; see [`attribute`].
pub const ATTRIBUTES: &str = "attributes";
/// `UInt32`.
pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
/// `UInt32`.
pub const DROPPED_EVENTS_COUNT: &str = "dropped_events_count";
/// `UInt32`.
pub const DROPPED_LINKS_COUNT: &str = "dropped_links_count";
/// `List<Struct>` of span events; see [`event`].
pub const EVENTS: &str = "events";
/// `List<Struct>` of span links; see [`link`].
pub const LINKS: &str = "links";
/// `Utf8`, nullable: the resource attribute `service.name` when it is a
/// string. A derived copy for fast search; not read back.
pub const SERVICE_NAME: &str = "service_name";
/// Resource attributes; see [`attribute`].
pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
/// `UInt32`.
pub const RESOURCE_DROPPED_ATTRIBUTES_COUNT: &str = "resource_dropped_attributes_count";
/// `Utf8`: `ResourceSpans.schema_url`.
pub const RESOURCE_SCHEMA_URL: &str = "resource_schema_url";
/// `Utf8`: `InstrumentationScope.name`.
pub const SCOPE_NAME: &str = "scope_name";
/// `Utf8`: `InstrumentationScope.version`.
pub const SCOPE_VERSION: &str = "scope_version";
/// Scope attributes; see [`attribute`].
pub const SCOPE_ATTRIBUTES: &str = "scope_attributes";
/// `UInt32`.
pub const SCOPE_DROPPED_ATTRIBUTES_COUNT: &str = "scope_dropped_attributes_count";
/// `Utf8`: `ScopeSpans.schema_url`.
pub const SCOPE_SCHEMA_URL: &str = "scope_schema_url";

/// `Utf8`, nullable: the span attribute `http.request.method` when it is a
/// string. Like every dedicated column (see [`DEDICATED`]), a derived copy
/// for search, not read back; the attribute stays in [`ATTRIBUTES`].
pub const HTTP_REQUEST_METHOD: &str = "http_request_method";
/// `Float64`, nullable: the span attribute `http.response.status_code` when
/// it is a number (integer or double, as TraceQL compares them; NaN as null).
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http_response_status_code";
/// `Utf8`, nullable: the span attribute `http.route` when it is a string.
pub const HTTP_ROUTE: &str = "http_route";
/// `Utf8`, nullable: the span attribute `db.system` when it is a string.
pub const DB_SYSTEM: &str = "db_system";
/// `Utf8`, nullable: the span attribute `rpc.service` when it is a string.
pub const RPC_SERVICE: &str = "rpc_service";

/// What a dedicated column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedicatedType {
    /// `Utf8`: the attribute's value when it is a string.
    String,
    /// `Float64`: the attribute's value when it is a number (integer or
    /// double; NaN is stored as null).
    Number,
}

/// A span attribute with a column of its own: filters on it are column
/// predicates with statistics, as Tempo's dedicated columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dedicated {
    /// The span attribute's key.
    pub attribute: &'static str,
    pub column: &'static str,
    pub kind: DedicatedType,
}

/// The span attributes with columns of their own, in schema order (after
/// [`SCOPE_SCHEMA_URL`]). A span holding the attribute more than once has
/// the first value in the column.
pub const DEDICATED: &[Dedicated] = &[
    Dedicated {
        attribute: "http.request.method",
        column: HTTP_REQUEST_METHOD,
        kind: DedicatedType::String,
    },
    Dedicated {
        attribute: "http.response.status_code",
        column: HTTP_RESPONSE_STATUS_CODE,
        kind: DedicatedType::Number,
    },
    Dedicated {
        attribute: "http.route",
        column: HTTP_ROUTE,
        kind: DedicatedType::String,
    },
    Dedicated {
        attribute: "db.system",
        column: DB_SYSTEM,
        kind: DedicatedType::String,
    },
    Dedicated {
        attribute: "rpc.service",
        column: RPC_SERVICE,
        kind: DedicatedType::String,
    },
];

/// Fields of the struct items of the [`EVENTS`] list.
pub mod event {
    /// `Timestamp(Nanosecond, "UTC")`, not null.
    pub const TIME_UNIX_NANO: &str = "time_unix_nano";
    /// `Utf8`, not null.
    pub const NAME: &str = "name";
    /// Event attributes; see [`attribute`](super::attribute).
    pub const ATTRIBUTES: &str = "attributes";
    /// `UInt32`.
    pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
}

/// Fields of the struct items of the [`LINKS`] list.
pub mod link {
    /// `FixedSizeBinary(16)`, not null.
    pub const TRACE_ID: &str = "trace_id";
    /// `FixedSizeBinary(8)`, not null.
    pub const SPAN_ID: &str = "span_id";
    /// `Utf8`, not null.
    pub const TRACE_STATE: &str = "trace_state";
    /// Link attributes; see [`attribute`](super::attribute).
    pub const ATTRIBUTES: &str = "attributes";
    /// `UInt32`.
    pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
    /// `UInt32`.
    pub const FLAGS: &str = "flags";
}

/// Fields of the struct items of every attribute list
/// (`List<Struct{key, type, str, int, double, bool, bytes}>`).
///
/// Exactly one value field is set, chosen by `type` (see [`value_type`]):
/// strings in `str`, integers in `int`, doubles in `double`, booleans in
/// `bool`, bytes in `bytes`. Arrays and key-value lists are stored as the
/// protobuf encoding of the whole `AnyValue` in `bytes`. An empty `AnyValue`
/// (type 0) has every value field null, except that `bytes` holds an empty
/// value when the `KeyValue` carried an `AnyValue` message without a value
/// (rather than no `AnyValue` at all); this keeps the two apart losslessly.
///
/// [`value_type`]: crate::columns::value_type
pub mod attribute {
    /// `Utf8`, not null.
    pub const KEY: &str = "key";
    /// `UInt8`, not null: one of [`value_type`](super::value_type).
    pub const TYPE: &str = "type";
    /// `Utf8`, nullable.
    pub const STR: &str = "str";
    /// `Int64`, nullable.
    pub const INT: &str = "int";
    /// `Float64`, nullable.
    pub const DOUBLE: &str = "double";
    /// `Boolean`, nullable.
    pub const BOOL: &str = "bool";
    /// `Binary`, nullable.
    pub const BYTES: &str = "bytes";
}

/// Codes of the attribute `type` field.
pub mod value_type {
    /// No value (`AnyValue` unset or without a value).
    pub const EMPTY: u8 = 0;
    /// `string_value`, in `str`.
    pub const STRING: u8 = 1;
    /// `bool_value`, in `bool`.
    pub const BOOL: u8 = 2;
    /// `int_value`, in `int`.
    pub const INT: u8 = 3;
    /// `double_value`, in `double`.
    pub const DOUBLE: u8 = 4;
    /// `bytes_value`, in `bytes`.
    pub const BYTES: u8 = 5;
    /// `array_value`: the protobuf-encoded `AnyValue`, in `bytes`.
    pub const ARRAY: u8 = 6;
    /// `kvlist_value`: the protobuf-encoded `AnyValue`, in `bytes`.
    pub const KVLIST: u8 = 7;
    /// `string_value_strindex` (a profiling-only reference into a string
    /// table), in `int`. Kept so that nothing is lost.
    pub const STRING_STRINDEX: u8 = 8;
}
