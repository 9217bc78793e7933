//! `acceptor.max_in_flight`: while request bodies hold the byte budget, new
//! requests over HTTP and gRPC are refused at once with 429 /
//! RESOURCE_EXHAUSTED (clear message, Retry-After), and they are accepted
//! again as soon as the budget is free.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use signaldb_config::ByteSize;
use tokio::io::AsyncWriteExt;

use crate::common::*;

/// A client that announces a 64 KiB OTLP/HTTP body, sends 63 KiB of it and
/// then sends nothing more.
async fn stalled_client(http_addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let mut slow = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: {http_addr}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
        64 * 1024
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&vec![0u8; 63 * 1024]).await.unwrap();
    slow.flush().await.unwrap();
    slow
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_in_flight_budget_get_429_then_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.acceptor.max_request_size = ByteSize(64 * 1024);
    config.acceptor.max_in_flight = ByteSize(64 * 1024);
    let running = start_all(config).await;
    let http_addr = running.endpoints.otlp_http.unwrap();
    let base = format!("http://{http_addr}");
    let http = reqwest::Client::new();
    let body = request(1, 2, 3).encode_to_vec();
    assert!(body.len() > 1024 && body.len() < 4 * 1024);

    // A slow client: announces 64 KiB and sends 63 KiB of it, then waits.
    let slow = stalled_client(http_addr).await;

    // Once the server holds those bytes, a request of a few KiB no longer fits.
    let started = Instant::now();
    let refused = loop {
        let resp = http
            .post(format!("{base}/v1/traces"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&request(2, 2, 3)).unwrap())
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() == 429 {
            break resp;
        }
        assert_eq!(resp.status().as_u16(), 200);
        assert!(started.elapsed() < Duration::from_secs(10), "never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.headers()["content-type"], "application/json");
    let status: serde_json::Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(status["code"], 8);
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("acceptor.max_in_flight is 65536 bytes"), "{message}");

    // gRPC shares the budget.
    let mut grpc = TraceServiceClient::connect(format!("http://{}", running.endpoints.otlp_grpc.unwrap()))
        .await
        .unwrap();
    let err = grpc.export(request(3, 2, 3)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(err.message().contains("acceptor.max_in_flight"), "{}", err.message());

    // The slow client goes away: its bytes are given back.
    drop(slow);
    let started = Instant::now();
    loop {
        let resp = http
            .post(format!("{base}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() == 200 {
            break;
        }
        assert_eq!(resp.status().as_u16(), 429);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the budget was not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    grpc.export(request(4, 1, 2)).await.unwrap();

    let text = running.metrics.render();
    for transport in ["http", "grpc"] {
        let refused = metric(
            &text,
            &format!("signaldb_acceptor_requests_total{{transport=\"{transport}\",outcome=\"overloaded\"}}"),
        );
        assert!(refused.unwrap_or(0.0) >= 1.0, "{transport}: {text}");
    }
    running.shutdown().await;
}

/// A client that announces a body and stops sending holds the budget only
/// until `acceptor.body_timeout`: then it gets 408 and everyone else is
/// admitted again, without it going away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_dropped_and_the_budget_comes_back() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.acceptor.max_request_size = ByteSize(64 * 1024);
    config.acceptor.max_in_flight = ByteSize(64 * 1024);
    config.acceptor.body_timeout = Duration::from_millis(700);
    let running = start_all(config).await;
    let http_addr = running.endpoints.otlp_http.unwrap();
    let base = format!("http://{http_addr}");
    let http = reqwest::Client::new();
    let body = request(1, 2, 3).encode_to_vec();

    let mut slow = stalled_client(http_addr).await;

    let post = || async {
        http.post(format!("{base}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // Held: refused.
    let started = Instant::now();
    while post().await != 429 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the stalled body never held the budget"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The stalled client gets 408 and its bytes go back, while it stays connected.
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut answer))
        .await
        .expect("the stalled request is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let started = Instant::now();
    while post().await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the budget was not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stalled = metric(
        &running.metrics.render(),
        "signaldb_acceptor_requests_total{transport=\"http\",outcome=\"stalled\"}",
    );
    assert_eq!(stalled, Some(1.0));
    drop(slow);
    running.shutdown().await;
}
