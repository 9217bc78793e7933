//! Requests crafted to crash the process, write files, run forever or lose
//! acknowledged data, each against the all-in-one server over real sockets.
//! Every case gets a clear refusal, and the server keeps answering a trace by
//! id that was stored before.

use std::io::Write;
use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::common::*;

fn string_kv(key: String, value: String) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

async fn post_otlp(http: &reqwest::Client, base: &str, body: Vec<u8>, encoding: Option<&str>) -> (u16, String) {
    let mut req = http
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    // Errors are google.rpc.Status in the request's encoding.
    let message = signaldb::proto::RpcStatus::decode(body.clone())
        .map(|s| s.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
    (status, message)
}

async fn flight_sql(endpoint: &str) -> FlightSqlServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    FlightSqlServiceClient::new(channel)
}

/// Runs `sql` to the end; the error's code and message, or the row count.
async fn run_sql(endpoint: &str, sql: &str) -> Result<usize, (tonic::Code, String)> {
    let mut client = flight_sql(endpoint).await;
    let to_status = |e: arrow_flight::error::FlightError| match e {
        arrow_flight::error::FlightError::Tonic(s) => (s.code(), s.message().to_owned()),
        other => (tonic::Code::Unknown, other.to_string()),
    };
    let info = client.execute(sql.to_owned(), None).await.map_err(to_status)?;
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let stream = client.do_get(ticket).await.map_err(to_status)?;
    let batches: Vec<arrow_array::RecordBatch> = stream.try_collect().await.map_err(to_status)?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

/// The trace stored before the attacks still answers, and quickly.
async fn still_serving(http: &reqwest::Client, api: &str, trace: &str) {
    let t = std::time::Instant::now();
    let resp = http.get(format!("{api}/api/traces/{trace}")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "trace by id still answers");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "trace by id took {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_requests_are_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.querier.query_timeout = Duration::from_secs(2);
    let running = start_all(config).await;
    let e = running.endpoints.clone();
    let api = format!("http://{}", e.router_http.unwrap());
    let otlp = format!("http://{}", e.otlp_http.unwrap());
    let sql = e.router_flight_sql.unwrap().to_string();
    let http = reqwest::Client::new();

    let stored = request(7, 1, 4);
    let trace = hex::encode(&stored.resource_spans[0].scope_spans[0].spans[0].trace_id);
    let mut grpc = TraceServiceClient::connect(format!("http://{}", e.otlp_grpc.unwrap()))
        .await
        .unwrap();
    grpc.export(stored).await.unwrap();
    wait_until_found(&http, &api, &trace).await;

    // 1. TraceQL nested 7,000 and 12,000 levels deep: 400, no stack overflow
    //    (deeper queries do not fit in a URL; the parser's own tests go to
    //    50,000).
    for depth in [7_000, 12_000] {
        let q = format!("{{{}true}}", "!".repeat(depth));
        let resp = http
            .get(format!("{api}/api/search?q={}", urlencode(&q)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "depth {depth}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("more than 64 levels deep"), "{text}");
        let q = format!("{}{{}}{}", "(".repeat(depth / 2), ")".repeat(depth / 2));
        let resp = http
            .get(format!("{api}/api/search?q={}", urlencode(&q)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "parenthesised spansets, depth {depth}");
    }
    still_serving(&http, &api, &trace).await;

    // 2. SQL that writes files or defines tables, however it is wrapped.
    let target = dir.path().join("escaped.csv");
    let escapes = [
        format!("COPY (SELECT 1) TO '{}' STORED AS CSV", target.display()),
        format!(
            "EXPLAIN ANALYZE COPY (SELECT 1) TO '{}' STORED AS CSV",
            target.display()
        ),
        format!("EXPLAIN COPY (SELECT 1) TO '{}' STORED AS CSV", target.display()),
        format!(
            "CREATE EXTERNAL TABLE leak STORED AS PARQUET LOCATION 'file://{}'",
            dir.path().display()
        ),
        "CREATE VIEW v AS SELECT 1".to_owned(),
        "INSERT INTO spans SELECT * FROM spans".to_owned(),
        "SET datafusion.execution.target_partitions = 64".to_owned(),
        "DROP VIEW spans".to_owned(),
    ];
    for statement in &escapes {
        let (code, message) = run_sql(&sql, statement).await.unwrap_err();
        assert_eq!(code, tonic::Code::InvalidArgument, "{statement}: {message}");
        assert!(message.contains("not supported"), "{statement}: {message}");
    }
    assert!(!target.exists(), "no SQL may write a file");
    assert_eq!(run_sql(&sql, "SELECT count(*) FROM spans").await, Ok(1));

    // 3. A query that would run for hours ends at the time limit.
    let t = std::time::Instant::now();
    let (code, message) = run_sql(&sql, "SELECT count(*) FROM range(100000000000)")
        .await
        .unwrap_err();
    assert_eq!(code, tonic::Code::DeadlineExceeded, "{message}");
    assert!(message.contains("time limit of 2s"), "{message}");
    assert!(t.elapsed() < Duration::from_secs(30), "took {:?}", t.elapsed());
    still_serving(&http, &api, &trace).await;

    // 4. The drain controls of the all-in-one writer need the cluster token,
    //    which only this process knows.
    let admin = format!("http://{}/drain", e.admin.unwrap());
    for req in [http.post(&admin), http.delete(&admin)] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
    }
    assert!(!running.writer().unwrap().is_draining());

    // 4b. The roles' own Flight ports answer only calls with the token: no
    //     stranger writes into a writer, reads its buffers, or queries a
    //     querier for any tenant.
    for addr in [e.writer_flight.unwrap(), e.querier_flight.unwrap()] {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut flight = arrow_flight::flight_service_client::FlightServiceClient::new(channel);
        let get = flight
            .do_get(arrow_flight::Ticket {
                ticket: bytes::Bytes::from_static(b"anything"),
            })
            .await
            .unwrap_err();
        assert_eq!(get.code(), tonic::Code::Unauthenticated, "{addr}: {get:?}");
        assert!(get.message().contains("cluster token"), "{}", get.message());
        let put = flight
            .do_put(futures::stream::iter(Vec::<arrow_flight::FlightData>::new()))
            .await
            .unwrap_err();
        assert_eq!(put.code(), tonic::Code::Unauthenticated, "{addr}: {put:?}");
        let action = flight
            .do_action(arrow_flight::Action {
                r#type: "search".into(),
                body: bytes::Bytes::from_static(b"{}"),
            })
            .await
            .unwrap_err();
        assert_eq!(action.code(), tonic::Code::Unauthenticated, "{addr}: {action:?}");
    }

    // 5. A 60 KiB resource attribute over 20,000 spans (1.2 GB as span rows):
    //    refused before the acknowledgement, not dropped after it.
    let mut big = request(8, 2_000, 10);
    big.resource_spans[0].resource = Some(Resource {
        attributes: vec![string_kv("big".into(), "x".repeat(60 * 1024))],
        ..Default::default()
    });
    let (status, message) = post_otlp(&http, &otlp, big.encode_to_vec(), None).await;
    assert_eq!(status, 413, "{message}");
    assert!(message.contains("acceptor.max_converted_request_size"), "{message}");
    let status = grpc.export(big).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // 6. 100,000 attributes on one span.
    let mut wide = request(9, 1, 1);
    wide.resource_spans[0].scope_spans[0].spans[0].attributes =
        (0..100_000).map(|i| string_kv(format!("k{i}"), "v".into())).collect();
    let (status, message) = post_otlp(&http, &otlp, wide.encode_to_vec(), None).await;
    assert_eq!(status, 413, "{message}");
    assert!(message.contains("100000 attributes; at most 1024"), "{message}");

    // 7. A gzip bomb: 256 MiB of zeros in a small body.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..256 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 300 * 1024, "{} bytes", bomb.len());
    let (status, message) = post_otlp(&http, &otlp, bomb, Some("gzip")).await;
    assert_eq!(status, 413, "{message}");
    assert!(message.contains("after decompression"), "{message}");

    // 8. The same bomb in zstd, and a valid zstd body that is stored.
    let zstd_bomb = zstd::bulk::compress(&vec![0u8; 64 * 1024 * 1024], 19).unwrap();
    assert!(zstd_bomb.len() < 64 * 1024, "{} bytes", zstd_bomb.len());
    let (status, message) = post_otlp(&http, &otlp, zstd_bomb, Some("zstd")).await;
    assert_eq!(status, 413, "{message}");
    assert!(message.contains("after decompression"), "{message}");
    let zstd_valid = request(10, 1, 2);
    let zstd_trace = hex::encode(&zstd_valid.resource_spans[0].scope_spans[0].spans[0].trace_id);
    let body = zstd::bulk::compress(&zstd_valid.encode_to_vec(), 3).unwrap();
    let (status, message) = post_otlp(&http, &otlp, body, Some("zstd")).await;
    assert_eq!(status, 200, "{message}");
    wait_until_found(&http, &api, &zstd_trace).await;

    // Nothing acknowledged was lost, and the process serves on.
    still_serving(&http, &api, &trace).await;
    let accepted = ExportTraceServiceRequest::default();
    assert!(grpc.export(accepted).await.is_ok());
    running.shutdown().await;
}

async fn wait_until_found(http: &reqwest::Client, api: &str, trace: &str) {
    let t = std::time::Instant::now();
    loop {
        let resp = http.get(format!("{api}/api/traces/{trace}")).send().await.unwrap();
        if resp.status().as_u16() == 200 {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "trace {trace} never became readable"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Past `querier.max_concurrent_queries` a query is refused at once with 429,
/// not queued; once the running query ends, queries are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_querier_refuses_queries_past_its_concurrency_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.querier.max_concurrent_queries = 1;
    config.querier.query_timeout = Duration::from_secs(3);
    let running = start_all(config).await;
    let e = running.endpoints.clone();
    let api = format!("http://{}", e.router_http.unwrap());
    let sql = e.router_flight_sql.unwrap().to_string();
    let http = reqwest::Client::new();

    let long = tokio::spawn(async move { run_sql(&sql, "SELECT count(*) FROM range(100000000000)").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = http.get(format!("{api}/api/search?q=%7B%7D")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let text = resp.text().await.unwrap();
    assert!(text.contains("querier.max_concurrent_queries"), "{text}");

    let (code, _) = long.await.unwrap().unwrap_err();
    assert_eq!(code, tonic::Code::DeadlineExceeded);
    let resp = http.get(format!("{api}/api/search?q=%7B%7D")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "served again once the slot is free");
    running.shutdown().await;
}

/// Searches, tag lookups and trace-by-id end at `querier.query_timeout` like
/// SQL does: 504 through the Tempo API, with the limit named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_kind_ends_at_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.querier.query_timeout = Duration::from_nanos(1);
    let running = start_all(config).await;
    let api = format!("http://{}", running.endpoints.router_http.unwrap());
    let http = reqwest::Client::new();
    for path in [
        "/api/search?q=%7B%7D",
        "/api/v2/search/tags",
        "/api/v2/search/tag/resource.service.name/values",
        "/api/traces/0123456789abcdef0123456789abcdef",
    ] {
        let resp = http.get(format!("{api}{path}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 504, "{path}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("exceeded its time limit"), "{path}: {text}");
    }
    running.shutdown().await;
}

/// A tenant sending past its ingestion rate gets 429 with when to retry
/// (HTTP) and RESOURCE_EXHAUSTED (gRPC), while another tenant sending the
/// same requests meanwhile gets every one of them stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_rate_is_refused_while_another_keeps_its_own() {
    use signaldb_config::{ByteSize, TenantId, TenantLimits};
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.tenancy.multi_tenant = true;
    config.limits.defaults = TenantLimits {
        ingestion_rate: ByteSize(64 * 1024),
        ingestion_burst: ByteSize(64 * 1024),
        ..TenantLimits::default()
    };
    config.limits.overrides.insert(
        TenantId::new("big").unwrap(),
        TenantLimits {
            ingestion_rate: ByteSize::mib(64),
            ingestion_burst: ByteSize::mib(64),
            ..TenantLimits::default()
        },
    );
    let running = start_all(config).await;
    let base = format!("http://{}", running.endpoints.otlp_http.unwrap());
    let http = reqwest::Client::new();
    let post = |tenant: &'static str, seed: u64| {
        let body = request(seed, 10, 10).encode_to_vec();
        let (http, base) = (http.clone(), base.clone());
        async move {
            let resp = http
                .post(format!("{base}/v1/traces"))
                .header("content-type", "application/x-protobuf")
                .header("x-scope-orgid", tenant)
                .body(body)
                .send()
                .await
                .unwrap();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let status = resp.status().as_u16();
            let message = signaldb::proto::RpcStatus::decode(resp.bytes().await.unwrap())
                .map(|s| s.message)
                .unwrap_or_default();
            (status, retry_after, message)
        }
    };
    let (mut small_ok, mut small_refused, mut big_ok) = (0, 0, 0);
    for seed in 0..20 {
        let (status, retry_after, message) = post("small", 9_000 + seed).await;
        match status {
            200 => small_ok += 1,
            429 => {
                small_refused += 1;
                assert!(retry_after.is_some(), "429 says when to retry");
                assert!(message.contains("tenant small"), "{message}");
                assert!(message.contains("ingestion_rate"), "{message}");
            }
            other => panic!("small: {other} {message}"),
        }
        let (status, _, message) = post("big", 19_000 + seed).await;
        assert_eq!(status, 200, "the other tenant keeps its rate: {message}");
        big_ok += 1;
    }
    assert!(small_ok >= 1, "the burst is taken");
    assert!(small_refused >= 10, "past the burst most are refused: {small_ok} taken");
    assert_eq!(big_ok, 20);

    // gRPC: RESOURCE_EXHAUSTED, with RetryInfo for OTLP exporters.
    let mut grpc = TraceServiceClient::connect(format!("http://{}", running.endpoints.otlp_grpc.unwrap()))
        .await
        .unwrap();
    let mut req = tonic::Request::new(request(9_999, 10, 10));
    req.metadata_mut().insert("x-scope-orgid", "small".parse().unwrap());
    let err = grpc.export(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    assert!(!err.details().is_empty(), "RetryInfo travels in the status details");

    // A single request larger than the burst can never fit: 413.
    let huge = request(7, 50, 10).encode_to_vec();
    assert!(huge.len() > 64 * 1024);
    let (status, message) = {
        let resp = http
            .post(format!("{base}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .header("x-scope-orgid", "other")
            .body(huge)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let message = signaldb::proto::RpcStatus::decode(resp.bytes().await.unwrap())
            .map(|s| s.message)
            .unwrap_or_default();
        (status, message)
    };
    assert_eq!(status, 413, "{message}");
    assert!(message.contains("ingestion_burst"), "{message}");
    running.shutdown().await;
}

/// A tenant gets at most `limits.*.max_concurrent_queries` slots of a
/// querier: its next query is refused while another tenant is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_take_every_query_slot() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.tenancy.multi_tenant = true;
    config.querier.max_concurrent_queries = 4;
    config.querier.query_timeout = Duration::from_secs(3);
    config.limits.defaults.max_concurrent_queries = 1;
    let running = start_all(config).await;
    let e = running.endpoints.clone();
    let api = format!("http://{}", e.router_http.unwrap());
    let sql = e.router_flight_sql.unwrap().to_string();
    let http = reqwest::Client::new();

    let long = tokio::spawn(async move {
        let mut client = flight_sql(&sql).await;
        client.set_header("x-scope-orgid", "greedy");
        let info = client
            .execute("SELECT count(*) FROM range(100000000000)".into(), None)
            .await?;
        let ticket = info.endpoint[0].ticket.clone().expect("a ticket");
        client.do_get(ticket).await?.try_collect::<Vec<_>>().await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let search = |tenant: &'static str| {
        http.get(format!("{api}/api/search?q=%7B%7D"))
            .header("x-scope-orgid", tenant)
            .send()
    };
    let resp = search("greedy").await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let text = resp.text().await.unwrap();
    assert!(text.contains("tenant greedy"), "{text}");
    assert!(text.contains("max_concurrent_queries"), "{text}");
    let resp = search("modest").await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "another tenant is served meanwhile");

    assert!(long.await.unwrap().is_err(), "the long query ends at its deadline");
    let resp = search("greedy").await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "served again once its slot is free");
    running.shutdown().await;
}

/// Spans in a Tempo trace-by-id answer (any version of it).
fn span_count(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(m) => {
            usize::from(m.contains_key("spanId")) + m.values().map(span_count).sum::<usize>()
        }
        serde_json::Value::Array(a) => a.iter().map(span_count).sum(),
        _ => 0,
    }
}

/// A trace that grows past its tenant's `max_bytes_per_trace` loses only
/// the spans past it, refused before the acknowledgement and counted in
/// `partial_success`; the other traces of the same request are stored, and
/// a request left with no span gets `INVALID_ARGUMENT` / 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_past_its_byte_limit_loses_only_the_spans_past_it() {
    use signaldb_config::ByteSize;
    let dir = tempfile::tempdir().unwrap();
    let first = request(41, 1, 20);
    let trace = first.resource_spans[0].scope_spans[0].spans[0].trace_id.clone();
    let size: usize = first.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(Message::encoded_len)
        .sum();
    let mut config = test_config(dir.path());
    config.limits.defaults.max_bytes_per_trace = ByteSize((size + size / 2) as u64);
    let running = start_all(config).await;
    let (mut grpc, api) = clients(&running).await;

    // The same trace again, with new span ids: past the limit.
    let more = |flip: u8| {
        let mut r = first.clone();
        for s in &mut r.resource_spans[0].scope_spans[0].spans {
            s.span_id[0] ^= flip;
        }
        r
    };
    let answer = grpc.export(first.clone()).await.unwrap().into_inner();
    assert!(answer.partial_success.is_none(), "{answer:?}");
    let mut second = more(0x80);
    let other = request(42, 1, 5);
    let other_trace = other.resource_spans[0].scope_spans[0].spans[0].trace_id.clone();
    second.resource_spans.extend(other.resource_spans);
    let answer = grpc.export(second).await.unwrap().into_inner();
    let partial = answer.partial_success.expect("partial_success says what was refused");
    assert_eq!(partial.rejected_spans, 20);
    assert!(
        partial.error_message.contains("max_bytes_per_trace"),
        "{}",
        partial.error_message
    );

    let err = grpc.export(more(0x40)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("max_bytes_per_trace"), "{}", err.message());
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("http://{}/v1/traces", running.endpoints.otlp_http.unwrap()))
        .header("content-type", "application/x-protobuf")
        .body(more(0x20).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);

    // Stored: the trace as first sent, and the other trace whole.
    deliver_and_flush(&running).await;
    let got = get_json(&http, &format!("{api}/api/traces/{}", hex::encode(&trace))).await;
    assert_eq!(span_count(&got), 20);
    let got = get_json(&http, &format!("{api}/api/traces/{}", hex::encode(&other_trace))).await;
    assert_eq!(span_count(&got), 5);
    assert_eq!(
        metric(
            &running.metrics.render(),
            "signaldb_acceptor_spans_refused_trace_too_large_total"
        ),
        Some(60.0)
    );
}

/// A tenant's own attribute limits (`limits.overrides.<tenant>`) apply to
/// it alone: the same request is refused or truncated for the strict
/// tenant and stored whole for another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_attribute_limits_apply_to_it_alone() {
    use signaldb_config::{ByteSize, TenantId, TenantLimits};
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.tenancy.multi_tenant = true;
    config.limits.overrides.insert(
        TenantId::new("strict").unwrap(),
        TenantLimits {
            max_attributes: Some(2),
            max_attribute_value_size: Some(ByteSize(8)),
            ..TenantLimits::default()
        },
    );
    let running = start_all(config).await;
    let (mut grpc, _) = clients(&running).await;
    let export = |tenant: &str, req: ExportTraceServiceRequest| {
        let mut req = tonic::Request::new(req);
        req.metadata_mut().insert("x-scope-orgid", tenant.parse().unwrap());
        req
    };
    // Four attributes on each span: past the strict tenant's two.
    let many = request(51, 1, 2);
    let err = grpc.export(export("strict", many.clone())).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("at most 2 are accepted"), "{}", err.message());
    let answer = grpc.export(export("other", many)).await.unwrap().into_inner();
    assert!(answer.partial_success.is_none(), "{answer:?}");

    // One long value: truncated to 8 bytes for the strict tenant only.
    let mut long = request(52, 1, 1);
    long.resource_spans[0].resource = Some(Resource {
        attributes: vec![string_kv("service.name".into(), "svc".into())],
        ..Default::default()
    });
    let span = &mut long.resource_spans[0].scope_spans[0].spans[0];
    span.events.clear();
    span.links.clear();
    span.attributes = vec![string_kv("long".into(), "x".repeat(100))];
    let answer = grpc.export(export("strict", long.clone())).await.unwrap().into_inner();
    let partial = answer.partial_success.expect("the truncation is reported");
    assert!(
        partial.error_message.contains("longer than 8 bytes"),
        "{}",
        partial.error_message
    );
    let answer = grpc.export(export("other", long)).await.unwrap().into_inner();
    assert!(answer.partial_success.is_none(), "{answer:?}");
}
