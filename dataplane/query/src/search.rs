//! Search over span batches: TraceQL (or tag) matching, then Tempo-style
//! trace summaries; and the tag names and values of a tenant's spans.

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::{Array, Int32Array, RecordBatch, StringArray};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use signaldb_schema::columns;

use crate::engine::{QueryError, fsb, ts};

/// A parsed search.
#[derive(Debug, Clone)]
pub struct SearchParams {
    pub query: signaldb_traceql::Query,
    /// Most traces returned.
    pub limit: usize,
    /// Most spans per span set.
    pub spans_per_spanset: usize,
}

/// One matched span, as search results show it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanHit {
    pub span_id: [u8; 8],
    pub name: String,
    pub start_time_unix_nano: u64,
    pub duration_nanos: u64,
    pub attributes: Vec<KeyValue>,
}

/// One matched trace.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchTrace {
    pub trace_id: [u8; 16],
    pub root_service_name: String,
    pub root_trace_name: String,
    pub start_time_unix_nano: u64,
    pub duration_ms: u64,
    pub spans: Vec<SpanHit>,
    pub matched: u32,
    /// service name -> (span count, error count)
    pub service_stats: BTreeMap<String, (u32, u32)>,
}

/// The columns a search needs: what the summaries show (root span, trace
/// start and duration, services and their errors, the matched spans) plus
/// the columns the query reads. A span's duration is its end less its
/// start unless the query names `duration`.
pub fn search_columns(query: &signaldb_traceql::Query) -> Vec<&'static str> {
    let mut cols = vec![
        columns::TRACE_ID,
        columns::SPAN_ID,
        columns::PARENT_SPAN_ID,
        columns::NAME,
        columns::START_TIME_UNIX_NANO,
        columns::END_TIME_UNIX_NANO,
        columns::STATUS_CODE,
        columns::SERVICE_NAME,
    ];
    // Filters and `select(...)`: matched spans carry both.
    add_field_columns(&mut cols, &query.all_fields());
    cols
}

/// The column of its own of an attribute, if it has one: a span's
/// dedicated attributes ([`columns::DEDICATED`]) and the resource's
/// `service.name`.
fn own_column(a: &signaldb_traceql::AttributeRef) -> Option<&'static str> {
    use signaldb_traceql::AttributeScope;
    match a.scope {
        AttributeScope::Span => columns::DEDICATED
            .iter()
            .find(|d| d.attribute == a.name)
            .map(|d| d.column),
        AttributeScope::Resource => (a.name == "service.name").then_some(columns::SERVICE_NAME),
        AttributeScope::Unscoped => None,
    }
}

/// Adds the columns that hold `fields` to `cols`, each once. When every
/// attribute among them has a column of its own, those columns are read
/// instead of the attribute lists (a fraction of the bytes to decode); the
/// evaluator reads the same attributes from them.
fn add_field_columns(cols: &mut Vec<&'static str>, fields: &[signaldb_traceql::FieldRef]) {
    use signaldb_traceql::{AttributeScope, FieldRef, Intrinsic};
    let own_columns = fields.iter().all(|f| match f {
        FieldRef::Attribute(a) => own_column(a).is_some(),
        // Read from the resource attributes of the root span.
        FieldRef::Intrinsic(Intrinsic::RootServiceName) => false,
        FieldRef::Intrinsic(_) => true,
    });
    for field in fields {
        if own_columns
            && let FieldRef::Attribute(a) = field
            && let Some(column) = own_column(a)
        {
            if !cols.contains(&column) {
                cols.push(column);
            }
            continue;
        }
        let needed: &[&'static str] = match field {
            FieldRef::Intrinsic(Intrinsic::Name) => &[columns::NAME],
            FieldRef::Intrinsic(Intrinsic::Status) => &[columns::STATUS_CODE],
            FieldRef::Intrinsic(Intrinsic::StatusMessage) => &[columns::STATUS_MESSAGE],
            FieldRef::Intrinsic(Intrinsic::Kind) => &[columns::KIND],
            FieldRef::Intrinsic(Intrinsic::Duration) => &[columns::DURATION_NANO],
            FieldRef::Intrinsic(Intrinsic::TraceId) => &[columns::TRACE_ID],
            FieldRef::Intrinsic(Intrinsic::SpanId) => &[columns::SPAN_ID],
            FieldRef::Intrinsic(Intrinsic::EventName) => &[columns::EVENTS],
            FieldRef::Intrinsic(Intrinsic::LinkTraceId) => &[columns::LINKS],
            // Trace-level intrinsics are computed from the trace's rows,
            // whose columns every search reads.
            FieldRef::Intrinsic(_) => &[],
            FieldRef::Attribute(a) => match a.scope {
                AttributeScope::Span => &[columns::ATTRIBUTES],
                AttributeScope::Resource => &[columns::RESOURCE_ATTRIBUTES],
                AttributeScope::Unscoped => &[columns::ATTRIBUTES, columns::RESOURCE_ATTRIBUTES],
            },
        };
        for c in needed {
            if !cols.contains(c) {
                cols.push(c);
            }
        }
    }
}

