//! Searches over many stored files: what they return and what they read.

use std::collections::HashSet;
use std::sync::Arc;

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
/// no other, and returns traces of it, newest first.
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
    }
    let found = search(&engine, &stored, "{ span.attr.str5 = \"value-7\" }", 3).await;
    assert!(found.iter().all(|t| {
        t.spans
            .iter()
            .all(|s| s.attributes.iter().any(|a| a.key == "attr.str5"))
    }));
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
