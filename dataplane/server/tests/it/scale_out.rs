//! Four queriers, each a server of its own sharing the catalog, the object
//! store and the cluster token: a search that reads every file is split
//! across them and answers as one querier alone did.

use std::time::Duration;

use signaldb::server::{Roles, start};

use crate::common::*;

async fn trace_ids(http: &reqwest::Client, base: &str, q: &str) -> Vec<String> {
    let url = format!("{base}/api/search?q={}&limit=1000", urlencode(q));
    let body = get_json(http, &url).await;
    let mut ids: Vec<String> = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_split_across_four_queriers_answers_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = SharedCluster::new(dir.path());
    let node = |name: &str| {
        let mut c = cluster.node(name);
        c.querier.files_per_task = 1;
        c
    };
    let first = start(node("all"), Roles::ALL).await.unwrap();
    let (mut grpc, base) = clients(&first).await;
    let http = reqwest::Client::new();
    // Six files of five traces of three spans.
    for seed in 0..6 {
        grpc.export(request(500 + seed, 5, 3)).await.unwrap();
        deliver_and_flush(&first).await;
    }
    // Not the whole query (an aggregate): every file is read.
    let q = "{ } | count() > 2";
    let alone = trace_ids(&http, &base, q).await;
    assert_eq!(alone.len(), 30);
    assert_eq!(
        metric(&first.metrics.render(), "signaldb_querier_scan_tasks_total"),
        Some(0.0),
        "one querier does not split"
    );

    let mut others = Vec::new();
    for name in ["q2", "q3", "q4"] {
        others.push(start(node(name), Roles::QUERIER).await.unwrap());
    }
    // Every querier lists the others (registration, then a refresh).
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The router picks a coordinator round robin: every querier coordinates once.
    for round in 0..4 {
        assert_eq!(trace_ids(&http, &base, q).await, alone, "round {round}");
    }
    let tasks: Vec<f64> = std::iter::once(&first)
        .chain(&others)
        .map(|r| metric(&r.metrics.render(), "signaldb_querier_scan_tasks_total").unwrap_or(0.0))
        .collect();
    assert!(
        tasks.iter().filter(|t| **t > 0.0).count() >= 2,
        "the scans were split across queriers: tasks run per querier {tasks:?}"
    );
    for r in others {
        r.shutdown().await;
    }
    first.shutdown().await;
}
