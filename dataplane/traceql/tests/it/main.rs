//! Query results over a fixed data set built through the span schema's
//! OTLP -> Arrow conversion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod data;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::compute::{cast, take_record_batch};
use arrow_array::UInt32Array;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use signaldb_schema::columns;
use signaldb_traceql::{
    AttributeRef, AttributeScope, EvalError, FieldReader, FieldRef, Intrinsic, Query, TraceMatch, Value, evaluate,
    from_tags, select_columns,
};

use data::{GRPC, JSON, LABELS, batch, hex, unhex};

fn label(trace_id: &[u8; 16]) -> &'static str {
    let id = hex(trace_id);
    LABELS
        .iter()
        .find(|(hex_id, _)| *hex_id == id)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("unknown trace {id}"))
}

fn names(batch: &RecordBatch, rows: &[usize]) -> Vec<String> {
    let names = batch
        .column_by_name(columns::NAME)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let mut out: Vec<String> = rows.iter().map(|&r| names.value(r).to_owned()).collect();
    out.sort();
    out
}

/// (trace label, sorted names of the matched spans) per matched trace.
fn summarize(batch: &RecordBatch, matches: &[TraceMatch]) -> Vec<(String, Vec<String>)> {
    matches
        .iter()
        .map(|m| (label(&m.trace_id).to_owned(), names(batch, &m.matched_rows)))
        .collect()
}

fn run_on(batch: &RecordBatch, query: &Query) -> Vec<(String, Vec<String>)> {
    let matches = evaluate(query, batch).unwrap_or_else(|e| panic!("{query}: {e}"));
    summarize(batch, &matches)
}

fn expected(spec: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    spec.iter()
        .map(|(l, names)| {
            let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            names.sort();
            ((*l).to_owned(), names)
        })
        .collect()
}

const GRPC_ALL: &[&str] = &["db.query", "cache.get", "GET http://upstream.test/x", "GET /api/users"];
const HTTP_ALL: &[&str] = &["payment.charge", "POST /checkout"];
const JSON_ALL: &[&str] = &["consume orders", "process order"];
const MULTI_ALL: &[&str] = &["GET /home", "render", "SELECT users"];
const ORPHAN_ALL: &[&str] = &["orphan.a", "orphan.b"];

