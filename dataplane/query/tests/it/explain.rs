//! EXPLAIN snapshots: what the catalog, the file indexes and the Parquet
//! reader rule out for a trace by id and for each kind of TraceQL
//! condition, on files written by the writer's encoder.

use signaldb_query::QueryEngine;

use crate::common::{Stored, random_ids};

const TRACES_PER_FILE: usize = 2_000;
/// 2026-01-01T00:00:00Z in nanoseconds, when the first file starts.
const T0: i64 = 1_767_225_600_000_000_000;

fn engine(stored: &Stored) -> QueryEngine {
    stored.engine()
}

/// Ten files of random ids: every file's id range spans nearly the whole
/// id space, so the catalog's ranges rule nothing out and the bloom
/// filters do; in the file that holds the trace, the page index selects
/// the pages whose id range holds it.
#[tokio::test]
async fn trace_by_id_over_overlapping_files() {
    let mut stored = Stored::new().await;
    let mut wanted = None;
    for f in 0..10 {
        let ids = random_ids(f + 1, TRACES_PER_FILE);
        if f == 4 {
            wanted = Some(ids[1_234]);
        }
        stored.add_file(&ids).await;
    }
    let text = engine(&stored)
        .explain_trace_by_id(&stored.tenant, wanted.unwrap(), None)
        .await
        .unwrap();
    insta::assert_snapshot!("trace_by_id_overlapping_files", text);
}

/// Ten files of disjoint id ranges (as a compactor writes them): the
/// catalog's ranges rule out nine files before any I/O.
#[tokio::test]
async fn trace_by_id_over_disjoint_files() {
    let mut stored = Stored::new().await;
    for f in 0..10u8 {
        let mut ids = random_ids(u64::from(f) + 1, TRACES_PER_FILE);
        for id in &mut ids {
            id[0] = f;
        }
        stored.add_file(&ids).await;
    }
    let mut id = random_ids(7, TRACES_PER_FILE)[99];
    id[0] = 6;
    let text = engine(&stored)
        .explain_trace_by_id(&stored.tenant, id, None)
        .await
        .unwrap();
    insta::assert_snapshot!("trace_by_id_disjoint_files", text);
}

/// Three files a second apart, each of 2,000 traces of five spans
/// (`op-0`..`op-4`, 500 ns each, service `svc-00`, `attr.str5` =
/// `value-{trace % 100}`).
async fn three_files() -> Stored {
    let mut stored = Stored::new().await;
    for f in 0..3 {
        stored.add_file(&random_ids(100 + f, TRACES_PER_FILE)).await;
    }
    stored
}

/// One snapshot per kind of condition: exact conditions on columns of
/// their own (intrinsics, `service.name`, dedicated attribute columns,
/// regular expressions, `trace:id` with the bloom filters), scoped
/// intrinsics without a column of their own (`event:name`), a condition narrowed by its column part, one with
/// nothing to push down, spanset operators and aggregates (which evaluate
/// every candidate), and a time range that rules files out.
#[tokio::test]
async fn searches() {
    let stored = three_files().await;
    let engine = engine(&stored);
    let last_file = Some((T0 + 2_000_000_000, T0 + 3_000_000_000));
    let in_middle_file: String = random_ids(101, TRACES_PER_FILE)[5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let by_trace_id = format!(r#"{{ trace:id = "{in_middle_file}" }}"#);
    for (name, q, range) in [
        ("trace_id", by_trace_id.as_str(), None),
        ("event_name", r#"{ event:name = "exception" }"#, None),
        ("service_name_absent", r#"{ resource.service.name = "svc-01" }"#, None),
        ("intrinsics", r#"{ name = "op-1" && duration > 400ns }"#, None),
        (
            "regex",
            r#"{ name =~ "op-[12]" || resource.service.name !~ "svc-0.*" }"#,
            None,
        ),
        ("dedicated_column", r#"{ span.http.response.status_code = 500 }"#, None),
        ("attribute_list", r#"{ span.attr.str5 = "value-42" }"#, None),
        ("narrowed", r#"{ name = "op-1" && span.attr.str5 = "value-42" }"#, None),
        ("spanset_and", r#"{ name = "op-0" } && { name = "op-1" }"#, None),
        ("aggregate", r#"{ status = error } | count() > 3"#, None),
        ("time_range", r#"{ name = "op-1" }"#, last_file),
    ] {
        let text = engine.explain_search(&stored.tenant, range, q).await.unwrap();
        insta::assert_snapshot!(format!("search_{name}"), text);
    }
}

#[tokio::test]
async fn an_invalid_query_is_a_bad_request() {
    let stored = three_files().await;
    let err = engine(&stored)
        .explain_search(&stored.tenant, None, "{ name = }")
        .await
        .unwrap_err();
    assert!(
        matches!(err, signaldb_query::QueryError::BadRequest(ref m) if m.contains("invalid TraceQL")),
        "{err}"
    );
}
