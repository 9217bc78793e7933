//! A query that cannot read a live writer's buffer says its answer may be
//! partial, as Tempo does (search: fewer `completedJobs` than `totalJobs`;
//! trace by id v2: `status` PARTIAL and a `message`; v1: a header), and
//! stops saying so once every writer answers again.

use std::sync::Arc;

use signaldb_catalog::{Capability, Catalog, Role, ServiceRecord};

use crate::common::*;

async fn get_json(http: &reqwest::Client, url: &str) -> (reqwest::header::HeaderMap, serde_json::Value) {
    let resp = http.get(url).send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let body = resp.bytes().await.unwrap();
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    (headers, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_without_a_writer_say_they_are_partial() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let running = start_all(config.clone()).await;
    let (mut grpc, api) = clients(&running).await;
    let sent = request(41, 3, 4);
    let trace = hex::encode(&sent.resource_spans[0].scope_spans[0].spans[0].trace_id);
    grpc.export(sent).await.unwrap();
    deliver_and_flush(&running).await;

    let http = reqwest::Client::new();
    let now = chrono::Utc::now().timestamp();
    let search = format!(
        "{api}/api/search?q=%7B%7D&limit=20&start={}&end={}",
        now - 3600,
        now + 3600
    );
    let v1 = format!("{api}/api/traces/{trace}");
    let v2 = format!("{api}/api/v2/traces/{trace}");
    let complete = |http: reqwest::Client| {
        let (search, v1, v2) = (search.clone(), v1.clone(), v2.clone());
        async move {
            let (_, body) = get_json(&http, &search).await;
            assert_eq!(body["traces"].as_array().unwrap().len(), 3);
            assert_eq!(body["metrics"]["completedJobs"], body["metrics"]["totalJobs"], "{body}");
            let (_, body) = get_json(&http, &v2).await;
            assert!(body.get("status").is_none(), "{body}");
            let (headers, _) = get_json(&http, &v1).await;
            assert!(headers.get(signaldb_tempo::PARTIAL_HEADER).is_none());
        }
    };
    complete(http.clone()).await;

    // A writer that is live in the registry but cannot be reached.
    let catalog: Arc<dyn Catalog> = Arc::new(signaldb_catalog::connect(&config.catalog_url(), 2).await.unwrap());
    let now_ms = signaldb::now_ms();
    catalog
        .register_service(&ServiceRecord {
            id: "ghost-writer".into(),
            role: Role::Writer,
            address: "127.0.0.1:1".into(),
            capabilities: vec![Capability::Storage],
            draining: false,
            started_at_ms: now_ms,
            last_heartbeat_ms: now_ms,
        })
        .await
        .unwrap();

    let (_, body) = get_json(&http, &search).await;
    assert_eq!(
        body["traces"].as_array().unwrap().len(),
        3,
        "what could be read is answered"
    );
    assert_eq!(body["metrics"]["completedJobs"], 1, "{body}");
    assert_eq!(body["metrics"]["totalJobs"], 2, "{body}");

    let (_, body) = get_json(&http, &v2).await;
    assert_eq!(body["status"], "PARTIAL", "{body}");
    assert!(body["message"].as_str().unwrap().contains("ghost-writer"), "{body}");
    assert_eq!(body["trace"]["resourceSpans"].as_array().unwrap().len(), 1);
    let (headers, body) = get_json(&http, &v1).await;
    let why = headers.get(signaldb_tempo::PARTIAL_HEADER).unwrap().to_str().unwrap();
    assert!(why.contains("ghost-writer"), "{why}");
    assert_eq!(body["batches"].as_array().unwrap().len(), 1);
    // A trace not found is partial too: it may be in the writer's buffer.
    let missing = http
        .get(format!("{api}/api/traces/{}", "ab".repeat(16)))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert!(missing.headers().get(signaldb_tempo::PARTIAL_HEADER).is_some());

    catalog.deregister_service("ghost-writer").await.unwrap();
    complete(http.clone()).await;
    running.shutdown().await;
}