/// Every query of the table, with the traces and spans it must match.
#[allow(clippy::type_complexity)]
fn cases() -> Vec<(&'static str, Vec<(&'static str, &'static [&'static str])>)> {
    vec![
        // All spans.
        (
            "{}",
            vec![
                ("json", JSON_ALL),
                ("http", HTTP_ALL),
                ("grpc", GRPC_ALL),
                ("multi", MULTI_ALL),
                ("orphan", ORPHAN_ALL),
            ],
        ),
        (
            "{ true }",
            vec![
                ("json", JSON_ALL),
                ("http", HTTP_ALL),
                ("grpc", GRPC_ALL),
                ("multi", MULTI_ALL),
                ("orphan", ORPHAN_ALL),
            ],
        ),
        ("{ false }", vec![]),
        // Golden queries (what Tempo matched on the same traces).
        (
            "{ resource.service.name = \"golden-grpc-svc\" }",
            vec![("grpc", GRPC_ALL)],
        ),
        (
            "{ resource.service.name = \"golden-json-svc\" }",
            vec![("json", JSON_ALL)],
        ),
        ("{ resource.service.name = \"nope\" }", vec![]),
        (
            "{ status = error }",
            vec![
                ("json", &["process order"]),
                ("grpc", &["db.query"]),
                ("orphan", &["orphan.a"]),
            ],
        ),
        // Scoped intrinsics: ids as lowercase hex, event names and link
        // trace ids matching when one of the span's does.
        ("{ event:name = \"exception\" }", vec![("grpc", &["db.query"])]),
        (
            "{ event:name =~ \"request.*|checkout.*\" }",
            vec![("http", &["POST /checkout"]), ("grpc", &["GET /api/users"])],
        ),
        (
            "{ event:name != \"exception\" }",
            vec![("http", &["POST /checkout"]), ("grpc", &["GET /api/users"])],
        ),
        (
            "{ link:traceID = \"0af7651916cd43dd8448eb211c80319c\" }",
            vec![("grpc", &["db.query"])],
        ),
        (
            "{ trace:id = \"0af7651916cd43dd8448eb211c80319c\" }",
            vec![("http", HTTP_ALL)],
        ),
        ("{ span:id = \"b7ad6b7169203331\" }", vec![("grpc", &["cache.get"])]),
        ("{ span:id = \"B7AD6B7169203331\" }", vec![]),
        (
            "{ span.http.response.status_code >= 200 && kind = server }",
            vec![("http", &["POST /checkout"]), ("grpc", &["GET /api/users"])],
        ),
        (
            "{ name = \"db.query\" } | select(span.db.system, span.db.statement)",
            vec![("grpc", &["db.query"])],
        ),
        (
            "{ duration > 400ms }",
            vec![
                ("grpc", &["GET http://upstream.test/x", "GET /api/users"]),
                ("orphan", &["orphan.b"]),
            ],
        ),
        // Intrinsics.
        ("{ span:name = \"cache.get\" }", vec![("grpc", &["cache.get"])]),
        ("{ statusMessage = \"query timed out\" }", vec![("grpc", &["db.query"])]),
        (
            "{ span:statusMessage =~ \"b.*\" }",
            vec![("json", &["process order"]), ("orphan", &["orphan.a"])],
        ),
        (
            "{ status = ok }",
            vec![("http", &["POST /checkout"]), ("grpc", &["GET http://upstream.test/x"])],
        ),
        (
            "{ span:status = unset && kind = server }",
            vec![("grpc", &["GET /api/users"]), ("multi", &["GET /home"])],
        ),
        ("{ kind = consumer }", vec![("json", &["consume orders"])]),
        (
            "{ kind = producer || span:kind = consumer }",
            vec![("json", &["consume orders"]), ("http", &["payment.charge"])],
        ),
        (
            "{ kind = client && status = error }",
            vec![("grpc", &["db.query"]), ("orphan", &["orphan.a"])],
        ),
        // Durations with units.
        ("{ duration = 19ms }", vec![("json", &["process order"])]),
        ("{ span:duration = 19000us }", vec![("json", &["process order"])]),
        ("{ duration = 19000µs }", vec![("json", &["process order"])]),
        ("{ duration = 19000000ns }", vec![("json", &["process order"])]),
        ("{ duration = 19000000 }", vec![("json", &["process order"])]),
        (
            "{ duration < 0.02s }",
            vec![("json", &["process order"]), ("orphan", &["orphan.a"])],
        ),
        ("{ duration >= 1.5s }", vec![("orphan", &["orphan.b"])]),
        ("{ duration >= 1m || duration > 1h }", vec![]),
        // Trace-level intrinsics.
        ("{ rootName = \"GET /api/users\" }", vec![("grpc", GRPC_ALL)]),
        (
            "{ trace:rootName = \"GET /home\" && name = \"render\" }",
            vec![("multi", &["render"])],
        ),
        ("{ rootName = nil }", vec![("orphan", ORPHAN_ALL)]),
        ("{ rootServiceName = nil }", vec![("orphan", ORPHAN_ALL)]),
        (
            "{ rootServiceName = \"frontend-svc\" && resource.service.name = \"backend-svc\" }",
            vec![("multi", &["SELECT users"])],
        ),
        (
            "{ trace:rootService =~ \"golden-(http|json)-svc\" && kind = internal }",
            vec![("json", &["process order"])],
        ),
        (
            "{ traceDuration > 500ms }",
            vec![("grpc", GRPC_ALL), ("orphan", ORPHAN_ALL)],
        ),
        (
            "{ trace:duration <= 100ms }",
            vec![("json", JSON_ALL), ("http", HTTP_ALL)],
        ),
        ("{ trace:duration = 1s }", vec![("grpc", GRPC_ALL)]),
        (
            "{ trace:duration = 2010ms && name = \"orphan.a\" }",
            vec![("orphan", &["orphan.a"])],
        ),
        // Attributes of every type.
        ("{ span.db.rows = 0 }", vec![("grpc", &["db.query"])]),
        ("{ span.db.rows = 5.0 }", vec![("multi", &["SELECT users"])]),
        ("{ span.amount = 42.5 }", vec![("http", &["payment.charge"])]),
        ("{ span.amount > 42 }", vec![("http", &["payment.charge"])]),
        ("{ span.cache.ratio < 0.5 }", vec![("grpc", &["cache.get"])]),
        ("{ span.cache.hit = false }", vec![("grpc", &["cache.get"])]),
        ("{ span.cache.hit != true }", vec![("grpc", &["cache.get"])]),
        ("{ .cache.hit }", vec![("orphan", &["orphan.b"])]),
        (
            "{ !.cache.hit && span.cache.hit != nil }",
            vec![("grpc", &["cache.get"])],
        ),
        ("{ span.flag || span.amount > 100 }", vec![("multi", &["render"])]),
        (
            "{ resource.deployment.environment = \"golden\" && kind = server }",
            vec![("http", &["POST /checkout"]), ("grpc", &["GET /api/users"])],
        ),
        (
            "{ span.\"attr with space\" = \"v\" }",
            vec![("http", &["payment.charge"])],
        ),
        // Arrays: any element / no element.
        ("{ span.cache.keys = \"b\" }", vec![("grpc", &["cache.get"])]),
        ("{ span.cache.sizes > 2 }", vec![("grpc", &["cache.get"])]),
        ("{ span.cache.sizes > 3 }", vec![]),
        ("{ span.cache.keys != \"a\" }", vec![]),
        ("{ span.cache.keys != \"z\" }", vec![("grpc", &["cache.get"])]),
        ("{ span.cache.keys =~ \"[ab]\" }", vec![("grpc", &["cache.get"])]),
        // Bytes and key-value lists: present, never equal.
        (
            "{ span.payload != nil && span.settings != nil }",
            vec![("multi", &["render"])],
        ),
        ("{ span.payload = \"x\" || span.payload != \"x\" }", vec![]),
        // Regular expressions are fully anchored.
        ("{ span.db.system =~ \"post\" }", vec![]),
        ("{ span.db.system =~ \"post.*\" }", vec![("grpc", &["db.query"])]),
        (
            "{ span.db.system =~ \"postgresql|mysql\" }",
            vec![("grpc", &["db.query"]), ("multi", &["SELECT users"])],
        ),
        (
            "{ resource.service.name = \"golden-json-svc\" && name !~ \"process.*\" }",
            vec![("json", &["consume orders"])],
        ),
        ("{ name =~ \"GET\" }", vec![]),
        (
            "{ name =~ \"GET.*\" }",
            vec![
                ("grpc", &["GET http://upstream.test/x", "GET /api/users"]),
                ("multi", &["GET /home"]),
            ],
        ),
        // nil.
        (
            "{ span.db.system != nil }",
            vec![("grpc", &["db.query"]), ("multi", &["SELECT users"])],
        ),
        (
            "{ span.http.route = nil && kind = server }",
            vec![("multi", &["GET /home"])],
        ),
        // `!=` never matches a missing attribute.
        (
            "{ span.db.system != \"postgresql\" }",
            vec![("multi", &["SELECT users"])],
        ),
        // Types: a string attribute never equals a number; strings order
        // lexicographically.
        ("{ span.http.status_code = 404 }", vec![]),
        ("{ span.http.status_code = \"404\" }", vec![("multi", &["GET /home"])]),
        ("{ span.http.status_code >= \"400\" }", vec![("multi", &["GET /home"])]),
        ("{ span.http.status_code >= 400 }", vec![("orphan", &["orphan.a"])]),
        (
            "{ span.http.status_code != 404 }",
            vec![("grpc", &["GET /api/users"]), ("orphan", &["orphan.a"])],
        ),
        // Unscoped attributes: the span's if it has one, else the resource's.
        ("{ .shadow = \"span-root\" }", vec![("multi", &["GET /home"])]),
        ("{ .shadow = \"resource-frontend\" }", vec![("multi", &["render"])]),
        ("{ .shadow = \"resource-backend\" }", vec![("multi", &["SELECT users"])]),
        (
            "{ resource.shadow = \"resource-frontend\" }",
            vec![("multi", &["GET /home", "render"])],
        ),
        ("{ span.shadow = \"resource-frontend\" }", vec![]),
        ("{ .service.name = \"golden-http-svc\" }", vec![("http", HTTP_ALL)]),
        (
            "{ .region = \"eu\" } && { .region = \"us\" }",
            vec![("multi", MULTI_ALL)],
        ),
        // Spanset operators.
        (
            "{ name = \"db.query\" } && { name = \"cache.get\" }",
            vec![("grpc", &["db.query", "cache.get"])],
        ),
        ("{ name = \"db.query\" } && { name = \"POST /checkout\" }", vec![]),
        (
            "{ name = \"db.query\" } || { name = \"POST /checkout\" }",
            vec![("http", &["POST /checkout"]), ("grpc", &["db.query"])],
        ),
        (
            "({ name = \"db.query\" } || { name = \"nothing\" }) && { kind = server }",
            vec![("grpc", &["db.query", "GET /api/users"])],
        ),
        // Negation.
        (
            "{ !(status = unset) && resource.service.name = \"golden-grpc-svc\" }",
            vec![("grpc", &["db.query", "GET http://upstream.test/x"])],
        ),
        // Pipelines.
        ("{ } | count() > 3", vec![("grpc", GRPC_ALL)]),
        (
            "{ resource.service.name =~ \"golden.*\" } | count() = 2",
            vec![("json", JSON_ALL), ("http", HTTP_ALL), ("orphan", ORPHAN_ALL)],
        ),
        (
            "{ status = error } | count() >= 1",
            vec![
                ("json", &["process order"]),
                ("grpc", &["db.query"]),
                ("orphan", &["orphan.a"]),
            ],
        ),
        (
            "{ kind = client } | count() > 1",
            vec![("grpc", &["db.query", "GET http://upstream.test/x"])],
        ),
        (
            "{ } | avg(duration) > 300ms",
            vec![("grpc", GRPC_ALL), ("orphan", ORPHAN_ALL)],
        ),
        (
            "{ } | max(duration) >= 1s",
            vec![("grpc", GRPC_ALL), ("orphan", ORPHAN_ALL)],
        ),
        (
            "{ } | min(span:duration) < 20ms",
            vec![("json", JSON_ALL), ("orphan", ORPHAN_ALL)],
        ),
        ("{ } | sum(span.db.rows) = 5", vec![("multi", MULTI_ALL)]),
        ("{ } | sum(span.db.rows) < 1", vec![("grpc", GRPC_ALL)]),
        (
            "{ resource.service.name = \"golden-grpc-svc\" } | { kind = client }",
            vec![("grpc", &["db.query", "GET http://upstream.test/x"])],
        ),
        (
            "{ resource.service.name = \"golden-grpc-svc\" } | { kind = client } | count() = 2 | select(span.peer.service)",
            vec![("grpc", &["db.query", "GET http://upstream.test/x"])],
        ),
        (
            "({ kind = client } | count() > 1) && { name = \"cache.get\" }",
            vec![("grpc", &["db.query", "cache.get", "GET http://upstream.test/x"])],
        ),
        ("({ kind = client } | count() > 1) && { name = \"render\" }", vec![]),
        // Comparing two fields.
        (
            "{ rootName = name }",
            vec![
                ("json", &["consume orders"]),
                ("http", &["POST /checkout"]),
                ("grpc", &["GET /api/users"]),
                ("multi", &["GET /home"]),
            ],
        ),
        (
            "{ traceDuration = duration && kind != server }",
            vec![("json", &["consume orders"])],
        ),
    ]
}

