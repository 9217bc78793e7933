//! Searches over many stored files: what they return and what they read.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::Array;
use signaldb_query::{NoBuffers, QueryEngine, ReadStats, SearchParams, SearchTrace};

use crate::common::{Stored, random_ids};

const FILES: usize = 30;
const TRACES_PER_FILE: usize = 500;

async fn stored() -> (Stored, Vec<Vec<[u8; 16]>>) {
    let mut stored = Stored::new().await;
    let mut files = Vec::new();
    for f in 0..FILES {
        let ids = random_ids(f as u64 + 1_000, TRACES_PER_FILE);
        stored.add_file(&ids).await;
        files.push(ids);
    }
    (stored, files)
}

async fn search(engine: &QueryEngine, stored: &Stored, query: &str, limit: usize) -> Vec<SearchTrace> {
    let params = SearchParams {
        query: signaldb_traceql::Query::parse(query).unwrap(),
        limit,
        spans_per_spanset: 3,
    };
    let (found, _, _) = signaldb_query::search(engine, &stored.tenant, None, &params, &ReadStats::default())
        .await
        .unwrap();
    found
}

/// With `limit` matches in the newest file, a search reads that file and
/// no other, only its pages, and returns traces of it, newest first.
#[tokio::test]
async fn a_search_stops_reading_once_it_has_limit_traces() {
    let (stored, files) = stored().await;
    let engine = QueryEngine::new(
        Arc::clone(&stored.catalog) as _,
        Arc::clone(&stored.store) as _,
        Arc::new(NoBuffers),
    )
    .unwrap();
    // Load every file's index once (as earlier queries would have).
    engine.trace_by_id(&stored.tenant, files[0][0], None).await.unwrap();
    stored.store.take_files_read();
    stored.store.take_metadata_reads();

    let newest: HashSet<[u8; 16]> = files[FILES - 1].iter().copied().collect();
    let newest_path = format!("{}/traces/file-{FILES:04}.parquet", stored.tenant);
    for (query, limit) in [
        ("{ }", 20),
        ("{ span.attr.str5 = \"value-7\" }", 3),
        ("{ name = \"op-2\" }", 10),
    ] {
        let found = search(&engine, &stored, query, limit).await;
        assert_eq!(found.len(), limit, "{query}");
        assert!(
            found.iter().all(|t| newest.contains(&t.trace_id)),
            "{query}: every trace from the newest file"
        );
        assert!(
            found
                .windows(2)
                .all(|w| w[0].start_time_unix_nano >= w[1].start_time_unix_nano),
            "{query}: newest first"
        );
        assert_eq!(
            stored.store.take_files_read(),
            vec![newest_path.clone()],
            "{query}: one file of {FILES} read"
        );
        // Sizes come from the catalog, footers and page indexes from the
        // querier's indexes: only pages are read.
        assert_eq!(
            stored.store.take_metadata_reads(),
            (0, 0),
            "{query}: (HEAD requests, footer reads)"
        );
    }
    let found = search(&engine, &stored, "{ span.attr.str5 = \"value-7\" }", 3).await;
    assert!(found.iter().all(|t| {
        t.spans
            .iter()
            .all(|s| s.attributes.iter().any(|a| a.key == "attr.str5"))
    }));
}

/// Within a file, a search that stops at `limit` reads the rows it gets to,
/// not the whole row group: the Parquet reader filters a row group whole
/// before it yields a row, so the scan reads each file in windows of rows.
/// Over one file of two row groups, the first matches of a condition on
/// the attribute lists read a fraction of the bytes that reading every
/// match (`most_recent`) does, with the same trace shape.
#[tokio::test]
async fn a_search_stops_within_a_row_group() {
    let mut stored = Stored::new().await;
    let traces = signaldb_schema::traces::parquet::ROW_GROUP_ROWS * 2 / crate::common::SPANS_PER_TRACE;
    stored.add_file(&random_ids(7, traces)).await;
    let engine = QueryEngine::new(
        Arc::clone(&stored.catalog) as _,
        Arc::clone(&stored.store) as _,
        Arc::new(NoBuffers),
    )
    .unwrap();
    let read = |query: &str, limit: usize| {
        let params = SearchParams {
            query: signaldb_traceql::Query::parse(query).unwrap(),
            limit,
            spans_per_spanset: 3,
        };
        let (engine, tenant) = (&engine, &stored.tenant);
        async move {
            let stats = ReadStats::default();
            let (found, _, _) = signaldb_query::search(engine, tenant, None, &params, &stats)
                .await
                .unwrap();
            (found, stats.bytes())
        }
    };
    // Warm the file's index, so only pages are counted.
    read("{ span.attr.str5 = \"value-7\" }", 1).await;
    let (first, first_bytes) = read("{ span.attr.str5 = \"value-7\" }", 5).await;
    let (newest, every_bytes) = read("{ span.attr.str5 = \"value-7\" } with (most_recent=true)", 5).await;
    assert_eq!(first.len(), 5);
    assert_eq!(newest.len(), 5);
    assert!(
        first.iter().all(|t| t
            .spans
            .iter()
            .all(|s| s.attributes.iter().any(|a| a.key == "attr.str5"))),
        "the matched spans show the condition's attribute"
    );
    assert!(
        first_bytes * 4 < every_bytes,
        "the first 5 matches read {first_bytes} bytes, every match {every_bytes}"
    );
}

