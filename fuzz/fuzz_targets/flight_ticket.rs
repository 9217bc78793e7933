//! Any bytes as what a querier or writer receives over Flight: the first
//! byte picks the message, the rest is its body.
//!
//! - 0: a querier's `DoGet` [`QueryTicket`] (trace by id, or SQL);
//! - 1, 2, 3: the body of a querier's `search.v1`, `tag_names.v1` or
//!   `tag_values.v1` action (a [`QueryPlan`] or [`ConditionPlan`] inside);
//! - 4: a writer's `DoGet` [`BufferTicket`];
//! - 5: TraceQL text, planned as the router plans it and sent as a
//!   `search.v1` body, so real queries reach the querier's side too.
//!
//! Each is decoded and checked as the querier (or writer) does before it
//! runs anything; a plan that passes is then run over a few fixed traces.
//! Must hold: no panic; a plan the querier accepts re-plans to the same
//! plan; the search prefilter never loses a trace the query matches, and
//! when it claims to be exact it finds exactly those; a condition selects
//! per span and survives the trip to a writer (`ConditionPlan::new`).
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use arrow_array::{Array, BooleanArray, RecordBatch};
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use signaldb::proto::{BufferTicket, QueryKind, QueryTicket};
use signaldb::querier::wire;
use signaldb_config::TenantId;
use signaldb_traceql::{ConditionPlan, FieldExpr, Query, QueryPlan};

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.to_owned())
}

fn resource(service: Option<&str>, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: service.map(|sv| kv("service.name", s(sv))).into_iter().collect(),
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "fuzz".to_owned(),
                version: "1".to_owned(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    name: &str,
    kind: span::SpanKind,
    status: i32,
    start_ms: u64,
    dur_ms: u64,
    attributes: Vec<KeyValue>,
) -> Span {
    let start = 1_700_000_000_000_000_000 + start_ms * 1_000_000;
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.to_owned(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + dur_ms * 1_000_000,
        attributes,
        status: Some(Status {
            code: status,
            message: if status == 2 { "boom".to_owned() } else { String::new() },
        }),
        ..Default::default()
    }
}

/// Three traces, each trace's rows together, with the fields queries
/// usually read: names, kinds, statuses, durations, and string, int, float,
/// bool and array attributes on spans and resources.
fn spans() -> &'static RecordBatch {
    static SPANS: OnceLock<RecordBatch> = OnceLock::new();
    SPANS.get_or_init(|| {
        use span::SpanKind::{Client, Internal, Server};
        let int = any_value::Value::IntValue;
        let rs = vec![
            resource(
                Some("frontend"),
                vec![span(
                    1,
                    1,
                    None,
                    "GET /api/users",
                    Server,
                    1,
                    0,
                    120,
                    vec![kv("http.method", s("GET")), kv("http.status_code", int(200))],
                )],
            ),
            resource(
                Some("db"),
                vec![span(
                    1,
                    2,
                    Some(1),
                    "db.query",
                    Client,
                    0,
                    10,
                    5,
                    vec![
                        kv("db.system", s("postgres")),
                        kv("ratio", any_value::Value::DoubleValue(0.5)),
                    ],
                )],
            ),
            resource(
                Some("checkout"),
                vec![
                    span(
                        2,
                        3,
                        None,
                        "POST /checkout",
                        Server,
                        2,
                        50,
                        900,
                        vec![
                            kv("http.status_code", int(500)),
                            kv("retry", any_value::Value::BoolValue(true)),
                            kv(
                                "tags",
                                any_value::Value::ArrayValue(ArrayValue {
                                    values: vec![AnyValue { value: Some(s("a")) }, AnyValue { value: Some(int(7)) }],
                                }),
                            ),
                        ],
                    ),
                    span(
                        2,
                        4,
                        Some(3),
                        "charge",
                        Internal,
                        2,
                        60,
                        800,
                        vec![kv("amount", int(42))],
                    ),
                ],
            ),
            resource(None, vec![span(3, 5, None, "", Internal, 0, 70, 0, Vec::new())]),
        ];
        signaldb_schema::traces::otlp_to_arrow(&rs).expect("the fixed spans convert")
    })
}

/// Rows a mask selects (unknown is not a match, as the writer reads it).
fn selected(mask: &BooleanArray) -> Vec<bool> {
    (0..mask.len()).map(|i| mask.is_valid(i) && mask.value(i)).collect()
}

