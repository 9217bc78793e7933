//! `discovery.kubernetes`: the server follows the writers' EndpointSlices
//! through the real Kubernetes client against a small fake API server over
//! HTTP. While the writer's pod is not ready the acceptor routes nothing to
//! it (acknowledged data waits in the WAL); the moment the slice says ready,
//! delivery resumes. Without a reachable API server routing falls back to the
//! catalog alone.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::common::*;

const SERVICE: &str = "sdb-writer-headless";

#[derive(Default)]
struct FakeApi {
    slice: Mutex<Value>,
    watchers: Mutex<Vec<mpsc::UnboundedSender<Result<String, std::io::Error>>>>,
    lists: Mutex<u32>,
}

fn slice(ready: bool, rv: u32) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{SERVICE}-x1"),
            "namespace": "ns",
            "resourceVersion": rv.to_string(),
            "labels": { "kubernetes.io/service-name": SERVICE },
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": ["10.0.0.7"],
            "conditions": { "ready": ready, "serving": ready, "terminating": false },
            "targetRef": { "kind": "Pod", "name": "pod-0", "namespace": "ns" },
        }],
    })
}

async fn endpoint_slices(
    State(api): State<Arc<FakeApi>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    assert_eq!(
        q.get("labelSelector").map(String::as_str),
        Some("kubernetes.io/service-name=sdb-writer-headless")
    );
    if q.get("watch").map(String::as_str) == Some("true") {
        let (tx, rx) = mpsc::unbounded_channel();
        api.watchers.lock().unwrap().push(tx);
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        return axum::body::Body::from_stream(stream).into_response();
    }
    *api.lists.lock().unwrap() += 1;
    let item = api.slice.lock().unwrap().clone();
    axum::Json(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSliceList",
        "metadata": { "resourceVersion": item["metadata"]["resourceVersion"] },
        "items": [item],
    }))
    .into_response()
}

async fn start_fake_api() -> (Arc<FakeApi>, String) {
    let api = Arc::new(FakeApi::default());
    *api.slice.lock().unwrap() = slice(false, 1);
    let app = axum::Router::new()
        .route(
            "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices",
            axum::routing::get(endpoint_slices),
        )
        .with_state(Arc::clone(&api));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (api, format!("http://{addr}"))
}

fn kubeconfig(dir: &std::path::Path, server: &str) -> String {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: ns\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn args(data: &str) -> Vec<&str> {
    let mut args = all_in_one_args(data);
    args.extend(["--node-id", "pod-0"]);
    args
}

async fn pending(admin: &str) -> f64 {
    admin_metric(admin, "signaldb_wal_pending_bytes{role=\"acceptor\"}")
        .await
        .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_whose_pod_is_not_ready_gets_nothing_until_it_is() {
    let (api, server) = start_fake_api().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), &server);
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let proc = Proc::spawn(
        &args(data),
        &[
            ("KUBECONFIG", kc.as_str()),
            ("POD_NAMESPACE", "ns"),
            ("SIGNALDB_DISCOVERY__KUBERNETES__WRITER_SERVICE", SERVICE),
        ],
    );
    let admin = proc.addr("admin");

    // The server lists the slices, then watches them.
    let t = Instant::now();
    while api.watchers.lock().unwrap().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the server never watched the EndpointSlices"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(*api.lists.lock().unwrap() >= 1);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Not ready: acknowledged, kept in the WAL, not delivered.
    let mut grpc = TraceServiceClient::connect(format!("http://{}", proc.addr("otlp_grpc")))
        .await
        .unwrap();
    grpc.export(request(1, 2, 3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        pending(&admin).await > 0.0,
        "the acceptor delivered to a writer whose pod is not ready"
    );

    // Ready: delivery resumes at once.
    let event = json!({ "type": "MODIFIED", "object": slice(true, 2) });
    for w in api.watchers.lock().unwrap().iter() {
        let _ = w.send(Ok(format!("{event}\n")));
    }
    let t = Instant::now();
    while pending(&admin).await != 0.0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "not delivered after the pod became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proc.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_api_server_routing_uses_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let kc = kubeconfig(dir.path(), "http://127.0.0.1:1");
    let data = dir.path().join("data");
    let proc = Proc::spawn(
        &args(data.to_str().unwrap()),
        &[
            ("KUBECONFIG", kc.as_str()),
            ("POD_NAMESPACE", "ns"),
            ("SIGNALDB_DISCOVERY__KUBERNETES__WRITER_SERVICE", SERVICE),
        ],
    );
    let mut grpc = TraceServiceClient::connect(format!("http://{}", proc.addr("otlp_grpc")))
        .await
        .unwrap();
    grpc.export(request(2, 2, 3)).await.unwrap();
    wait_acceptor_wal_delivered(&proc.addr("admin")).await;
    proc.terminate();
}
