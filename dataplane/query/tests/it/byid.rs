//! Trace by id over many stored files: what it returns and what it reads.

use signaldb_query::QueryEngine;
use signaldb_schema::columns;

use crate::common::{SPANS_PER_TRACE, Stored, random_ids};

const FILES: usize = 100;
const TRACES_PER_FILE: usize = 2_000;

fn engine(stored: &Stored) -> QueryEngine {
    stored.engine()
}

async fn span_ids_of(engine: &QueryEngine, stored: &Stored, id: [u8; 16]) -> Option<Vec<Vec<u8>>> {
    let batch = engine.trace_by_id(&stored.tenant, id, None).await.unwrap()?;
    let traces = batch
        .column_by_name(columns::TRACE_ID)
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::FixedSizeBinaryArray>()
        .unwrap();
    assert!(
        traces.iter().all(|t| t == Some(id.as_slice())),
        "only the trace asked for"
    );
    let spans = batch
        .column_by_name(columns::SPAN_ID)
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::FixedSizeBinaryArray>()
        .unwrap();
    let mut ids: Vec<Vec<u8>> = spans.iter().map(|s| s.unwrap().to_vec()).collect();
    ids.sort();
    Some(ids)
}

fn expected_spans() -> Vec<Vec<u8>> {
    (0..SPANS_PER_TRACE).map(|s| vec![s as u8 + 1; 8]).collect()
}

/// 100 files of random trace ids (every file's id range spans nearly the
/// whole id space, so the catalog's ranges prune nothing): the first lookup
/// loads each file's index once; after that a lookup reads only the file
/// that holds the trace.
#[tokio::test]
async fn warm_lookup_over_100_files_reads_one_file() {
    let mut stored = Stored::new().await;
    let mut files = Vec::new();
    for f in 0..FILES {
        let ids = random_ids(f as u64 + 1, TRACES_PER_FILE);
        let record = stored.add_file(&ids).await;
        files.push((record, ids));
    }
    let distinct: std::collections::HashSet<[u8; 16]> = files.iter().flat_map(|(_, ids)| ids.iter().copied()).collect();
    assert_eq!(distinct.len(), FILES * TRACES_PER_FILE, "every trace in one file only");
    let engine = engine(&stored);

    // Cold: every file's index is loaded once.
    let (_, ids) = &files[37];
    assert_eq!(span_ids_of(&engine, &stored, ids[5]).await, Some(expected_spans()));
    let cold = stored.store.take_files_read();
    assert_eq!(cold.len(), FILES, "a cold lookup loads every file's index once");
    assert!(engine.index_cache_bytes() > 0);

    // Warm: one file, the one holding the trace.
    for (f, t) in [(52, 0), (0, 1_999), (99, 17), (37, 5)] {
        let (record, ids) = &files[f];
        assert_eq!(span_ids_of(&engine, &stored, ids[t]).await, Some(expected_spans()));
        assert_eq!(
            stored.store.take_files_read(),
            vec![record.path.clone()],
            "a warm lookup of trace {t} of file {f} reads that file only"
        );
    }

    // An id stored nowhere: nothing found, and at most a bloom filter's
    // false positive read (0.01% per row group).
    let missing = random_ids(10_000, 1)[0];
    assert_eq!(span_ids_of(&engine, &stored, missing).await, None);
    let read = stored.store.take_files_read();
    assert!(read.len() <= 1, "a missing id read {} files: {read:?}", read.len());
}

/// Files that split the id space (as compaction leaves them): the catalog's
/// per-file trace-id ranges rule out every other file before any I/O, so
/// even a cold lookup reads one file.
#[tokio::test]
async fn catalog_trace_id_ranges_prune_files_before_any_read() {
    let mut stored = Stored::new().await;
    let mut files = Vec::new();
    for f in 0..20u8 {
        let ids: Vec<[u8; 16]> = random_ids(u64::from(f) + 500, 50)
            .into_iter()
            .map(|mut id| {
                id[0] = f;
                id
            })
            .collect();
        let record = stored.add_file(&ids).await;
        let (min, max) = record.trace_ids.unwrap();
        assert_eq!((min[0], max[0]), (f, f), "the writer records the file's id range");
        files.push((record, ids));
    }
    let engine = engine(&stored);
    let (record, ids) = &files[13];
    assert_eq!(span_ids_of(&engine, &stored, ids[7]).await, Some(expected_spans()));
    assert_eq!(stored.store.take_files_read(), vec![record.path.clone()]);
}

/// A file registered after a lookup is seen by the next one: the cached
/// file list follows the catalog's version.
#[tokio::test]
async fn a_new_file_is_seen_by_the_next_lookup() {
    let mut stored = Stored::new().await;
    let first = random_ids(1, 10);
    stored.add_file(&first).await;
    let engine = engine(&stored);
    assert_eq!(span_ids_of(&engine, &stored, first[0]).await, Some(expected_spans()));

    let later = random_ids(2, 10);
    assert_eq!(span_ids_of(&engine, &stored, later[3]).await, None);
    stored.add_file(&later).await;
    assert_eq!(span_ids_of(&engine, &stored, later[3]).await, Some(expected_spans()));
}

/// A bound smaller than the indexes: lookups still answer, reading the
/// indexes again instead of holding them.
#[tokio::test]
async fn a_tiny_index_cache_still_answers() {
    let mut stored = Stored::new().await;
    let mut files = Vec::new();
    for f in 0..5 {
        let ids = random_ids(f + 1, 50);
        stored.add_file(&ids).await;
        files.push(ids);
    }
    let engine = engine(&stored).with_index_cache(1024);
    for ids in &files {
        assert_eq!(span_ids_of(&engine, &stored, ids[1]).await, Some(expected_spans()));
    }
    assert!(engine.index_cache_bytes() <= 1024);
}

/// Indexes loaded ahead of queries: the first lookup already reads only
/// the file holding its trace.
#[tokio::test]
async fn warmed_indexes_spare_the_first_lookup() {
    let mut stored = Stored::new().await;
    let mut files = Vec::new();
    for f in 0..10 {
        let ids = random_ids(f + 40, 100);
        let record = stored.add_file(&ids).await;
        files.push((record, ids));
    }
    let engine = engine(&stored);
    engine.warm_once().await.unwrap();
    assert_eq!(
        stored.store.take_files_read().len(),
        10,
        "every file's index loaded once"
    );
    let (record, ids) = &files[6];
    assert_eq!(span_ids_of(&engine, &stored, ids[3]).await, Some(expected_spans()));
    assert_eq!(stored.store.take_files_read(), vec![record.path.clone()]);
    // Nothing new: a second round reads nothing.
    engine.warm_once().await.unwrap();
    assert!(stored.store.take_files_read().is_empty());
}