/// A checked condition: evaluated per span, and unchanged by the trip to a
/// writer inside a buffer ticket.
fn check_condition(condition: &FieldExpr) -> Vec<bool> {
    let back = ConditionPlan::new(Some(condition))
        .condition()
        .expect("a checked condition plans and checks again");
    let back = back.expect("a condition stays a condition");
    assert_eq!(
        ConditionPlan::new(Some(&back)).encode_to_vec(),
        ConditionPlan::new(Some(condition)).encode_to_vec(),
        "a condition re-plans to the same plan"
    );
    let batch = spans();
    match signaldb_traceql::span_mask(condition, batch) {
        Ok(mask) => {
            assert_eq!(mask.len(), batch.num_rows(), "one answer per span");
            selected(&mask)
        }
        Err(_) => Vec::new(),
    }
}

/// What the querier does with a plan it accepted, and the search's
/// prefilter, over the fixed traces.
fn check_query(query: &Query) {
    let plan = query.to_plan();
    let again = Query::from_plan(&plan).expect("a query's own plan is accepted");
    assert_eq!(
        again.to_plan().encode_to_vec(),
        plan.encode_to_vec(),
        "re-planning is stable"
    );
    let _ = query.to_string();
    let _ = signaldb_query::condition_columns(signaldb_traceql::span_prefilter(query).as_ref());
    let batch = spans();
    let Ok(matches) = signaldb_traceql::evaluate(query, batch) else {
        return;
    };
    let mut matched = BTreeSet::new();
    for m in &matches {
        assert!(!m.matched_rows.is_empty(), "a match selects spans");
        assert!(m.matched_rows.windows(2).all(|w| w[0] < w[1]), "matched rows ascend");
        assert!(
            m.matched_rows.iter().all(|r| m.rows.contains(r)),
            "matched rows are the trace's"
        );
        matched.insert(m.trace_id);
    }
    let ids = batch
        .column_by_name(signaldb_schema::columns::TRACE_ID)
        .and_then(|c| c.as_any().downcast_ref::<arrow_array::FixedSizeBinaryArray>())
        .expect("trace ids");
    let passing: BTreeSet<[u8; 16]> = match signaldb_traceql::span_prefilter(query) {
        Some(condition) => {
            let rows = check_condition(&condition);
            if rows.is_empty() {
                return;
            }
            (0..batch.num_rows())
                .filter(|&r| rows[r])
                .filter_map(|r| <[u8; 16]>::try_from(ids.value(r)).ok())
                .collect()
        }
        None => (0..batch.num_rows())
            .filter_map(|r| <[u8; 16]>::try_from(ids.value(r)).ok())
            .collect(),
    };
    assert!(
        matched.is_subset(&passing),
        "the prefilter of {query} drops matching traces: matched {matched:?}, prefilter passes {passing:?}"
    );
    if signaldb_traceql::prefilter_is_exact(query) {
        assert_eq!(matched, passing, "the exact prefilter of {query} is the query");
    }
}

/// `querier::tenant`.
fn tenant_ok(tenant: &str) -> bool {
    TenantId::new(tenant).is_ok()
}

/// What the querier does with a tag lookup's condition: checked
/// (`querier::condition_of`), then the spans it selects.
fn condition_of(plan: Option<&ConditionPlan>) -> Option<RecordBatch> {
    let condition = match plan {
        Some(plan) => plan.condition().ok()?,
        None => None,
    };
    let batch = spans();
    let Some(condition) = condition else {
        return Some(batch.clone());
    };
    let rows = check_condition(&condition);
    if rows.is_empty() {
        return None;
    }
    let mask: BooleanArray = rows.into_iter().map(Some).collect();
    Some(arrow::compute::filter_record_batch(batch, &mask).expect("a mask of the batch's length filters it"))
}

fn search(body: &[u8]) {
    let Ok(request) = wire::SearchRequest::decode(body) else {
        return;
    };
    if !tenant_ok(&request.tenant) {
        return;
    }
    let Some(plan) = request.plan else {
        return;
    };
    if let Ok(query) = Query::from_plan(&plan) {
        check_query(&query);
    }
}

fn tag_names(body: &[u8]) {
    let Ok(request) = wire::TagNamesRequest::decode(body) else {
        return;
    };
    if !tenant_ok(&request.tenant) {
        return;
    }
    if let Some(spans) = condition_of(request.condition.as_ref()) {
        let _ = signaldb_query::tag_names(&spans);
    }
}