/// How many candidate traces a search may consider when its span condition
/// is not the whole query.
pub const MAX_CANDIDATE_TRACES: usize = 1_000_000;

/// The columns a span-level condition reads, plus the trace id and start time.
pub fn condition_columns(condition: Option<&signaldb_traceql::FieldExpr>) -> Vec<&'static str> {
    let mut cols = vec![columns::TRACE_ID, columns::START_TIME_UNIX_NANO];
    add_field_columns(&mut cols, &condition.map(|c| c.fields()).unwrap_or_default());
    cols
}

/// Runs a search in two steps: first the traces that have a span meeting
/// the query's span condition ([`signaldb_traceql::span_prefilter`]),
/// reading only the columns it needs; then the whole query over those
/// traces alone, newest first, a chunk at a time, until `limit` traces
/// match. Returns the matches, the traces inspected and the spans read;
/// `stats` counts the bytes read.
pub async fn search(
    engine: &crate::QueryEngine,
    tenant: &signaldb_config::TenantId,
    range: Option<(i64, i64)>,
    params: &SearchParams,
    stats: &crate::ReadStats,
) -> Result<(Vec<SearchTrace>, u64, u64), QueryError> {
    let condition = signaldb_traceql::span_prefilter(&params.query);
    let exact = signaldb_traceql::prefilter_is_exact(&params.query);
    let collect = match (exact, params.query.hints().most_recent) {
        (false, _) => crate::Collect::Every {
            max: MAX_CANDIDATE_TRACES,
        },
        (true, true) => crate::Collect::Newest(params.limit),
        (true, false) => crate::Collect::First(params.limit),
    };
    // The writers send only the spans that meet the condition, and only the
    // columns it reads; when any `limit` matching traces will do, only
    // their newest `limit`.
    let filter = crate::BufferFilter {
        range,
        condition: condition.clone(),
        columns: Some(condition_columns(condition.as_ref())),
        max_traces: match collect {
            crate::Collect::First(n) => Some(n),
            crate::Collect::Newest(_) | crate::Collect::Every { .. } => None,
        },
        ..crate::BufferFilter::default()
    };
    let snap = engine.snapshot(tenant, range, filter, stats).await?;
    let candidates = engine
        .candidate_traces(&snap, condition.as_ref(), collect, stats)
        .await?;
    let cols = search_columns(&params.query);
    // Exact: every candidate matches, so one chunk of `limit` does.
    let chunk = if exact {
        params.limit.max(1)
    } else {
        (params.limit * 4).max(256)
    };
    let (mut found, mut inspected_traces, mut inspected_spans) = (Vec::new(), 0u64, 0u64);
    for ids in candidates.chunks(chunk) {
        let ids: Vec<[u8; 16]> = ids.iter().map(|(id, _)| *id).collect();
        // Every span of these traces, buffered or stored now.
        let filter = crate::BufferFilter {
            trace_ids: ids.clone(),
            range,
            condition: None,
            columns: Some(cols.clone()),
            max_traces: None,
        };
        let snap = engine.snapshot(tenant, range, filter, stats).await?;
        let spans = engine.spans_of_traces(&snap, &ids, &cols, stats).await?;
        inspected_spans += spans.num_rows() as u64;
        let (traces, inspected) = search_batches(&spans, params)?;
        inspected_traces += inspected;
        found.extend(traces);
        if found.len() >= params.limit {
            break;
        }
    }
    found.sort_by(|a, b| {
        b.start_time_unix_nano
            .cmp(&a.start_time_unix_nano)
            .then(a.trace_id.cmp(&b.trace_id))
    });
    found.truncate(params.limit);
    Ok((found, inspected_traces, inspected_spans))
}

