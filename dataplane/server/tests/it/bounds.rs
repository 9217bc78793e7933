//! Query bounds on the real path: a search over too long a range, a search
//! whose selected spans outgrow the queriers' memory bound, and SQL that
//! would run forever each end with their own error, while a trace by id
//! from another client keeps being answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use signaldb_config::ByteSize;

use crate::common::*;

const SPANS_PER_TRACE: usize = 10;
/// Attributes per span, each `VALUE_BYTES` long.
const ATTRIBUTES: usize = 4;
const VALUE_BYTES: usize = 500;

/// `traces` traces of ten spans each carrying 2 KB of attributes, trace
/// `t` with id `[seed, t as bytes...]`, started a second ago.
fn heavy_request(seed: u8, traces: usize) -> ExportTraceServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut spans = Vec::new();
    for t in 0..traces {
        for s in 0..SPANS_PER_TRACE {
            spans.push(Span {
                trace_id: trace_id(seed, t).to_vec(),
                span_id: vec![s as u8 + 1; 8],
                name: format!("op-{s}"),
                start_time_unix_nano: now - 1_000_000_000,
                end_time_unix_nano: now - 900_000_000,
                attributes: (0..ATTRIBUTES)
                    .map(|a| KeyValue {
                        key: format!("a{a}"),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!(
                                "{t:0>width$}",
                                width = VALUE_BYTES
                            ))),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn trace_id(seed: u8, t: usize) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0] = seed;
    id[8..].copy_from_slice(&(t as u64).to_be_bytes());
    id
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let resp = http.get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_past_their_bounds_end_with_their_error_while_trace_by_id_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.querier.memory_limit = ByteSize::mib(4);
    config.querier.query_timeout = Duration::from_secs(3);
    let running = start_all(config).await;
    let (mut grpc, base) = clients(&running).await;
    let http = reqwest::Client::new();

    // 16 MB of attributes: half flushed to Parquet, half in the writer's buffer.
    for seed in 1..=4 {
        grpc.export(heavy_request(seed, 200)).await.unwrap();
    }
    deliver_and_flush(&running).await;
    for seed in 5..=8 {
        grpc.export(heavy_request(seed, 200)).await.unwrap();
    }
    let lookup = format!("{base}/api/traces/{}", hex::encode(trace_id(7, 123)));
    let t = Instant::now();
    while get(&http, &lookup).await.0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(10), "the trace never became readable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Another client looks the trace up again and again meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let looker = {
        let (http, lookup, stop) = (reqwest::Client::new(), lookup.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut took = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let (status, body) = get(&http, &lookup).await;
                assert_eq!(status, 200, "trace by id during the heavy queries: {body}");
                took.push(started.elapsed());
            }
            took
        })
    };

    // 30 days: past querier.max_search_duration (7 days).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (status, body) = get(
        &http,
        &format!("{base}/api/search?q=%7B%7D&start={}&end={now}", now - 30 * 86_400),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("exceeds querier.max_search_duration (7days)"), "{body}");

    // Every attribute of every span selected: more than the 4 MiB bound.
    let select_all = urlencode("{ } | select(span.a0, span.a1, span.a2, span.a3)");
    let (status, body) = get(&http, &format!("{base}/api/search?q={select_all}&limit=5000&spss=100")).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("querier.memory_limit"), "{body}");

    // SQL that would run forever ends at querier.query_timeout. (SQL holds
    // the writers' whole buffer while it runs, which here is past the
    // memory bound itself: flush it first.)
    deliver_and_flush(&running).await;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", running.endpoints.router_flight_sql.unwrap()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut sql = FlightSqlServiceClient::new(channel);
    let started = Instant::now();
    let outcome = async {
        let info = sql
            .execute("SELECT count(*) FROM range(100000000000)".into(), None)
            .await?;
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        sql.do_get(ticket).await?.try_collect::<Vec<_>>().await
    }
    .await;
    let Err(arrow_flight::error::FlightError::Tonic(status)) = outcome else {
        panic!("range(1e11) should end with a deadline, got {outcome:?}");
    };
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status}");
    let sql_took = started.elapsed();

    stop.store(true, Ordering::Relaxed);
    let mut took = looker.await.unwrap();
    took.sort();
    assert!(
        took.len() >= 3,
        "trace by id answered only {} times in {sql_took:?} of heavy queries",
        took.len()
    );
    println!(
        "trace by id during the heavy queries: {} lookups, median {:?}, slowest {:?}",
        took.len(),
        took[took.len() / 2],
        took[took.len() - 1]
    );

    // Within the bound, the same search is answered.
    let (status, body) = get(&http, &format!("{base}/api/search?q={select_all}&limit=5&spss=100")).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["traces"].as_array().unwrap().len(), 5);
    running.shutdown().await;
}