#[test]
fn query_results() {
    let batch = batch();
    let mut failures = Vec::new();
    for (text, want) in cases() {
        let query = Query::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let got = run_on(&batch, &query);
        let want = expected(&want);
        if got != want {
            failures.push(format!("{text}\n  got:  {got:?}\n  want: {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing queries:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn same_results_when_spans_arrive_one_resource_each() {
    // Tempo's golden gRPC trace arrived as one ResourceSpans per span.
    let split = signaldb_schema::traces::otlp_to_arrow(&data::otlp(true)).unwrap();
    let whole = batch();
    for (text, _) in cases() {
        let query = Query::parse(text).unwrap();
        assert_eq!(run_on(&split, &query), run_on(&whole, &query), "{text}");
    }
}

/// Casts column `name` of `batch` to `to`.
fn with_column(batch: &RecordBatch, name: &str, to: DataType) -> RecordBatch {
    let schema = batch.schema();
    let mut fields: Vec<Field> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if field.name() == name {
            let converted = cast(column, &to).unwrap();
            fields.push(Field::new(name, to.clone(), true));
            columns.push(converted);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

#[test]
fn other_physical_representations_give_the_same_results() {
    let original = batch();
    let large_list = |column: &str| {
        let DataType::List(item) = original.schema().field_with_name(column).unwrap().data_type().clone() else {
            panic!("{column} is not a list");
        };
        DataType::LargeList(item)
    };
    let mut converted = with_column(&original, columns::NAME, DataType::Utf8View);
    converted = with_column(
        &converted,
        columns::STATUS_MESSAGE,
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
    );
    converted = with_column(&converted, columns::TRACE_ID, DataType::Binary);
    converted = with_column(&converted, columns::PARENT_SPAN_ID, DataType::LargeBinary);
    converted = with_column(
        &converted,
        columns::START_TIME_UNIX_NANO,
        DataType::Timestamp(TimeUnit::Nanosecond, None),
    );
    converted = with_column(&converted, columns::ATTRIBUTES, large_list(columns::ATTRIBUTES));
    converted = with_column(
        &converted,
        columns::RESOURCE_ATTRIBUTES,
        large_list(columns::RESOURCE_ATTRIBUTES),
    );
    // Without the derived duration column, durations come from the times.
    let without_duration = {
        let index = converted.schema().index_of(columns::DURATION_NANO).unwrap();
        let mut c = converted.clone();
        c.remove_column(index);
        c
    };
    for (text, want) in cases() {
        let query = Query::parse(text).unwrap();
        let want = expected(&want);
        // Names are read through `names()`, which needs plain strings.
        let got = summarize(&original, &evaluate(&query, &converted).unwrap());
        assert_eq!(got, want, "{text}");
        let got = summarize(&original, &evaluate(&query, &without_duration).unwrap());
        assert_eq!(got, want, "{text} (no duration_nano)");
    }
}

#[test]
fn trace_match_rows_and_roots() {
    let batch = batch();
    let matches = evaluate(&Query::parse("{ status = error }").unwrap(), &batch).unwrap();
    let summary: Vec<_> = matches
        .iter()
        .map(|m| (label(&m.trace_id), m.rows.clone(), m.root_row, m.matched_rows.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("json", 0..2, Some(0), vec![1]),
            ("grpc", 4..8, Some(7), vec![4]),
            ("orphan", 11..13, None, vec![11]),
        ]
    );
    assert_eq!(matches[1].trace_id.to_vec(), unhex(GRPC));
}

#[test]
fn empty_and_invalid_batches() {
    let batch = batch();
    let query = Query::parse("{ }").unwrap();
    assert_eq!(evaluate(&query, &batch.slice(0, 0)).unwrap(), vec![]);

    // Rows of a trace must be contiguous.
    let shuffled = take_record_batch(&batch, &UInt32Array::from(vec![0, 2, 1])).unwrap();
    match evaluate(&query, &shuffled) {
        Err(EvalError::TraceNotContiguous { trace_id }) => assert_eq!(trace_id, JSON),
        other => panic!("{other:?}"),
    }

    // Missing columns are reported, but only those the query needs.
    let index = batch.schema().index_of(columns::STATUS_MESSAGE).unwrap();
    let mut without = batch.clone();
    without.remove_column(index);
    assert_eq!(evaluate(&query, &without).unwrap().len(), 5);
    match evaluate(&Query::parse("{ statusMessage = \"x\" }").unwrap(), &without) {
        Err(EvalError::MissingColumn { column }) => assert_eq!(column, columns::STATUS_MESSAGE),
        other => panic!("{other:?}"),
    }

    // Columns of the wrong type.
    let wrong = with_column(&batch, columns::KIND, DataType::Utf8);
    let err = evaluate(&Query::parse("{ kind = server }").unwrap(), &wrong).unwrap_err();
    assert!(matches!(err, EvalError::ColumnType { .. }), "{err}");
}

#[test]
fn selected_and_referenced_fields() {
    let query = Query::parse("{ name = \"db.query\" } | select(span.db.system, span.db.statement)").unwrap();
    let span = |n: &str| FieldRef::Attribute(AttributeRef::new(AttributeScope::Span, n));
    assert_eq!(select_columns(&query), vec![span("db.system"), span("db.statement")]);
    assert_eq!(query.referenced_fields(), vec![FieldRef::Intrinsic(Intrinsic::Name)]);

    // What Tempo returns with each span of `{ span.http.response.status_code >= 200 && kind = server }`.
    let batch = batch();
    let query = Query::parse("{ span.http.response.status_code >= 200 && kind = server }").unwrap();
    let reader = FieldReader::new(&batch);
    let mut returned = Vec::new();
    for m in evaluate(&query, &batch).unwrap() {
        for &row in &m.matched_rows {
            for field in query.referenced_fields() {
                let value = reader.value(row, &field).unwrap();
                let shown = match &value {
                    Value::Int(i) => i.to_string(),
                    other => other.keyword().unwrap_or("?").to_owned(),
                };
                returned.push(format!("{}={shown}", field.key()));
            }
        }
    }
    assert_eq!(
        returned,
        vec![
            "http.response.status_code=201",
            "kind=server",
            "http.response.status_code=200",
            "kind=server"
        ]
    );
}

#[test]
fn field_reader() {
    let batch = batch();
    let reader = FieldReader::new(&batch);
    let unscoped = |n: &str| FieldRef::Attribute(AttributeRef::new(AttributeScope::Unscoped, n));
    let i = FieldRef::Intrinsic;
    // Row 4: db.query (grpc), row 10: SELECT users (multi), row 11: orphan.a.
    assert_eq!(reader.value(4, &i(Intrinsic::Status)).unwrap(), Value::Status(2));
    assert_eq!(reader.value(4, &i(Intrinsic::Status)).unwrap().keyword(), Some("error"));
    assert_eq!(reader.value(4, &i(Intrinsic::Kind)).unwrap().keyword(), Some("client"));
    assert_eq!(
        reader.value(4, &i(Intrinsic::Duration)).unwrap(),
        Value::Duration(240 * data::MS as i64)
    );
    assert_eq!(
        reader.value(4, &i(Intrinsic::RootName)).unwrap(),
        Value::Str("GET /api/users".into())
    );
    assert_eq!(
        reader.value(4, &i(Intrinsic::RootServiceName)).unwrap(),
        Value::Str("golden-grpc-svc".into())
    );
    assert_eq!(
        reader.value(4, &i(Intrinsic::TraceDuration)).unwrap(),
        Value::Duration(1_000 * data::MS as i64)
    );
    assert_eq!(
        reader.value(4, &unscoped("db.system")).unwrap(),
        Value::Str("postgresql".into())
    );
    assert_eq!(
        reader.value(10, &unscoped("shadow")).unwrap(),
        Value::Str("resource-backend".into())
    );
    assert_eq!(
        reader.value(10, &i(Intrinsic::RootServiceName)).unwrap(),
        Value::Str("frontend-svc".into())
    );
    assert_eq!(reader.value(11, &i(Intrinsic::RootName)).unwrap(), Value::Nil);
    assert_eq!(reader.value(11, &unscoped("nope")).unwrap(), Value::Nil);
    assert_eq!(
        reader.value(5, &unscoped("cache.keys")).unwrap(),
        Value::Array(vec![Value::Str("a".into()), Value::Str("b".into())])
    );
    assert_eq!(reader.value(9, &unscoped("payload")).unwrap(), Value::Unsupported);
    assert!(matches!(
        reader.value(13, &i(Intrinsic::Name)),
        Err(EvalError::RowOutOfRange { row: 13, rows: 13 })
    ));
}

/// `(label)` of every trace `from_tags` matches.
fn tag_search(tags: &[(&str, &str)], min: Option<u64>, max: Option<u64>) -> Vec<String> {
    let tags: Vec<(String, String)> = tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let query = from_tags(&tags, min, max);
    let batch = batch();
    evaluate(&query, &batch)
        .unwrap()
        .iter()
        .map(|m| label(&m.trace_id).to_owned())
        .collect()
}

#[test]
fn legacy_tag_search() {
    let ms = data::MS;
    // Golden: tags=service.name=golden-grpc-svc (with and without minDuration=500ms).
    assert_eq!(tag_search(&[("service.name", "golden-grpc-svc")], None, None), ["grpc"]);
    assert_eq!(
        tag_search(&[("service.name", "golden-grpc-svc")], Some(500 * ms), None),
        ["grpc"]
    );
    assert_eq!(
        tag_search(&[("service.name", "golden-grpc-svc")], Some(1001 * ms), None),
        Vec::<String>::new()
    );
    // Golden: maxDuration=200ms.
    assert_eq!(tag_search(&[], None, Some(200 * ms)), ["json", "http"]);
    // Golden: tags=http.status_code=200 (an int attribute).
    assert_eq!(tag_search(&[("http.status_code", "200")], None, None), ["grpc"]);
    // http.status_code that is not a number: string comparison.
    assert_eq!(
        tag_search(&[("http.status_code", "404")], None, None),
        Vec::<String>::new()
    );
    assert_eq!(
        tag_search(&[("http.status_code", "4o4")], None, None),
        Vec::<String>::new()
    );
    // Dedicated columns match substrings.
    assert_eq!(
        tag_search(&[("service.name", "golden")], None, None),
        ["json", "http", "grpc", "orphan"]
    );
    assert_eq!(tag_search(&[("name", "GET")], None, None), ["grpc", "multi"]);
    assert_eq!(tag_search(&[("k8s.namespace.name", "golden")], None, None), ["json"]);
    assert_eq!(tag_search(&[("root.service.name", "front")], None, None), ["multi"]);
    assert_eq!(tag_search(&[("root.name", "/checkout")], None, None), ["http"]);
    // status.code.
    assert_eq!(
        tag_search(&[("status.code", "error"), ("service.name", "golden-json")], None, None),
        ["json"]
    );
    assert_eq!(tag_search(&[("status.code", "ok")], None, None), ["http", "grpc"]);
    // Other keys: exact string values of span or resource attributes.
    assert_eq!(tag_search(&[("db.system", "postgresql")], None, None), ["grpc"]);
    assert_eq!(
        tag_search(&[("db.system", "postgres")], None, None),
        Vec::<String>::new()
    );
    assert_eq!(
        tag_search(&[("deployment.environment", "golden")], None, None),
        ["http", "grpc"]
    );
    assert_eq!(tag_search(&[("batch.size", "17")], None, None), Vec::<String>::new());
    // Several tags may be satisfied by different spans of the trace.
    assert_eq!(
        tag_search(&[("region", "eu"), ("db.system", "mysql")], None, None),
        ["multi"]
    );
    assert_eq!(
        tag_search(
            &[("db.system", "postgresql"), ("messaging.system", "kafka")],
            None,
            None
        ),
        Vec::<String>::new()
    );
    // Durations bound the trace duration, inclusively.
    assert_eq!(tag_search(&[], Some(100 * ms), Some(300 * ms)), ["http", "multi"]);
    assert_eq!(
        tag_search(&[], Some(0), Some(0)),
        ["json", "http", "grpc", "multi", "orphan"]
    );
}

/// Queries built to exhaust the stack are refused with a syntax error that
/// says which bound they crossed, however deep they go.
#[test]
fn hostile_nesting_is_refused_not_overflowed() {
    let negations = format!("{{{}true}}", "!".repeat(50_000));
    let err = Query::parse(&negations).unwrap_err().to_string();
    assert!(err.contains("more than 64 levels deep"), "{err}");

    // 30,000 pairs: inside the length bound, so the depth bound answers.
    let parens = format!("{{{}true{}}}", "(".repeat(30_000), ")".repeat(30_000));
    let err = Query::parse(&parens).unwrap_err().to_string();
    assert!(err.contains("more than 64 levels deep"), "{err}");

    let spansets = format!("{}{{}}{}", "(".repeat(30_000), ")".repeat(30_000));
    let err = Query::parse(&spansets).unwrap_err().to_string();
    assert!(err.contains("more than 64 levels deep"), "{err}");

    let chain = vec!["span.a = 1"; 2_000].join(" && ");
    let err = Query::parse(&format!("{{{chain}}}")).unwrap_err().to_string();
    assert!(err.contains("more than 512 operators"), "{err}");

    let spanset_chain = vec!["{}"; 5_000].join(" || ");
    let err = Query::parse(&spanset_chain).unwrap_err().to_string();
    assert!(err.contains("more than 512 operators"), "{err}");

    let long = format!("{{span.a = \"{}\"}}", "x".repeat(signaldb_traceql::MAX_QUERY_BYTES));
    let err = Query::parse(&long).unwrap_err().to_string();
    assert!(err.contains("at most 65536 are accepted"), "{err}");
}

/// Queries just inside the bounds still parse and evaluate.
#[test]
fn nesting_up_to_the_bound_is_accepted() {
    let depth = signaldb_traceql::MAX_NESTING;
    let nested = format!("{{{}span.a = 1{}}}", "(".repeat(depth), ")".repeat(depth));
    assert!(Query::parse(&nested).is_ok());
    let negations = format!("{{{}true}}", "!".repeat(depth));
    assert!(Query::parse(&negations).is_ok());
    let chain = vec!["span.a = 1"; signaldb_traceql::MAX_OPERATORS + 1].join(" && ");
    assert!(Query::parse(&format!("{{{chain}}}")).is_ok());
}

/// A batch read without the attribute lists (as searches read it when
/// every attribute they touch has a column of its own) answers conditions
/// on a span's dedicated attributes and on the resource's `service.name`
/// from those columns, with the same matches, and shows integers as
/// integers.
#[test]
fn attributes_with_their_own_columns_answer_without_the_lists() {
    let batch = batch();
    let keep: Vec<usize> = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != columns::ATTRIBUTES && f.name() != columns::RESOURCE_ATTRIBUTES)
        .map(|(i, _)| i)
        .collect();
    let without = batch.project(&keep).unwrap();
    for q in [
        "{ span.http.response.status_code >= 200 && kind = server }",
        "{ span.http.response.status_code = 201 }",
        "{ resource.service.name = \"golden-grpc-svc\" }",
        "{ span.db.system = \"postgresql\" && resource.service.name =~ \"golden-.*\" }",
        "{ span.http.request.method = \"GET\" } && { span.db.system != \"redis\" }",
    ] {
        let query = Query::parse(q).unwrap();
        let rows = |b: &RecordBatch| -> Vec<(Vec<u8>, Vec<usize>)> {
            evaluate(&query, b)
                .unwrap()
                .into_iter()
                .map(|m| (m.trace_id.to_vec(), m.matched_rows))
                .collect()
        };
        let expected = rows(&batch);
        assert!(!expected.is_empty(), "{q} matches");
        assert_eq!(rows(&without), expected, "{q}");
    }
    let (full, own) = (FieldReader::new(&batch), FieldReader::new(&without));
    let status = FieldRef::Attribute(AttributeRef::new(AttributeScope::Span, "http.response.status_code"));
    let service = FieldRef::Attribute(AttributeRef::new(AttributeScope::Resource, "service.name"));
    for row in 0..batch.num_rows() {
        assert_eq!(
            own.value(row, &status).unwrap(),
            full.value(row, &status).unwrap(),
            "row {row}"
        );
        assert_eq!(
            own.value(row, &service).unwrap(),
            full.value(row, &service).unwrap(),
            "row {row}"
        );
    }
    // Attributes without a column of their own need the lists.
    let err = evaluate(&Query::parse("{ span.shadow = \"x\" }").unwrap(), &without).unwrap_err();
    assert!(matches!(err, EvalError::MissingColumn { .. }), "{err}");
}
