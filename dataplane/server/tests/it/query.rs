//! The read path end to end: OTLP in, Tempo API and Flight SQL out, fresh
//! data before any flush, the same after a flush, tenants kept apart.

use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use base64::Engine as _;
use futures::TryStreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

use crate::common::*;

async fn export(
    grpc: &mut TraceServiceClient<tonic::transport::Channel>,
    tenant: &str,
    req: ExportTraceServiceRequest,
) {
    let mut r = tonic::Request::new(req);
    r.metadata_mut().insert("x-scope-orgid", tenant.parse().unwrap());
    grpc.export(r).await.unwrap();
}

async fn get(http: &reqwest::Client, url: &str, tenant: &str, accept: Option<&str>) -> (u16, String, bytes::Bytes) {
    let mut req = http.get(url).header("x-scope-orgid", tenant);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap())
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

async fn sql_count(endpoint: &str, tenant: &str, sql: &str) -> i64 {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_header("x-scope-orgid", tenant);
    let info = client.execute(sql.to_owned(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches: Vec<arrow_array::RecordBatch> = client.do_get(ticket).await.unwrap().try_collect().await.unwrap();
    let col = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap();
    col.value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tempo_api_and_flight_sql_fresh_flushed_and_tenant_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.writer.flush_max_age = Duration::from_secs(3600);
    let running = start_all(config).await;
    let (mut grpc, base) = clients(&running).await;
    let http = reqwest::Client::new();

    // Tenant A: one trace of 3 spans; tenant B: another.
    let a = request(11, 1, 3);
    let b = request(22, 1, 2);
    let a_trace = hex::encode(&a.resource_spans[0].scope_spans[0].spans[0].trace_id);
    let b_trace = hex::encode(&b.resource_spans[0].scope_spans[0].spans[0].trace_id);
    export(&mut grpc, "tenant-b", b.clone()).await;
    let acked = Instant::now();
    export(&mut grpc, "tenant-a", a.clone()).await;

    // Fresh: found by id and by search right after the acknowledgement.
    let by_id = loop {
        let r = get(
            &http,
            &format!("{base}/api/traces/{a_trace}"),
            "tenant-a",
            Some("application/protobuf"),
        )
        .await;
        if r.0 == 200 {
            break r;
        }
        assert!(
            acked.elapsed() < Duration::from_secs(5),
            "trace not findable by id: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("findable by id {:?} after acknowledgement", acked.elapsed());
    let trace = signaldb_tempo::tempopb::Trace::decode(by_id.2).unwrap();
    let got = spans_by_id(&trace.resource_spans);
    let sent = spans_by_id(&a.resource_spans);
    assert_eq!(got.len(), 3);
    for (k, (_, span)) in &sent {
        assert_eq!(&got[k].1, span, "span returned by protobuf equals the span sent");
    }
    let q = format!(
        "{base}/api/search?q={}",
        urlencode("{ resource.service.name = \"svc-00\" }")
    );
    let found = loop {
        let (s, _, body) = get(&http, &q, "tenant-a", None).await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
        let v = json(&body);
        if !v["traces"].as_array().unwrap().is_empty() {
            break v;
        }
        assert!(acked.elapsed() < Duration::from_secs(5), "trace not findable by search");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("findable by search {:?} after acknowledgement", acked.elapsed());
    let traces = found["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 1, "tenant A sees only its trace: {found}");
    assert_eq!(traces[0]["traceID"], a_trace.trim_start_matches('0'));
    assert_eq!(traces[0]["rootServiceName"], "svc-00");

    // JSON in Tempo's shape.
    let (s, ct, body) = get(&http, &format!("{base}/api/traces/{a_trace}"), "tenant-a", None).await;
    assert_eq!((s, ct.as_str()), (200, "application/json"));
    let v = json(&body);
    let span0 = &v["batches"][0]["scopeSpans"][0]["spans"][0];
    let id = base64::engine::general_purpose::STANDARD
        .decode(span0["traceId"].as_str().unwrap())
        .unwrap();
    assert_eq!(hex::encode(id), a_trace);
    assert!(span0["kind"].as_str().unwrap().starts_with("SPAN_KIND_"), "{span0}");
    assert!(span0["startTimeUnixNano"].is_string());

    // Tenant isolation: B sees nothing of A, by id, search, tags, values or SQL.
    assert_eq!(
        get(&http, &format!("{base}/api/traces/{a_trace}"), "tenant-b", None)
            .await
            .0,
        404
    );
    let v2 = get(&http, &format!("{base}/api/v2/traces/{a_trace}"), "tenant-b", None).await;
    assert_eq!(
        (v2.0, json(&v2.2)),
        (200, serde_json::json!({"trace": {}, "metrics": {}}))
    );
    let (_, _, body) = get(&http, &format!("{base}/api/search?q=%7B%7D"), "tenant-b", None).await;
    let ids: Vec<String> = json(&body)["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![b_trace.trim_start_matches('0').to_owned()]);
    let (_, _, body) = get(
        &http,
        &format!("{base}/api/v2/search/tag/name/values"),
        "tenant-b",
        None,
    )
    .await;
    let names: Vec<String> = json(&body)["tagValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "B has a root and one child name: {names:?}");
    let (_, _, body) = get(&http, &format!("{base}/api/search/tags"), "tenant-c", None).await;
    assert_eq!(
        json(&body)["tagNames"],
        serde_json::json!([]),
        "an unknown tenant has no tags"
    );
    let sql = running.endpoints.router_flight_sql.unwrap().to_string();
    assert_eq!(sql_count(&sql, "tenant-a", "SELECT count(*) FROM spans").await, 3);
    assert_eq!(sql_count(&sql, "tenant-b", "SELECT count(*) FROM spans").await, 2);

    // Errors.
    assert_eq!(
        get(&http, &format!("{base}/api/traces/nothex"), "tenant-a", None)
            .await
            .0,
        400
    );
    let (s, _, body) = get(
        &http,
        &format!("{base}/api/search?q=%7B%20.a%20%3D%20"),
        "tenant-a",
        None,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        String::from_utf8_lossy(&body).starts_with("invalid TraceQL query"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        get(
            &http,
            &format!("{base}/api/v2/search/tag/service.name/values"),
            "tenant-a",
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(
        get(&http, &format!("{base}/api/nothing"), "tenant-a", None).await.0,
        404
    );
    let missing = "0123456789abcdef0123456789abcdef";
    let (s, _, body) = get(&http, &format!("{base}/api/traces/{missing}"), "tenant-a", None).await;
    assert_eq!((s, body.len()), (404, 0));

    // After a flush, the same answers come from Parquet.
    running.writer().unwrap().flush().await.unwrap();
    assert!(running.writer().unwrap().buffered().0 == 0);
    let (s, _, body) = get(
        &http,
        &format!("{base}/api/traces/{a_trace}"),
        "tenant-a",
        Some("application/protobuf"),
    )
    .await;
    assert_eq!(s, 200);
    let trace = signaldb_tempo::tempopb::Trace::decode(body).unwrap();
    assert_eq!(
        spans_by_id(&trace.resource_spans).len(),
        3,
        "each span once after the flush"
    );
    assert_eq!(sql_count(&sql, "tenant-a", "SELECT count(*) FROM spans").await, 3);
    running.shutdown().await;
}

/// A trace too large for one Flight message reaches the client whole, sent
/// by the router as the querier's pieces arrive (no length known up front).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_trace_is_streamed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_all(test_config(dir.path())).await;
    let (mut grpc, base) = clients(&running).await;
    let http = reqwest::Client::new();
    const SPANS: usize = 12_000;
    let big = request(33, 1, SPANS as u32);
    let trace = hex::encode(&big.resource_spans[0].scope_spans[0].spans[0].trace_id);
    export(&mut grpc, "tenant-a", big).await;

    let url = format!("{base}/api/traces/{trace}");
    let started = Instant::now();
    let res = loop {
        let res = http.get(&url).header("x-scope-orgid", "tenant-a").send().await.unwrap();
        if res.status() == 200 {
            break res;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not readable: {}",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        res.headers().get("content-length").is_none(),
        "streamed, not collected first: {:?}",
        res.headers()
    );
    let body = res.bytes().await.unwrap();
    assert!(
        body.len() > 4 << 20,
        "larger than a Flight message: {} bytes",
        body.len()
    );
    let v = json(&body);
    let spans: usize = v["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
        .map(|ss| ss["spans"].as_array().unwrap().len())
        .sum();
    assert_eq!(spans, SPANS);

    // Protobuf as well.
    let (status, _, body) = get(&http, &url, "tenant-a", Some("application/protobuf")).await;
    assert_eq!(status, 200);
    let trace = signaldb_tempo::tempopb::Trace::decode(body).unwrap();
    assert_eq!(spans_by_id(&trace.resource_spans).len(), SPANS);
}