/// A condition on attributes with columns of their own (a span's
/// dedicated attributes, the resource's `service.name`) reads those
/// columns, not the attribute lists: the same traces and spans as a query
/// that needs the lists, each shown attribute with the type it was sent
/// with, from fewer bytes.
#[tokio::test]
async fn dedicated_attributes_are_read_from_their_own_columns() {
    let (stored, _) = stored().await;
    let engine = QueryEngine::new(
        Arc::clone(&stored.catalog) as _,
        Arc::clone(&stored.store) as _,
        Arc::new(NoBuffers),
    )
    .unwrap();
    let run = |query: &'static str| {
        let (engine, stored) = (&engine, &stored);
        async move {
            let params = SearchParams {
                query: signaldb_traceql::Query::parse(query).unwrap(),
                limit: 50,
                spans_per_spanset: 3,
            };
            let stats = ReadStats::default();
            let (found, _, _) = signaldb_query::search(engine, &stored.tenant, None, &params, &stats)
                .await
                .unwrap();
            (found, stats.bytes())
        }
    };
    let own = r#"{ resource.service.name = "svc-00" && span.http.response.status_code = 500 }"#;
    // The same matches; `attr.str5` has no column of its own.
    let lists =
        r#"{ resource.service.name = "svc-00" && span.http.response.status_code = 500 && span.attr.str5 != "none" }"#;
    // Every file's footer and index loaded once (as earlier queries would
    // have), so both searches read only the pages they decode.
    for q in [own, lists] {
        run(q).await;
    }
    let ((from_columns, column_bytes), (from_lists, list_bytes)) = (run(own).await, run(lists).await);
    assert_eq!(from_columns.len(), 50);
    let spans = |found: &[SearchTrace]| -> Vec<([u8; 16], Vec<[u8; 8]>)> {
        found
            .iter()
            .map(|t| (t.trace_id, t.spans.iter().map(|s| s.span_id).collect()))
            .collect()
    };
    assert_eq!(spans(&from_columns), spans(&from_lists));
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    for t in &from_columns {
        for s in &t.spans {
            let value = |key: &str| {
                s.attributes
                    .iter()
                    .find(|a| a.key == key)
                    .and_then(|a| a.value.clone()?.value)
            };
            assert_eq!(
                value("http.response.status_code"),
                Some(Value::IntValue(500)),
                "an int, as sent"
            );
            assert_eq!(value("service.name"), Some(Value::StringValue("svc-00".into())));
        }
    }
    // Here each span has two attributes and its resource one; with the
    // ten or more of real spans the lists are most of the bytes.
    assert!(
        column_bytes < list_bytes,
        "own columns: {column_bytes} bytes read; attribute lists: {list_bytes}"
    );
}

/// `with(most_recent=true)`: exactly the newest matches, and a search
/// without the hint finds as many.
#[tokio::test]
async fn most_recent_returns_the_newest_matches() {
    let (stored, files) = stored().await;
    let engine = QueryEngine::new(
        Arc::clone(&stored.catalog) as _,
        Arc::clone(&stored.store) as _,
        Arc::new(NoBuffers),
    )
    .unwrap();
    let found = search(&engine, &stored, "{ } with (most_recent=true)", 5).await;
    // The newest file's last traces start last.
    let expected: Vec<[u8; 16]> = files[FILES - 1].iter().rev().take(5).copied().collect();
    assert_eq!(found.iter().map(|t| t.trace_id).collect::<Vec<_>>(), expected);
    assert_eq!(search(&engine, &stored, "{ }", 5).await.len(), 5);
}