/// Sorts by trace id, evaluates the query, and summarises the matching
/// traces, most recent first.
pub fn search_batches(spans: &RecordBatch, params: &SearchParams) -> Result<(Vec<SearchTrace>, u64), QueryError> {
    if spans.num_rows() == 0 {
        return Ok((Vec::new(), 0));
    }
    let sorted = signaldb_schema::traces::parquet::sort_spans(spans)?;
    let matches =
        signaldb_traceql::evaluate(&params.query, &sorted).map_err(|e| QueryError::BadRequest(e.to_string()))?;
    let trace_ids = fsb(&sorted, columns::TRACE_ID)?;
    let start = ts(&sorted, columns::START_TIME_UNIX_NANO)?;
    let end = ts(&sorted, columns::END_TIME_UNIX_NANO)?;
    let names = strings(&sorted, columns::NAME)?;
    let services = strings(&sorted, columns::SERVICE_NAME)?;
    let status = ints(&sorted, columns::STATUS_CODE)?;
    let parents = fsb(&sorted, columns::PARENT_SPAN_ID)?;
    let span_ids = fsb(&sorted, columns::SPAN_ID)?;
    let shown = shown_fields(&params.query);
    let reader = signaldb_traceql::FieldReader::new(&sorted);

    // Row range of every trace.
    let mut ranges: BTreeMap<[u8; 16], (usize, usize)> = BTreeMap::new();
    let mut i = 0;
    while i < sorted.num_rows() {
        let id = trace_ids.value(i);
        let mut j = i + 1;
        while j < sorted.num_rows() && trace_ids.value(j) == id {
            j += 1;
        }
        let mut key = [0u8; 16];
        key.copy_from_slice(id);
        ranges.insert(key, (i, j));
        i = j;
    }
    let inspected = ranges.len() as u64;
    let mut out = Vec::with_capacity(matches.len());
    for m in matches {
        let Some(&(lo, hi)) = ranges.get(&m.trace_id) else {
            continue;
        };
        let mut stats: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        let (mut min_start, mut max_end) = (i64::MAX, i64::MIN);
        let mut root: Option<usize> = None;
        for r in lo..hi {
            min_start = min_start.min(start.value(r));
            max_end = max_end.max(end.value(r));
            let svc = if services.is_valid(r) {
                services.value(r).to_owned()
            } else {
                String::new()
            };
            let e = stats.entry(svc).or_default();
            e.0 += 1;
            if status.value(r) == 2 {
                e.1 += 1;
            }
            let is_root = parents.is_null(r) || parents.value(r).iter().all(|b| *b == 0);
            if is_root && root.is_none_or(|x| start.value(r) < start.value(x)) {
                root = Some(r);
            }
        }
        let (root_service_name, root_trace_name) = match root {
            Some(r) => (
                if services.is_valid(r) {
                    services.value(r).to_owned()
                } else {
                    String::new()
                },
                names.value(r).to_owned(),
            ),
            None => ("<root span not yet received>".to_owned(), String::new()),
        };
        let mut rows = m.matched_rows.clone();
        rows.sort_by_key(|r| std::cmp::Reverse(start.value(*r)));
        let matched = rows.len() as u32;
        let mut hits = Vec::new();
        for &r in rows.iter().take(params.spans_per_spanset) {
            let mut span_id = [0u8; 8];
            span_id.copy_from_slice(span_ids.value(r));
            hits.push(SpanHit {
                span_id,
                name: names.value(r).to_owned(),
                start_time_unix_nano: start.value(r).max(0) as u64,
                duration_nanos: (end.value(r) - start.value(r)).max(0) as u64,
                attributes: span_attributes(&reader, r, &shown)?,
            });
        }
        out.push(SearchTrace {
            trace_id: m.trace_id,
            root_service_name,
            root_trace_name,
            start_time_unix_nano: min_start.max(0) as u64,
            duration_ms: ((max_end - min_start).max(0) as u64) / 1_000_000,
            spans: hits,
            matched,
            service_stats: stats,
        });
    }
    out.sort_by(|a, b| {
        b.start_time_unix_nano
            .cmp(&a.start_time_unix_nano)
            .then(a.trace_id.cmp(&b.trace_id))
    });
    out.truncate(params.limit);
    Ok((out, inspected))
}