fn tag_values(body: &[u8]) {
    let Ok(request) = wire::TagValuesRequest::decode(body) else {
        return;
    };
    if !tenant_ok(&request.tenant) {
        return;
    }
    let Some(spans) = condition_of(request.condition.as_ref()) else {
        return;
    };
    let Ok(scope) = wire::TagScope::try_from(request.scope) else {
        return;
    };
    use signaldb_query::TagScope as Scope;
    let _ = match scope {
        wire::TagScope::Intrinsic => signaldb_query::intrinsic_values(&spans, &request.name).map(drop),
        wire::TagScope::Resource => signaldb_query::tag_values(&spans, Some(Scope::Resource), &request.name).map(drop),
        wire::TagScope::Span => signaldb_query::tag_values(&spans, Some(Scope::Span), &request.name).map(drop),
        wire::TagScope::Any => signaldb_query::tag_values(&spans, None, &request.name).map(drop),
    };
}

fn query_ticket(body: &[u8]) {
    let Ok(ticket) = QueryTicket::decode(body) else {
        return;
    };
    if !tenant_ok(&ticket.tenant) {
        return;
    }
    match ticket.kind {
        Some(QueryKind::TraceById(q)) => {
            let _: Option<[u8; 16]> = q.trace_id.as_slice().try_into().ok();
        }
        // Planned by DataFusion against the tenant's table; not run here.
        Some(QueryKind::Sql(_)) | None => {}
    }
}

/// `writer::select::Selection::from_ticket`'s checks.
fn buffer_ticket(body: &[u8]) {
    let Ok(ticket) = BufferTicket::decode(body) else {
        return;
    };
    if !tenant_ok(&ticket.tenant) {
        return;
    }
    let single = (!ticket.trace_id.is_empty()).then_some(&ticket.trace_id);
    if single
        .into_iter()
        .chain(&ticket.trace_ids)
        .any(|id| <[u8; 16]>::try_from(id.as_slice()).is_err())
    {
        return;
    }
    if let Some(plan) = &ticket.condition
        && let Ok(Some(condition)) = plan.condition()
    {
        check_condition(&condition);
    }
}

/// The router's side: TraceQL text planned into a `search.v1` body, which
/// the querier must accept as the same query.
fn traceql(text: &[u8]) {
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(query) = signaldb_traceql::parse(text) else {
        return;
    };
    let body = wire::SearchRequest {
        tenant: "single-tenant".to_owned(),
        plan: Some(query.to_plan()),
        limit: 20,
        spans_per_spanset: 3,
        range: None,
    }
    .encode_to_vec();
    let decoded = wire::SearchRequest::decode(&body[..]).expect("a body we encoded decodes");
    let plan: QueryPlan = decoded.plan.expect("the plan we sent");
    let received = Query::from_plan(&plan).expect("a querier accepts what the router planned");
    assert_eq!(
        received.to_string(),
        query.to_string(),
        "the querier runs the query the router parsed"
    );
    check_query(&received);
    write_seed(1, &body);
    if let Some(condition) = query.as_condition() {
        let tag_values = wire::TagValuesRequest {
            tenant: "single-tenant".to_owned(),
            scope: wire::TagScope::Any as i32,
            name: "service.name".to_owned(),
            range: None,
            condition: Some(ConditionPlan::new(Some(condition))),
        };
        write_seed(3, &tag_values.encode_to_vec());
    }
}

/// With `SIGNALDB_FUZZ_WRITE_SEEDS=<dir>`, the binary bodies the TraceQL
/// mode derives are written there with their selector byte: how the seeds
/// of the binary modes were made (see fuzz/README.md).
fn write_seed(selector: u8, body: &[u8]) {
    let Some(dir) = std::env::var_os("SIGNALDB_FUZZ_WRITE_SEEDS") else {
        return;
    };
    let mut data = vec![selector];
    data.extend_from_slice(body);
    let name = format!("{selector}-{:016x}", fnv(&data));
    std::fs::write(std::path::Path::new(&dir).join(name), data).expect("writing a seed");
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        0 => query_ticket(body),
        1 => search(body),
        2 => tag_names(body),
        3 => tag_values(body),
        4 => buffer_ticket(body),
        _ => traceql(body),
    }
});