/// Records what a search asks the writers for, and answers like a writer.
#[derive(Debug, Default)]
struct RecordingBuffers {
    asked: std::sync::Mutex<Vec<signaldb_query::BufferFilter>>,
    spans: Vec<arrow_array::RecordBatch>,
}

#[async_trait::async_trait]
impl signaldb_query::BufferSource for RecordingBuffers {
    async fn buffered(
        &self,
        _tenant: &signaldb_config::TenantId,
        filter: signaldb_query::BufferFilter,
    ) -> Result<signaldb_query::Buffered, signaldb_query::QueryError> {
        self.asked.lock().unwrap().push(filter.clone());
        let columns = filter.columns.clone().unwrap_or_else(|| {
            signaldb_schema::traces::schema()
                .fields()
                .iter()
                .map(|f| -> &'static str { Box::leak(f.name().clone().into_boxed_str()) })
                .collect()
        });
        let mut out = Vec::new();
        for batch in &self.spans {
            let keep: arrow_array::BooleanArray = {
                let ids = batch
                    .column_by_name(signaldb_schema::columns::TRACE_ID)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<arrow_array::FixedSizeBinaryArray>()
                    .unwrap();
                let mask = filter
                    .condition
                    .as_ref()
                    .map(|c| signaldb_traceql::span_mask(c, batch).unwrap());
                (0..batch.num_rows())
                    .map(|i| {
                        let id_ok = filter.trace_ids.is_empty()
                            || filter.trace_ids.iter().any(|t| t.as_slice() == ids.value(i));
                        Some(id_ok && mask.as_ref().is_none_or(|m| m.is_valid(i) && m.value(i)))
                    })
                    .collect()
            };
            let rows = arrow::compute::filter_record_batch(batch, &keep).unwrap();
            let schema = rows.schema();
            let indexes: Vec<usize> = columns.iter().map(|c| schema.index_of(c).unwrap()).collect();
            out.push(rows.project(&indexes).unwrap());
        }
        Ok(out.into())
    }
}

/// Over unflushed data, a search asks the writers for the spans meeting its
/// condition with the columns the condition reads, enough for `limit`
/// traces, then for the spans of the traces found; it never asks for whole
/// buffers.
#[tokio::test]
async fn searches_ask_writers_only_for_what_they_need() {
    let mut stored = Stored::new().await;
    let old = random_ids(7, 200);
    stored.add_file(&old).await;
    let new = random_ids(8, 200);
    // A thousand seconds after the stored file.
    let spans = crate::common::spans_batch(&new, 1_767_225_600_000_000_000 + 1_000_000_000_000);
    let buffers = Arc::new(RecordingBuffers {
        spans: vec![spans],
        ..Default::default()
    });
    let engine = QueryEngine::new(
        Arc::clone(&stored.catalog) as _,
        Arc::clone(&stored.store) as _,
        Arc::clone(&buffers) as _,
    )
    .unwrap();
    // The stored file's index loaded, as by earlier queries.
    engine.trace_by_id(&stored.tenant, old[0], None).await.unwrap();
    stored.store.take_files_read();
    buffers.asked.lock().unwrap().clear();

    let found = search(&engine, &stored, "{ span.attr.str5 = \"value-7\" }", 2).await;
    // Buffered traces are newer than stored ones: both come from the buffer.
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|t| new.contains(&t.trace_id)));
    let asked = buffers.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "one request per step: {asked:?}");
    assert!(asked[0].condition.is_some(), "step 1 sends the condition");
    assert_eq!(
        asked[0].columns.as_deref(),
        Some(signaldb_query::condition_columns(asked[0].condition.as_ref()).as_slice()),
        "step 1 asks for the columns the condition reads"
    );
    assert_eq!(
        asked[0].max_traces,
        Some(2),
        "step 1 asks for enough spans for `limit` traces"
    );
    let mut asked_ids = asked[1].trace_ids.clone();
    asked_ids.sort();
    let mut found_ids: Vec<[u8; 16]> = found.iter().map(|t| t.trace_id).collect();
    found_ids.sort();
    assert!(
        found_ids.iter().all(|id| asked_ids.contains(id)),
        "step 2 asks for the candidates' spans"
    );
    assert!(asked[1].condition.is_none() && asked[1].columns.is_some() && asked[1].max_traces.is_none());
    // No file was read: the buffer held the answer, and the stored file's
    // index rules its traces out.
    assert_eq!(stored.store.take_files_read(), Vec::<String>::new());
}