/// The fields Tempo shows with each matched span: what the filters read,
/// then what `select(...)` names, without the span name and durations
/// (already in the span) and trace-level intrinsics.
fn shown_fields(query: &signaldb_traceql::Query) -> Vec<signaldb_traceql::FieldRef> {
    use signaldb_traceql::{FieldRef, Intrinsic};
    let mut out = signaldb_traceql::referenced_fields(query);
    for f in signaldb_traceql::select_columns(query) {
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out.retain(|f| match f {
        // The ids are the span's and trace's own.
        FieldRef::Intrinsic(i) => {
            !i.is_trace_level()
                && !matches!(
                    i,
                    Intrinsic::Name | Intrinsic::Duration | Intrinsic::TraceId | Intrinsic::SpanId
                )
        }
        FieldRef::Attribute(_) => true,
    });
    out
}

/// The values of `fields` for the span in `row`, as Tempo renders them
/// (status and kind as their keywords); missing values are left out.
fn span_attributes(
    reader: &signaldb_traceql::FieldReader<'_>,
    row: usize,
    fields: &[signaldb_traceql::FieldRef],
) -> Result<Vec<KeyValue>, QueryError> {
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        let value = reader
            .value(row, f)
            .map_err(|e| QueryError::BadRequest(e.to_string()))?;
        if let Some(value) = any_value(&value) {
            out.push(KeyValue {
                key: f.key().to_owned(),
                value: Some(value),
                ..Default::default()
            });
        }
    }
    Ok(out)
}

fn any_value(v: &signaldb_traceql::Value<'_>) -> Option<opentelemetry_proto::tonic::common::v1::AnyValue> {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, any_value::Value as V};
    use signaldb_traceql::Value;
    let value = match v {
        Value::Str(s) => V::StringValue(s.to_string()),
        Value::Int(i) => V::IntValue(*i),
        Value::Float(x) => V::DoubleValue(*x),
        Value::Bool(b) => V::BoolValue(*b),
        Value::Status(_) | Value::Kind(_) => V::StringValue(v.keyword()?.to_owned()),
        Value::Array(items) => V::ArrayValue(ArrayValue {
            values: items.iter().filter_map(any_value).collect(),
        }),
        Value::Nil | Value::Duration(_) | Value::Unsupported => return None,
    };
    Some(AnyValue { value: Some(value) })
}

fn strings<'a>(b: &'a RecordBatch, n: &str) -> Result<&'a StringArray, QueryError> {
    b.column_by_name(n)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| QueryError::BadRequest(format!("column {n} missing or not a string")))
}

fn ints<'a>(b: &'a RecordBatch, n: &str) -> Result<&'a Int32Array, QueryError> {
    b.column_by_name(n)
        .and_then(|c| c.as_any().downcast_ref::<Int32Array>())
        .ok_or_else(|| QueryError::BadRequest(format!("column {n} missing or not int32")))
}

/// Where a tag lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TagScope {
    Resource,
    Span,
}

/// Attribute names by scope.
pub fn tag_names(spans: &RecordBatch) -> Result<BTreeMap<TagScope, BTreeSet<String>>, QueryError> {
    let mut out: BTreeMap<TagScope, BTreeSet<String>> = BTreeMap::new();
    for (scope, column) in [
        (TagScope::Resource, columns::RESOURCE_ATTRIBUTES),
        (TagScope::Span, columns::ATTRIBUTES),
    ] {
        let keys = attribute_keys(spans, column)?;
        out.entry(scope)
            .or_default()
            .extend(keys.iter().flatten().map(str::to_owned));
    }
    Ok(out)
}

fn attribute_keys(spans: &RecordBatch, column: &str) -> Result<StringArray, QueryError> {
    use arrow_array::{ListArray, StructArray};
    let list = spans
        .column_by_name(column)
        .and_then(|c| c.as_any().downcast_ref::<ListArray>())
        .ok_or_else(|| QueryError::BadRequest(format!("column {column} missing or not a list")))?;
    let values = list
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| QueryError::BadRequest(format!("column {column} is not a list of structs")))?;
    let keys = values
        .column_by_name(columns::attribute::KEY)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| QueryError::BadRequest(format!("column {column} has no string keys")))?;
    Ok(keys.clone())
}

