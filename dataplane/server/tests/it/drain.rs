//! Draining a writer: it leaves routing, refuses new data, flushes everything
//! it holds; acceptors route around it to the other writers; nothing is lost.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use signaldb::server::{Roles, start};

use crate::common::*;

fn keys(req: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest) -> Vec<SpanKey> {
    req.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| (s.trace_id.clone(), s.span_id.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_writer_flushes_and_traffic_moves_to_the_other_writer() {
    let dir = tempfile::tempdir().unwrap();
    // Every role of the cluster shares the token (role-to-role calls carry it).
    let cluster = SharedCluster::new(dir.path());
    let token = cluster.token.clone();
    let node = |name: &str| cluster.node(name);
    let w1 = start(node("w1"), Roles::WRITER).await.unwrap();
    let acceptor = start(node("acc"), Roles::ACCEPTOR).await.unwrap();
    let mut grpc = TraceServiceClient::connect(format!("http://{}", acceptor.endpoints.otlp_grpc.unwrap()))
        .await
        .unwrap();
    let mut acked = std::collections::HashSet::new();
    for seed in 0..10 {
        let req = request(seed, 3, 5);
        acked.extend(keys(&req));
        grpc.export(req).await.unwrap();
    }
    let m = acceptor.metrics.clone();
    wait_until("delivery to w1", Duration::from_secs(20), || {
        metric(&m.render(), "signaldb_wal_pending_bytes{role=\"acceptor\"}") == Some(0.0)
    })
    .await;
    assert!(
        w1.writer().unwrap().buffered().0 > 0,
        "w1 buffers the data (no flush yet)"
    );

    // A querier and router see w1's buffered data...
    let query = start(
        node("q"),
        Roles {
            acceptor: false,
            writer: false,
            querier: true,
            router: true,
            compactor: false,
        },
    )
    .await
    .unwrap();
    let api = format!("http://{}", query.endpoints.router_http.unwrap());
    assert_eq!(
        queryable_spans(&api, &acked).await,
        acked.len(),
        "buffered spans are queryable"
    );

    // Drain w1 through its admin endpoint.
    let admin = format!("http://{}/drain", w1.endpoints.admin.unwrap());
    let http = reqwest::Client::new();
    // Not without the cluster token, nor with a wrong one.
    let resp = http.post(&admin).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.text().await.unwrap().contains("needs the cluster token"));
    let resp = http
        .post(&admin)
        .header("authorization", "Bearer not-the-cluster-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(!w1.writer().unwrap().is_draining());
    let resp = http
        .post(&admin)
        .header("authorization", token.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let t = std::time::Instant::now();
    loop {
        let body: serde_json::Value =
            serde_json::from_str(&http.get(&admin).send().await.unwrap().text().await.unwrap()).unwrap();
        assert_eq!(body["draining"], true);
        if body["done"] == true {
            assert_eq!(body["buffered_bytes"], 0);
            assert_eq!(body["wal_pending_bytes"], 0);
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "drain did not finish: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // ...and the same spans once w1 has flushed them to Parquet.
    assert_eq!(
        queryable_spans(&api, &acked).await,
        acked.len(),
        "drained spans stay queryable"
    );

    // New data while the only writer drains waits in the acceptor's WAL...
    let late = request(100, 2, 5);
    acked.extend(keys(&late));
    grpc.export(late).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(metric(&m.render(), "signaldb_wal_pending_bytes{role=\"acceptor\"}").unwrap() > 0.0);
    assert_eq!(
        w1.writer().unwrap().buffered().0,
        0,
        "a draining writer takes no new data"
    );

    // ...and goes to a new writer as soon as one appears.
    let w2 = start(node("w2"), Roles::WRITER).await.unwrap();
    wait_until("delivery to w2", Duration::from_secs(20), || {
        metric(&m.render(), "signaldb_wal_pending_bytes{role=\"acceptor\"}") == Some(0.0)
    })
    .await;

    // Undoing w1's drain (token needed) puts it back in routing: new traces
    // spread over both writers again.
    assert_eq!(http.delete(&admin).send().await.unwrap().status().as_u16(), 401);
    let resp = http
        .delete(&admin)
        .header("authorization", token.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["draining"], false);
    let mut w1_took_data = false;
    for round in 0..20 {
        let more = request(200 + round, 10, 2);
        acked.extend(keys(&more));
        grpc.export(more).await.unwrap();
        wait_until("delivery after the undo", Duration::from_secs(20), || {
            metric(&m.render(), "signaldb_wal_pending_bytes{role=\"acceptor\"}") == Some(0.0)
        })
        .await;
        if w1.writer().unwrap().buffered().0 > 0 {
            w1_took_data = true;
            break;
        }
        // Acceptors learn of the change on their next catalog refresh.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(w1_took_data, "a writer whose drain was undone takes new data");
    w1.writer().unwrap().flush().await.unwrap();
    w2.writer().unwrap().flush().await.unwrap();

    let store = signaldb::storage::open(&node("w2")).unwrap();
    let catalog_url = node("w2").catalog_url();
    let stored = catalog_spans(&catalog_url, &store, "single-tenant").await;
    assert_exactly_once(&acked, &stored);
    assert_eq!(
        queryable_spans(&api, &acked).await,
        acked.len(),
        "every span queryable at the end"
    );
    query.shutdown().await;
    acceptor.shutdown().await;
    w1.shutdown().await;
    w2.shutdown().await;
}

/// How many of `acked` the Tempo API returns, fetching each trace by id.
async fn queryable_spans(api: &str, acked: &std::collections::HashSet<SpanKey>) -> usize {
    use prost::Message;
    let traces: std::collections::BTreeSet<&Vec<u8>> = acked.iter().map(|(t, _)| t).collect();
    let http = reqwest::Client::new();
    let mut found = 0;
    for t in traces {
        let resp = http
            .get(format!("{api}/api/traces/{}", hex::encode(t)))
            .header("accept", "application/protobuf")
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() != 200 {
            continue;
        }
        let trace = signaldb_tempo::tempopb::Trace::decode(resp.bytes().await.unwrap()).unwrap();
        found += spans_by_id(&trace.resource_spans)
            .keys()
            .filter(|k| acked.contains(*k))
            .count();
    }
    found
}

/// An acceptor leaving in a scale-down drains first: it refuses new
/// requests (UNAVAILABLE, so clients retry elsewhere) and reports not
/// ready, delivers everything its WAL holds (here only once a writer
/// appears), and reports done only then; the pod can go with nothing left
/// behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_acceptor_delivers_its_wal_before_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = SharedCluster::new(dir.path());
    let token = cluster.token.clone();
    let acceptor = start(cluster.node("acc"), Roles::ACCEPTOR).await.unwrap();
    let mut grpc = TraceServiceClient::connect(format!("http://{}", acceptor.endpoints.otlp_grpc.unwrap()))
        .await
        .unwrap();
    // No writer yet: acknowledged requests wait in the acceptor's WAL.
    let mut acked = std::collections::HashSet::new();
    for seed in 300..306 {
        let req = request(seed, 2, 5);
        acked.extend(keys(&req));
        grpc.export(req).await.unwrap();
    }
    let admin = format!("http://{}", acceptor.endpoints.admin.unwrap());
    let http = reqwest::Client::new();
    let resp = http.post(format!("{admin}/drain")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401, "starting a drain needs the cluster token");
    let resp = http
        .post(format!("{admin}/drain"))
        .header("authorization", token.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let status = |http: reqwest::Client| {
        let url = format!("{admin}/drain");
        async move {
            serde_json::from_str::<serde_json::Value>(&http.get(url).send().await.unwrap().text().await.unwrap())
                .unwrap()
        }
    };
    let body = status(http.clone()).await;
    assert_eq!(body["draining"], true);
    assert_eq!(body["done"], false, "the WAL still holds acknowledged requests: {body}");
    assert!(body["wal_pending_bytes"].as_u64().unwrap() > 0);
    // Out of the Service, and new requests go elsewhere.
    let ready = http.get(format!("{admin}/ready")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let refused = grpc.export(request(400, 1, 5)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("draining"), "{}", refused.message());

    // A writer appears: the WAL is delivered and the drain is done.
    let writer_config = cluster.node("w");
    let writer = start(writer_config.clone(), Roles::WRITER).await.unwrap();
    let t = std::time::Instant::now();
    loop {
        let body = status(http.clone()).await;
        if body["done"] == true {
            assert_eq!(body["wal_pending_bytes"], 0);
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "drain did not finish: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The pod goes; everything it acknowledged is with the writer.
    acceptor.shutdown().await;
    writer.writer().unwrap().flush().await.unwrap();
    let store = signaldb::storage::open(&writer_config).unwrap();
    let stored = catalog_spans(&writer_config.catalog_url(), &store, "single-tenant").await;
    assert_exactly_once(&acked, &stored);
    writer.shutdown().await;
}