/// Distinct values of an attribute (scope None = span or resource) as (type, value) pairs.
pub fn tag_values(
    spans: &RecordBatch,
    scope: Option<TagScope>,
    name: &str,
) -> Result<BTreeSet<(&'static str, String)>, QueryError> {
    use arrow_array::{BooleanArray, Float64Array, Int64Array, ListArray, StructArray, UInt8Array};
    use columns::{attribute as a, value_type as vt};
    let mut out = BTreeSet::new();
    let scopes: &[(TagScope, &str)] = &[
        (TagScope::Resource, columns::RESOURCE_ATTRIBUTES),
        (TagScope::Span, columns::ATTRIBUTES),
    ];
    for (s, column) in scopes {
        if scope.is_some_and(|x| x != *s) {
            continue;
        }
        let Some(list) = spans
            .column_by_name(column)
            .and_then(|c| c.as_any().downcast_ref::<ListArray>())
        else {
            continue;
        };
        let Some(values) = list.values().as_any().downcast_ref::<StructArray>() else {
            continue;
        };
        let get = |n: &str| values.column_by_name(n);
        let (Some(keys), Some(types)) = (
            get(a::KEY).and_then(|c| c.as_any().downcast_ref::<StringArray>()),
            get(a::TYPE).and_then(|c| c.as_any().downcast_ref::<UInt8Array>()),
        ) else {
            continue;
        };
        let strs = get(a::STR).and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let ints = get(a::INT).and_then(|c| c.as_any().downcast_ref::<Int64Array>());
        let dbls = get(a::DOUBLE).and_then(|c| c.as_any().downcast_ref::<Float64Array>());
        let bools = get(a::BOOL).and_then(|c| c.as_any().downcast_ref::<BooleanArray>());
        for i in 0..keys.len() {
            if keys.value(i) != name {
                continue;
            }
            match types.value(i) {
                vt::STRING => {
                    if let Some(v) = strs.filter(|v| v.is_valid(i)) {
                        out.insert(("string", v.value(i).to_owned()));
                    }
                }
                vt::INT => {
                    if let Some(v) = ints.filter(|v| v.is_valid(i)) {
                        out.insert(("int", v.value(i).to_string()));
                    }
                }
                vt::DOUBLE => {
                    if let Some(v) = dbls.filter(|v| v.is_valid(i)) {
                        out.insert(("float", v.value(i).to_string()));
                    }
                }
                vt::BOOL => {
                    if let Some(v) = bools.filter(|v| v.is_valid(i)) {
                        out.insert(("bool", v.value(i).to_string()));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Distinct values of an intrinsic (`name`, `status`, `kind`, `statusMessage`).
pub fn intrinsic_values(spans: &RecordBatch, name: &str) -> Result<BTreeSet<(&'static str, String)>, QueryError> {
    let mut out = BTreeSet::new();
    match name {
        "name" | "statusMessage" => {
            let col = if name == "name" {
                columns::NAME
            } else {
                columns::STATUS_MESSAGE
            };
            let a = strings(spans, col)?;
            out.extend(
                (0..a.len())
                    .filter(|i| a.is_valid(*i) && !a.value(*i).is_empty())
                    .map(|i| ("string", a.value(i).to_owned())),
            );
        }
        "status" => {
            let a = ints(spans, columns::STATUS_CODE)?;
            for i in 0..a.len() {
                let v = match a.value(i) {
                    1 => "ok",
                    2 => "error",
                    _ => "unset",
                };
                out.insert(("keyword", v.to_owned()));
            }
        }
        "kind" => {
            let a = ints(spans, columns::KIND)?;
            for i in 0..a.len() {
                let v = match a.value(i) {
                    1 => "internal",
                    2 => "server",
                    3 => "client",
                    4 => "producer",
                    5 => "consumer",
                    _ => "unspecified",
                };
                out.insert(("keyword", v.to_owned()));
            }
        }
        other => {
            return Err(QueryError::BadRequest(format!(
                "intrinsic {other:?} has no listed values"
            )));
        }
    }
    Ok(out)
}
